package fuse_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestMissAnsweredOnce: a name found absent is answered absent from memory
// at most once more (the repeat lookup rename(2) makes): a name another
// client created after a failed stat is found by the stat after next,
// however soon it comes.
func TestMissAnsweredOnce(t *testing.T) {
	e := mountEnv(t)
	ctx := t.Context()
	for i := range 5 {
		name := fmt.Sprintf("late%d", i)
		p := filepath.Join(e.mnt, name)
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("stat of a missing name: %v", err)
		}
		if _, _, err := e.other.Create(ctx, e.other.Root(), name, 0o644, 0, 0, true); err != nil {
			t.Fatal(err)
		}
		_, _ = os.Lstat(p) // may be answered from the miss
		if _, err := os.Lstat(p); err != nil {
			t.Fatalf("%s, created by another client, still not found by the third stat: %v", name, err)
		}
	}
}
