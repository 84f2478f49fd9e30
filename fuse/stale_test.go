package fuse_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestReplacedByOtherClient: a file another client replaced (an editor's
// save: write a new file, rename it over the old name) opens and stats as
// the new file at once on this mount, although the kernel still holds the
// old name's entry (entry timeout): the inode it names is gone, so dfs
// answers ESTALE and the kernel looks the name up again.
func TestReplacedByOtherClient(t *testing.T) {
	e := mountEnv(t)
	mnt2 := mountSecond(t, e)
	for round, content := range []string{"version 2", "version three", ""} {
		name := filepath.Join(e.mnt, "f")
		if round == 0 {
			if err := os.WriteFile(name, []byte("version 1"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// The second mount learns the current file.
		other := filepath.Join(mnt2, "f")
		if _, err := os.ReadFile(other); err != nil {
			t.Fatalf("round %d: read on the second mount: %v", round, err)
		}
		tmp := filepath.Join(e.mnt, "f.tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, name); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(other)
		if err != nil || string(got) != content {
			t.Fatalf("round %d: second mount reads %q, %v; want %q", round, got, err, content)
		}
		st, err := os.Stat(other)
		if err != nil || st.Size() != int64(len(content)) || st.Mode().Perm() != 0o600 {
			t.Fatalf("round %d: second mount stats %v, %v", round, st, err)
		}
	}
	// Chmod and truncate by path, each first on a name whose inode was
	// replaced. (Not stat: the kernel may answer it from attributes it
	// cached within the attribute timeout, as NFS clients do.)
	name, other := filepath.Join(e.mnt, "g"), filepath.Join(mnt2, "g")
	ops := []struct {
		what string
		do   func() error
		want func(os.FileInfo) bool
	}{
		{"chmod", func() error { return os.Chmod(other, 0o640) }, func(st os.FileInfo) bool { return st.Mode().Perm() == 0o640 }},
		{"truncate", func() error { return os.Truncate(other, 1) }, func(st os.FileInfo) bool { return st.Size() == 1 }},
	}
	for _, op := range ops {
		if err := os.WriteFile(name, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(other); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte("new"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := op.do(); err != nil {
			t.Fatalf("%s on the second mount: %v", op.what, err)
		}
		st, err := os.Stat(other)
		if err != nil || !op.want(st) {
			t.Fatalf("after %s on the second mount: %v, %v", op.what, st, err)
		}
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	// A name removed by the other client: open fails with ENOENT, not
	// ESTALE.
	if err := os.WriteFile(name, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(other); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open of a name the other client removed: %v", err)
	}
}
