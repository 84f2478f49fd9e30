package fuse_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCloseToOpen: what another client wrote and closed, the mount reads
// whole on its next open, although the kernel cached the file's old
// attributes (size included) a moment before, within the attribute
// timeout.
func TestCloseToOpen(t *testing.T) {
	e := mountEnv(t)
	path := filepath.Join(e.mnt, "shared")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	for round, size := range []int{48521, 100, 3 << 20, 0, 70000} {
		// The kernel caches the current size (attribute timeout 1 s).
		if _, err := os.Stat(path); err != nil {
			t.Fatal(err)
		}
		want := bytes.Repeat([]byte{byte('a' + round)}, size)
		f, err := e.other.Open(t.Context(), e.nodeVia(path), syscall.O_WRONLY|syscall.O_TRUNC)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(t.Context(), want, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := f.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: read %d bytes after the other client wrote and closed %d", round, len(got), size)
		}
		st, err := os.Stat(path)
		if err != nil || st.Size() != int64(size) {
			t.Fatalf("round %d: stat after open says size %d (%v), want %d", round, st.Size(), err, size)
		}
	}
}

// TestReadAheadWindow: the mount's read-ahead window is Options'
// ReadAheadKB (1 MiB by default), not the kernel's 128 KiB.
func TestReadAheadWindow(t *testing.T) {
	e := mountEnv(t)
	var st unix.Stat_t
	if err := unix.Stat(e.mnt, &st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != "1024" {
		t.Fatalf("read_ahead_kb of the mount = %s, want 1024", got)
	}
}
