package fuse_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dfsproject/dfs/fuse"
	"github.com/dfsproject/dfs/pkg/client"
)

// commitWrite appends data at off to the file name of the root through
// vol (another client than the mount under test) and commits it.
func commitWrite(t *testing.T, vol *client.Volume, name string, data []byte, off int64) {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	n, _, err := vol.Lookup(ctx, vol.Root(), name)
	if err != nil {
		t.Fatal(err)
	}
	w, err := vol.Open(ctx, n, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(ctx, data, off); err != nil {
		t.Fatal(err)
	}
	if err := w.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestGrownFileTailPage: a file held open here whose last page the
// kernel cached (bytes past the old end zero-filled) grows by another
// client's commit. Without AUTO_INVAL_DATA the kernel no longer drops the
// pages when it learns the new size (explicit data cache control keeps
// them on a size change too: fuse_change_attributes only truncates past
// the new size), so the bytes between the old end and the end of that
// page read as zeros: bytes the file never held, not stale ones. Here the
// kernel learns the size from a lookup (entry timeout 20 ms) long before
// the mount's poll (half the 10 s attribute timeout) drops the pages.
func TestGrownFileTailPage(t *testing.T) {
	e := mountEnv(t)
	opts := fuse.DefaultOptions()
	opts.AttrTimeout, opts.EntryTimeout = 10*time.Second, 20*time.Millisecond
	mnt := mountOther(t, e, opts)
	first := bytes.Repeat([]byte{'a'}, 100)
	if err := os.WriteFile(filepath.Join(e.mnt, "f"), first, 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(mnt, "f")
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 4096)
	if n, _ := r.ReadAt(buf, 0); n != 100 || !bytes.Equal(buf[:n], first) {
		t.Fatalf("first read: %d bytes", n)
	}
	more := bytes.Repeat([]byte{'b'}, 100)
	commitWrite(t, e.vol, "f", more, 100)
	want := append(append([]byte(nil), first...), more...)
	deadline := time.Now().Add(3 * time.Second)
	for {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stat still gives size %d", st.Size())
		}
		time.Sleep(10 * time.Millisecond)
	}
	n, _ := r.ReadAt(buf, 0)
	if !bytes.Equal(buf[:n], want) {
		t.Fatalf("held descriptor reads %d bytes %q after the size grew to 200, want %q", n, buf[:n], want)
	}
}

// TestTailFollow: a log follower through a mount with the default
// options (stat the path, read what the size says was appended) while
// another client appends and closes: every byte read must be one the
// writer wrote. The lookup behind the stat hands the kernel the new size
// (it keeps the pages: explicit data cache control), and the page it
// cached with the old end zero-filled is read until the mount's next poll
// (up to half the attribute timeout later).
func TestTailFollow(t *testing.T) {
	e := mountEnv(t)
	mnt := mountOther(t, e, fuse.DefaultOptions())
	if err := os.WriteFile(filepath.Join(e.mnt, "log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(mnt, "log")
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var pos int64
	for i := range 8 {
		line := bytes.Repeat([]byte{byte('a' + i)}, 99)
		line = append(line, '\n')
		commitWrite(t, e.vol, "log", line, pos)
		deadline := time.Now().Add(3 * time.Second)
		for {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() >= pos+int64(len(line)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("append %d not seen after 3 s", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
		buf := make([]byte, len(line))
		n, _ := r.ReadAt(buf, pos)
		if !bytes.Equal(buf[:n], line) {
			t.Fatalf("append %d: read %q at %d once stat gave the new size, want %q", i, buf[:n], pos, line)
		}
		pos += int64(len(line))
	}
}

// TestOpenAfterSameSizeRewrite: another client rewrites a file with
// data of the same size and sets its mtime back (cp -p, rsync --inplace,
// tar -x over an existing file). The next open here must read the new
// data (close-to-open), but Open keeps the kernel's pages whenever size
// and mtime are as when they were cached (node.pages, sameData), although
// the attributes' version (and ctime) moved: the old data is read until
// the pages are evicted. (The poll of files held open compares versions
// and would have dropped them.)
func TestOpenAfterSameSizeRewrite(t *testing.T) {
	e := mountEnv(t)
	mnt := mountOther(t, e, fuse.DefaultOptions())
	old := randBytes(21, 8192)
	if err := os.WriteFile(filepath.Join(e.mnt, "f"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(mnt, "f")
	if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, old) {
		t.Fatalf("first read: %v", err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithoutCancel(t.Context())
	next := randBytes(22, 8192)
	commitWrite(t, e.vol, "f", next, 0)
	n, _, err := e.vol.Lookup(ctx, e.vol.Root(), "f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.vol.SetAttr(ctx, n, client.SetAttrIn{Mask: client.SetMtime, Mtime: st.ModTime()}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, next) {
		t.Fatal("a new open reads the old data of a file another client rewrote (same size, mtime set back)")
	}
}

// TestAppendHandleSeenByCachedHandle: this mount's own O_APPEND
// writes (FOPEN_DIRECT_IO, past the page cache) are read at once through
// another descriptor of the file whose last page the kernel cached.
func TestAppendHandleSeenByCachedHandle(t *testing.T) {
	e := mountEnv(t)
	p := filepath.Join(e.mnt, "f")
	first := bytes.Repeat([]byte{'a'}, 100)
	if err := os.WriteFile(p, first, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 4096)
	if n, _ := r.ReadAt(buf, 0); n != 100 {
		t.Fatalf("first read: %d bytes", n)
	}
	a, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	more := bytes.Repeat([]byte{'b'}, 100)
	if _, err := a.Write(more); err != nil {
		t.Fatal(err)
	}
	n, _ := r.ReadAt(buf, 0)
	if want := append(append([]byte(nil), first...), more...); !bytes.Equal(buf[:n], want) {
		t.Fatalf("cached descriptor reads %q after this mount's append, want %q", buf[:n], want)
	}
}

// TestIdleWakeConcurrentReads: a file held open here went idle (its
// pages dropped, its attributes no longer asked for) while the client's
// read-ahead still holds its chunks; another client rewrites it. The
// first read after that asks for the attributes (handle.touch), but reads
// arriving together with it do not wait for the answer: they are served
// the read-ahead's chunks of the old data, which the kernel then caches.
func TestIdleWakeConcurrentReads(t *testing.T) {
	e := mountEnv(t)
	const size = 8 << 20
	old := randBytes(31, size)
	r := openShortTimeouts(t, e, old)
	for round := range 3 {
		// A sequential read to the end fills the client's read-ahead.
		got := make([]byte, size)
		if _, err := r.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2500 * time.Millisecond) // idle after max(4 x 200 ms, 2 s)
		next := randBytes(uint64(32+round), size)
		commitWrite(t, e.vol, "f", next, 0)
		// Reads of the last chunks, all at once.
		const readers = 8
		errs := make(chan error, readers)
		start := make(chan struct{})
		for i := range readers {
			go func() {
				<-start
				off := int64(size - 3<<20 + i*(3<<20)/readers)
				buf := make([]byte, 4096)
				n, err := r.ReadAt(buf, off)
				if err != nil {
					errs <- err
					return
				}
				switch {
				case bytes.Equal(buf[:n], next[off:off+int64(n)]):
					errs <- nil
				case bytes.Equal(buf[:n], old[off:off+int64(n)]):
					errs <- fmt.Errorf("a read right after the idle period returned the data from before another client's commit, at offset %d", off)
				default:
					errs <- fmt.Errorf("a read at %d returned neither the old nor the new data", off)
				}
			}()
		}
		close(start)
		for range readers {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		old = next
	}
}
