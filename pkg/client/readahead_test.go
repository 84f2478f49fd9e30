package client_test

import (
	"bytes"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

// calls counts the RPCs every brick of the fake volume served.
func (e *env) calls() int64 {
	var n int64
	for _, sv := range e.c.Subvolumes {
		for _, b := range sv.Bricks {
			n += b.Calls()
		}
	}
	return n
}

// readSeq reads f from off to its end in pieces of step bytes.
func readSeq(e *env, f *client.File, off, step int) []byte {
	e.t.Helper()
	var out []byte
	buf := make([]byte, step)
	for {
		n, err := f.ReadAt(e.ctx, buf, int64(off))
		out = append(out, buf[:n]...)
		off += n
		if err == io.EOF {
			return out
		}
		if err != nil {
			e.t.Fatalf("read at %d: %v", off, err)
		}
	}
}

// TestReadAheadSequential: a sequential reader in 128 KiB pieces gets the
// right bytes (a hole and a short last chunk included) with about one
// RPC per chunk, not one per read.
func TestReadAheadSequential(t *testing.T) {
	e := newEnv(t, clienttest.Options{Subvolumes: 2})
	n, data := e.sparseFile(t, 12*client.ChunkSize+1000, 7)

	other := e.open()
	f, err := other.Open(e.ctx, n, syscall.O_RDONLY)
	mustOK(t, "open", err)
	defer f.Release(e.ctx)
	before := e.calls()
	got := readSeq(e, f, 0, 128<<10)
	rpcs := e.calls() - before
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, want %d; first difference at %d", len(got), len(data), firstDiff(got, data))
	}
	// 97 reads; 13 chunks (one a hole) and the first reads before the
	// read-ahead starts.
	if rpcs > 20 {
		t.Fatalf("%d RPCs for a sequential read of 13 chunks in 97 pieces; read-ahead should need about 13", rpcs)
	}
	t.Logf("%d RPCs for 97 sequential reads of 128 KiB", rpcs)
}

// TestReadAheadSeesWrites: data fetched ahead never hides a write of the
// same client, whether still buffered or already written back, nor a
// truncate.
func TestReadAheadSeesWrites(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	size := 8 * client.ChunkSize
	data := randBytes(8, size)
	n := e.writeFile(e.v, e.v.Root(), "f", data)
	f, err := e.v.Open(e.ctx, n, syscall.O_RDWR)
	mustOK(t, "open", err)
	defer f.Release(e.ctx)
	step := 128 << 10
	buf := make([]byte, step)
	off := 0
	read := func() {
		t.Helper()
		k, err := f.ReadAt(e.ctx, buf, int64(off))
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:k], data[off:off+k]) {
			t.Fatalf("read at %d: differs from what was written at %d", off, off+firstDiff(buf[:k], data[off:off+k]))
		}
		off += k
	}
	for range 12 { // well into read-ahead, chunks 1..5 fetched
		read()
	}
	// A buffered write ahead of the reader.
	at := 3*client.ChunkSize + 4242
	copy(data[at:], "buffered write")
	if _, err := f.WriteAt(e.ctx, []byte("buffered write"), int64(at)); err != nil {
		t.Fatal(err)
	}
	// A write that is written back (flushed) before the reader gets there.
	at2 := 4*client.ChunkSize + 99
	copy(data[at2:], "flushed write")
	if _, err := f.WriteAt(e.ctx, []byte("flushed write"), int64(at2)); err != nil {
		t.Fatal(err)
	}
	mustOK(t, "flush", f.Flush(e.ctx))
	for off < 6*client.ChunkSize {
		read()
	}
	// Truncate and grow: the old bytes past the cut read as zeros.
	mustOK(t, "truncate", f.Truncate(e.ctx, uint64(7*client.ChunkSize)))
	mustOK(t, "truncate", f.Truncate(e.ctx, uint64(size)))
	clear(data[7*client.ChunkSize:])
	for off < size {
		read()
	}
}

// TestReadAheadReordered: the kernel's read-ahead requests of a sequential
// reader overtake each other; a read that lands in a chunk already fetched
// keeps the read-ahead going instead of starting it over (a restart costs
// a direct RPC per read until the read-ahead starts again).
func TestReadAheadReordered(t *testing.T) {
	e := newEnv(t, clienttest.Options{Subvolumes: 2})
	const chunks, piece = 16, 256 << 10
	data := randBytes(9, chunks*client.ChunkSize)
	n := e.writeFile(e.v, e.v.Root(), "big", data)
	f, err := e.v.Open(e.ctx, n, syscall.O_RDONLY)
	mustOK(t, "open", err)
	defer f.Release(e.ctx)
	// Pieces in order, but each fourth one overtaken by the next:
	// 0 1 2 4 3 5 6 8 7 ... (the swapped pairs straddle chunk ends).
	pieces := len(data) / piece
	var order []int
	for i := 0; i < pieces; i++ {
		if i%4 == 3 && i+1 < pieces {
			order = append(order, i+1, i)
			i++
			continue
		}
		order = append(order, i)
	}
	before := e.calls()
	buf := make([]byte, piece)
	for _, i := range order {
		off := i * piece
		k, err := f.ReadAt(e.ctx, buf, int64(off))
		if err != nil && err != io.EOF {
			t.Fatalf("read piece %d: %v", i, err)
		}
		if !bytes.Equal(buf[:k], data[off:off+piece]) {
			t.Fatalf("piece %d: wrong bytes (%d read)", i, k)
		}
	}
	rpcs := e.calls() - before
	// About one fetch per chunk and the first reads; starting over at
	// every swap costs about three more per chunk.
	if rpcs > chunks+4 {
		t.Fatalf("%d RPCs for %d reads of %d chunks with swapped pairs; want about one per chunk", rpcs, pieces, chunks)
	}
	t.Logf("%d RPCs for %d reads of %d chunks with swapped pairs", rpcs, pieces, chunks)
}

// TestReadAheadConcurrentReaders: readers sharing one open file, each
// sequential, restart and evict each other's read-ahead while chunk
// buffers are recycled; every read still returns the file's bytes.
func TestReadAheadConcurrentReaders(t *testing.T) {
	e := newEnv(t, clienttest.Options{Subvolumes: 2})
	const chunks = 12
	data := randBytes(10, chunks*client.ChunkSize)
	n := e.writeFile(e.v, e.v.Root(), "big", data)
	f, err := e.v.Open(e.ctx, n, syscall.O_RDONLY)
	mustOK(t, "open", err)
	defer f.Release(e.ctx)
	errs := make(chan error, 3)
	for r := range 3 {
		go func() {
			step := (r + 1) * 96 << 10
			buf := make([]byte, step)
			for pass := range 2 {
				for off := (r * pass * client.ChunkSize) % len(data); off < len(data); off += step {
					k, err := f.ReadAt(e.ctx, buf, int64(off))
					if err != nil && err != io.EOF {
						errs <- err
						return
					}
					if !bytes.Equal(buf[:k], data[off:off+k]) {
						errs <- fmt.Errorf("reader %d: wrong bytes at %d", r, off+firstDiff(buf[:k], data[off:off+k]))
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadLent: a sequential reader through ReadLent gets the file's bytes
// (a hole, a short last chunk and reads straddling chunks included), most
// of them lent from the read-ahead cache rather than copied into its
// buffer, and lent data stays intact while it is held, even after its
// chunk has left the cache and newer chunks have been fetched.
func TestReadLent(t *testing.T) {
	e := newEnv(t, clienttest.Options{Subvolumes: 2})
	n, data := e.sparseFile(t, 20*client.ChunkSize+1000, 11)
	size := len(data)

	other := e.open()
	f, err := other.Open(e.ctx, n, syscall.O_RDONLY)
	mustOK(t, "open", err)
	defer f.Release(e.ctx)
	type loan struct {
		off     int
		data    [][]byte
		release func()
	}
	var held []loan   // the first loans, kept to the end
	step := 384 << 10 // reads straddle chunk ends
	buf := make([]byte, step)
	lent, reads := 0, 0
	for off := 0; ; {
		bufs, release, err := f.ReadLent(e.ctx, buf, int64(off))
		if err != nil && err != io.EOF {
			t.Fatalf("read at %d: %v", off, err)
		}
		got := bytes.Join(bufs, nil)
		if !bytes.Equal(got, data[off:off+len(got)]) {
			t.Fatalf("read at %d: wrong bytes at %d", off, off+firstDiff(got, data[off:off+len(got)]))
		}
		reads++
		if len(bufs[0]) > 0 && &bufs[0][0] != &buf[0] {
			lent++
		}
		if lent > 0 && len(held) < 3 {
			held = append(held, loan{off, bufs, release})
		} else {
			release()
		}
		off += len(got)
		if err == io.EOF {
			if off != size {
				t.Fatalf("EOF at %d, size %d", off, size)
			}
			break
		}
	}
	for _, l := range held {
		got := bytes.Join(l.data, nil)
		if !bytes.Equal(got, data[l.off:l.off+len(got)]) {
			t.Fatalf("data lent at %d changed while held (at %d)", l.off, l.off+firstDiff(got, data[l.off:l.off+len(got)]))
		}
		l.release()
	}
	// Lent unless the read-ahead had not started, or a hole or the
	// file's end is in the read.
	if lent < reads-6 {
		t.Fatalf("%d of %d reads lent; want all but the first few and those with a hole", lent, reads)
	}
	t.Logf("%d of %d reads lent", lent, reads)

	// Past the end, and with buffered writes (copied, overlaid).
	bufs, release, err := f.ReadLent(e.ctx, buf, int64(size))
	release()
	if err != io.EOF || len(bytes.Join(bufs, nil)) != 0 {
		t.Fatalf("read at the end: %d bytes, %v; want 0, EOF", len(bytes.Join(bufs, nil)), err)
	}
	rw, err := other.Open(e.ctx, n, syscall.O_RDWR)
	mustOK(t, "open", err)
	defer rw.Release(e.ctx)
	copy(data[client.ChunkSize+10:], "buffered")
	if _, err := rw.WriteAt(e.ctx, []byte("buffered"), int64(client.ChunkSize+10)); err != nil {
		t.Fatal(err)
	}
	for off := 0; off < 3*client.ChunkSize; off += step {
		bufs, release, err := rw.ReadLent(e.ctx, buf, int64(off))
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Join(bufs, nil); !bytes.Equal(got, data[off:off+step]) {
			t.Fatalf("read at %d with a buffered write: wrong bytes at %d", off, off+firstDiff(got, data[off:off+step]))
		}
		release()
	}
}

// sparseFile writes "big", size random bytes from seed with a hole from
// chunk 5 to 100 bytes into chunk 6 (holes read as zeros), and returns it
// with its content.
func (e *env) sparseFile(t *testing.T, size int, seed uint64) (client.Node, []byte) {
	t.Helper()
	data := randBytes(seed, size)
	clear(data[5*client.ChunkSize : 6*client.ChunkSize+100])
	n := e.writeFile(e.v, e.v.Root(), "big", nil)
	w, err := e.v.Open(e.ctx, n, syscall.O_WRONLY)
	mustOK(t, "open", err)
	for _, part := range [][2]int{{0, 5 * client.ChunkSize}, {6*client.ChunkSize + 100, size}} {
		if _, err := w.WriteAt(e.ctx, data[part[0]:part[1]], int64(part[0])); err != nil {
			t.Fatal(err)
		}
	}
	mustOK(t, "close", w.Release(e.ctx))
	return n, data
}
