package client_test

import (
	"bytes"
	"io"
	"syscall"
	"testing"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

// wantRead reads len(want) bytes of f at off and checks them.
func wantRead(e *env, what string, f *client.File, off int, want []byte) {
	e.t.Helper()
	buf := make([]byte, len(want))
	n, err := f.ReadAt(e.ctx, buf, int64(off))
	if err != nil && (err != io.EOF || n != len(want)) {
		e.t.Fatalf("%s: read at %d: %d bytes, %v", what, off, n, err)
	}
	if !bytes.Equal(buf[:n], want) {
		e.t.Fatalf("%s: read %d bytes at %d, differ at %d", what, n, off, firstDiff(buf[:n], want))
	}
}

// wantFile reads f from off to its end and checks that it is want.
func wantFile(e *env, what string, f *client.File, off int, want []byte) {
	e.t.Helper()
	buf := make([]byte, len(want)+10)
	n, err := f.ReadAt(e.ctx, buf, int64(off))
	if err != io.EOF {
		e.t.Fatalf("%s: read at %d: %d bytes, %v; want io.EOF", what, off, n, err)
	}
	if !bytes.Equal(buf[:n], want) {
		e.t.Fatalf("%s: read %d bytes at %d, want %d; differ at %d", what, n, off, len(want), firstDiff(buf[:n], want))
	}
}

// lookup finds name in the root through v.
func (e *env) lookup(v *client.Volume, name string) client.Node {
	e.t.Helper()
	n, _, err := v.Lookup(e.ctx, v.Root(), name)
	mustOK(e.t, "lookup "+name, err)
	return n
}

// TestOpenReadInlineOneRPC: opening a small file cold and reading it all
// (in several reads) is one RPC: the GetAttr of the open brings the data.
func TestOpenReadInlineOneRPC(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	reader := e.open()
	for i, size := range []int{1, 100, 4096, client.InlineMax} {
		name := "f" + string(rune('a'+i))
		data := randBytes(uint64(i)+40, size)
		e.writeFile(e.v, e.v.Root(), name, data)
		for _, flags := range []int{syscall.O_RDONLY, syscall.O_RDWR} {
			n := e.lookup(reader, name)
			before := e.calls()
			f, err := reader.Open(e.ctx, n, flags)
			mustOK(t, "open", err)
			half := size / 2
			wantRead(e, "first half", f, 0, data[:half])
			wantFile(e, "second half", f, half, data[half:])
			wantFile(e, "past the end", f, size, nil)
			if got := e.calls() - before; got != 1 {
				t.Fatalf("size %d flags %#x: open and reads took %d RPCs, want 1", size, flags, got)
			}
			// Read to its end once, the data is let go: reading
			// again asks the brick.
			wantFile(e, "again", f, 0, data)
			if got := e.calls() - before; got != 2 {
				t.Fatalf("size %d flags %#x: a second read took %d RPCs, want 1", size, flags, got-1)
			}
			mustOK(t, "close", f.Release(e.ctx))
		}
	}

	// A chunked file still reads right (the open brings no data).
	big := randBytes(9, client.InlineMax+1)
	e.writeFile(e.v, e.v.Root(), "big", big)
	f, err := reader.Open(e.ctx, e.lookup(reader, "big"), syscall.O_RDONLY)
	mustOK(t, "open", err)
	wantFile(e, "chunked", f, 0, big)
	mustOK(t, "close", f.Release(e.ctx))
}

// TestOpenSeesCommittedWrite: a write another client committed before the
// open is what the open reads, also through a File opened earlier (the
// new open refreshed the shared state).
func TestOpenSeesCommittedWrite(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	reader := e.open()
	e.writeFile(e.v, e.v.Root(), "f", []byte("first version"))
	n := e.lookup(reader, "f")

	old, err := reader.Open(e.ctx, n, syscall.O_RDONLY)
	mustOK(t, "open", err)
	wantFile(e, "before", old, 0, []byte("first version"))

	// Another client rewrites it (same size, then longer) and closes.
	e.writeFile(e.v, e.v.Root(), "f", []byte("FIRST VERSION"))
	f, err := reader.Open(e.ctx, n, syscall.O_RDONLY)
	mustOK(t, "open", err)
	wantFile(e, "new open", f, 0, []byte("FIRST VERSION"))
	wantFile(e, "earlier open after the refresh", old, 0, []byte("FIRST VERSION"))
	mustOK(t, "close", f.Release(e.ctx))

	e.writeFile(e.v, e.v.Root(), "f", []byte("the second, longer version"))
	f, err = reader.Open(e.ctx, n, syscall.O_RDONLY)
	mustOK(t, "open", err)
	wantFile(e, "longer", f, 0, []byte("the second, longer version"))
	mustOK(t, "close", f.Release(e.ctx))
	mustOK(t, "close", old.Release(e.ctx))

	// Truncated to nothing by the other client.
	e.writeFile(e.v, e.v.Root(), "f", nil)
	f, err = reader.Open(e.ctx, n, syscall.O_RDONLY)
	mustOK(t, "open", err)
	wantFile(e, "emptied", f, 0, nil)
	mustOK(t, "close", f.Release(e.ctx))
}

// TestOpenLocalWriteSeen: after a local write, truncate, commit or punched
// hole, reads of the same handle see it, not the data fetched at open.
func TestOpenLocalWriteSeen(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	e.writeFile(e.v, e.v.Root(), "f", []byte("aaaaaaaaaa"))
	v := e.open()
	f, err := v.Open(e.ctx, e.lookup(v, "f"), syscall.O_RDWR)
	mustOK(t, "open", err)
	wantFile(e, "open", f, 0, []byte("aaaaaaaaaa"))

	_, err = f.WriteAt(e.ctx, []byte("XY"), 2)
	mustOK(t, "write", err)
	wantFile(e, "buffered write", f, 0, []byte("aaXYaaaaaa"))
	wantRead(e, "around the write", f, 4, []byte("aaaa"))
	mustOK(t, "flush", f.Flush(e.ctx))
	wantFile(e, "committed write", f, 0, []byte("aaXYaaaaaa"))

	_, err = f.WriteAt(e.ctx, []byte("tail"), 10)
	mustOK(t, "extending write", err)
	wantFile(e, "extended", f, 0, []byte("aaXYaaaaaatail"))

	mustOK(t, "truncate", f.Truncate(e.ctx, 3))
	wantFile(e, "truncated", f, 0, []byte("aaX"))
	mustOK(t, "grow", f.Truncate(e.ctx, 5))
	wantFile(e, "grown", f, 0, []byte("aaX\x00\x00"))

	_, err = f.WriteAt(e.ctx, []byte("12345"), 0)
	mustOK(t, "write", err)
	mustOK(t, "flush", f.Flush(e.ctx))
	mustOK(t, "punch", f.PunchHole(e.ctx, 1, 2))
	wantFile(e, "punched", f, 0, []byte("1\x00\x0045"))
	mustOK(t, "close", f.Release(e.ctx))

	// A second open on the same Volume, then a write through the first
	// File: the second File's reads see it too.
	f1, err := v.Open(e.ctx, e.lookup(v, "f"), syscall.O_RDWR)
	mustOK(t, "open", err)
	f2, err := v.Open(e.ctx, e.lookup(v, "f"), syscall.O_RDONLY)
	mustOK(t, "open", err)
	_, err = f1.WriteAt(e.ctx, []byte("Z"), 4)
	mustOK(t, "write", err)
	wantFile(e, "other handle", f2, 0, []byte("1\x00\x004Z"))
	mustOK(t, "close", f1.Release(e.ctx))
	wantFile(e, "other handle after close", f2, 0, []byte("1\x00\x004Z"))
	mustOK(t, "close", f2.Release(e.ctx))

	// An appending File.
	fa, err := v.Open(e.ctx, e.lookup(v, "f"), syscall.O_RDWR|syscall.O_APPEND)
	mustOK(t, "open", err)
	wantFile(e, "append open", fa, 0, []byte("1\x00\x004Z"))
	_, err = fa.WriteAt(e.ctx, []byte("!"), 0)
	mustOK(t, "append", err)
	wantFile(e, "appended", fa, 0, []byte("1\x00\x004Z!"))
	mustOK(t, "close", fa.Release(e.ctx))
}

// TestOpenInlineBecomesChunked: an inline file that moves to chunks, here
// or through another client, reads right.
func TestOpenInlineBecomesChunked(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	small := randBytes(1, 1000)
	e.writeFile(e.v, e.v.Root(), "f", small)
	v := e.open()
	n := e.lookup(v, "f")

	// Locally: a write past InlineMax moves the data to chunks.
	f, err := v.Open(e.ctx, n, syscall.O_RDWR)
	mustOK(t, "open", err)
	wantFile(e, "inline", f, 0, small)
	tail := randBytes(2, 5000)
	off := client.InlineMax + 100
	_, err = f.WriteAt(e.ctx, tail, int64(off))
	mustOK(t, "write", err)
	want := make([]byte, off+len(tail))
	copy(want, small)
	copy(want[off:], tail)
	wantFile(e, "moving to chunks", f, 0, want)
	mustOK(t, "flush", f.Flush(e.ctx))
	wantFile(e, "chunked", f, 0, want)
	mustOK(t, "close", f.Release(e.ctx))
	if a, err := v.GetAttr(e.ctx, n); err != nil || !a.Chunked {
		t.Fatalf("attr %v, %v: want a chunked file", a, err)
	}

	// Through another client: an open handle that learns the new
	// attributes (fstat) reads the chunks; so does a new open.
	e.writeFile(e.v, e.v.Root(), "g", small)
	g := e.lookup(v, "g")
	old, err := v.Open(e.ctx, g, syscall.O_RDONLY)
	mustOK(t, "open", err)
	big := randBytes(3, client.InlineMax+3000)
	e.writeFile(e.v, e.v.Root(), "g", big)
	// Until it learns of the change, the open handle's first read gives
	// the file as it was at its open, whole and consistent.
	wantFile(e, "as opened", old, 0, small)
	_, err = v.GetAttr(e.ctx, g)
	mustOK(t, "getattr", err)
	wantFile(e, "old handle, after getattr", old, 0, big)
	fresh, err := v.Open(e.ctx, g, syscall.O_RDONLY)
	mustOK(t, "open", err)
	wantFile(e, "new open", fresh, 0, big)
	mustOK(t, "close", fresh.Release(e.ctx))
	mustOK(t, "close", old.Release(e.ctx))

	// A File opened without data (OpenFresh, as after a create) finds the
	// move to chunks on its first read and reads the chunks.
	e.writeFile(e.v, e.v.Root(), "h", small)
	hn, ha, err := v.Lookup(e.ctx, v.Root(), "h")
	mustOK(t, "lookup", err)
	nodata, err := v.OpenFresh(e.ctx, hn, ha, syscall.O_RDONLY)
	mustOK(t, "open", err)
	e.writeFile(e.v, e.v.Root(), "h", big)
	wantFile(e, "moved under a File without data", nodata, 0, big)
	mustOK(t, "close", nodata.Release(e.ctx))

	// And back: truncated to a small size it is read right again.
	h, err := e.v.Open(e.ctx, g, syscall.O_RDWR)
	mustOK(t, "open", err)
	mustOK(t, "truncate", h.Truncate(e.ctx, 10))
	mustOK(t, "close", h.Release(e.ctx))
	fresh, err = v.Open(e.ctx, g, syscall.O_RDONLY)
	mustOK(t, "open", err)
	wantFile(e, "shrunk", fresh, 0, big[:10])
	mustOK(t, "close", fresh.Release(e.ctx))
}
