package fuse_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dfsproject/dfs/fuse"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

// brickReads counts the data reads the bricks served.
func (e *env) brickReads() int64 { return e.sumBricks((*clienttest.Brick).Reads) }

// TestOwnWritesStayCached: blocks this mount wrote read back from the
// kernel's page cache, not from the bricks (the kernel used to drop the
// whole file's pages at the GETATTR after each write, its mtime having
// moved), and read back right.
func TestOwnWritesStayCached(t *testing.T) {
	e := mountEnv(t)
	p := filepath.Join(e.mnt, "f")
	size := 4 << 20
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	model := make([]byte, size)
	buf := make([]byte, 4096)
	var offs []int64
	for i := range 64 {
		off := int64(i*97%(size/4096)) * 4096
		data := randBytes(uint64(i), 4096)
		if _, err := f.WriteAt(data, off); err != nil {
			t.Fatal(err)
		}
		copy(model[off:], data)
		offs = append(offs, off)
		// A read elsewhere after each write, as fio's mix does: it
		// makes the kernel ask for the attributes again.
		if _, err := f.ReadAt(buf, int64(size)-4096*int64(1+i%8)); err != nil {
			t.Fatal(err)
		}
	}
	before := e.brickReads()
	for _, off := range offs {
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, model[off:off+4096]) {
			t.Fatalf("block at %d reads other bytes than this mount wrote", off)
		}
	}
	if n := e.brickReads() - before; n != 0 {
		t.Fatalf("reading back 64 blocks just written read the bricks %d times, want 0", n)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := e.readVia(p); !bytes.Equal(got, model) {
		t.Fatal("another client reads other bytes than this mount wrote")
	}
}

// TestHeldOpenSeesOtherClientsWrite: a reader that keeps the file open and
// reads only what the page cache holds sees another client's committed
// write within about the attribute timeout (1 s), although the kernel
// asks the mount nothing for such reads; a new open sees it at once
// (close-to-open); and the reader's own earlier writes are not lost.
func TestHeldOpenSeesOtherClientsWrite(t *testing.T) {
	e := mountEnv(t)
	p := filepath.Join(e.mnt, "f")
	size := 2 << 20
	old := randBytes(1, size)
	if err := os.WriteFile(p, old, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	own := []byte("written by this mount")
	if _, err := r.WriteAt(own, 8192); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	copy(old[8192:], own)
	got := make([]byte, size)
	if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("first read: %v, or other bytes than written", err)
	}

	// Another client rewrites the middle of the file and closes it.
	ctx := t.Context()
	n, _, err := e.other.Lookup(ctx, e.other.Root(), "f")
	if err != nil {
		t.Fatal(err)
	}
	w, err := e.other.Open(ctx, n, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	next := randBytes(2, 64<<10)
	if _, err := w.WriteAt(ctx, next, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := w.Release(ctx); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	want := append([]byte(nil), old...)
	copy(want[1<<20:], next)

	// The held descriptor, within about the attribute timeout.
	for {
		if _, err := r.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(got, want) {
			break
		}
		if !bytes.Equal(got, old) {
			t.Fatal("held descriptor reads neither the old nor the new bytes")
		}
		if time.Since(written) > 3*time.Second {
			t.Fatalf("held descriptor still reads the old bytes %v after another client's commit (attribute timeout 1 s)", time.Since(written))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("held descriptor saw the other client's write after %v", time.Since(written))

	// Another commit: a new open reads it at once.
	copy(want, randBytes(3, 4096))
	w, err = e.other.Open(ctx, n, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(ctx, want[:4096], 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, want) {
		t.Fatalf("new open: %v, or not the other client's write", err)
	}
}

// TestIdleOpenFileNotWatched: a file held open but not read or written
// through the mount is no longer asked about once idle (its pages are
// dropped instead), and its next read sees what another client committed
// meanwhile.
func TestIdleOpenFileNotWatched(t *testing.T) {
	e := mountEnv(t)
	old := randBytes(4, 64<<10)
	r := openShortTimeouts(t, e, old)
	got := make([]byte, len(old))
	if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("first read: %v, or other bytes", err)
	}
	// Idle after max(4 x 200 ms, 2 s): then nothing is asked.
	time.Sleep(2500 * time.Millisecond)
	before := e.calls()
	time.Sleep(time.Second)
	// Watched, it would be asked about every 100 ms (half the timeout).
	if n := e.calls() - before; n > 3 {
		t.Errorf("%d RPCs in a second for an idle open file", n)
	}
	ctx := t.Context()
	n, _, err := e.vol.Lookup(ctx, e.vol.Root(), "f")
	if err != nil {
		t.Fatal(err)
	}
	w, err := e.vol.Open(ctx, n, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	next := randBytes(5, 4096)
	if _, err := w.WriteAt(ctx, next, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:4096], next) || !bytes.Equal(got[4096:], old[4096:]) {
		t.Fatal("the idle descriptor's next read does not see another client's commit")
	}
}

// openShortTimeouts writes data as "f" through e's mount and opens it
// through a second mount, of the other client, with 200 ms attribute and
// entry timeouts. The file is closed at the test's end.
func openShortTimeouts(t *testing.T, e *env, data []byte) *os.File {
	t.Helper()
	opts := fuse.DefaultOptions()
	opts.AttrTimeout, opts.EntryTimeout = 200*time.Millisecond, 200*time.Millisecond
	mnt := mountOther(t, e, opts)
	if err := os.WriteFile(filepath.Join(e.mnt, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(filepath.Join(mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
