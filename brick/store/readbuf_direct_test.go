package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dfsproject/dfs/pkg/layout"
)

// directSupported reports whether the file system of dir takes O_DIRECT.
func directSupported(t *testing.T, dir string) bool {
	t.Helper()
	p := filepath.Join(dir, "direct-probe")
	if err := os.WriteFile(p, make([]byte, directAlign), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	buf := readBuffer(minDirectRead)
	_, err = unix.Pread(fd, buf, 0)
	return err == nil
}

// TestReadBuffer: large read buffers are aligned, with a capacity rounded
// up for a direct read; small ones are plain.
func TestReadBuffer(t *testing.T) {
	for _, n := range []int{minDirectRead, minDirectRead + 1, 1<<20 - 1000, 1 << 20, 4<<20 + 3} {
		for range 20 { // various heap positions
			b := readBuffer(n)
			rounded := (n + directAlign - 1) &^ (directAlign - 1)
			if len(b) != n || cap(b) < rounded || !directOK(b) {
				t.Fatalf("readBuffer(%d): len %d cap %d aligned %v", n, len(b), cap(b), directOK(b))
			}
		}
	}
	if b := readBuffer(4096); len(b) != 4096 {
		t.Fatalf("readBuffer(4096): len %d", len(b))
	}
}

// TestReadChunkDirect: large reads of chunks of every length go to the
// device (where the file system takes O_DIRECT) and give the chunk's
// bytes, including a last block shorter than directAlign; they see bytes
// written through the page cache and not yet written back (a damaged
// block written with a plain write is caught); with O_DIRECT refused they
// read through the page cache and give the same bytes.
func TestReadChunkDirect(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.NoSync = true; c.Logger = nil })
	ctx := context.Background()
	direct := directSupported(t, h.cfg.Dir)
	file := layout.NewID()
	lengths := []int{DefaultChunkSize, DefaultChunkSize - 1000, 3*DefaultBlockSize + 17, minDirectRead + 1}
	datas := make([][]byte, len(lengths))
	for i, n := range lengths {
		datas[i] = pattern(byte(i+5), n)
		if r := h.apply(writeChunkCmd(file, uint64(i), 0, datas[i])); r.Code != 0 {
			t.Fatal(ResultError(r))
		}
	}
	check := func(what string) {
		t.Helper()
		for i, n := range lengths {
			for _, c := range []struct{ off, n int }{{0, n}, {0, DefaultChunkSize}, {DefaultBlockSize, n}, {DefaultBlockSize + 3, n}} {
				got, err := h.s.ReadChunk(ctx, file, uint64(i), int64(c.off), c.n)
				if err != nil {
					t.Fatalf("%s: chunk %d: read %d at %d: %v", what, i, c.n, c.off, err)
				}
				want := datas[i][min(c.off, n):min(c.off+c.n, n)]
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: chunk %d: read %d at %d: %d bytes, want %d; wrong at %d", what, i, c.n, c.off, len(got), len(want), firstDiff(got, want))
				}
			}
		}
	}
	check("direct")
	if h.s.stage.noDirect.Load() == direct {
		t.Fatalf("after large reads: O_DIRECT refused %v, but the file system takes it: %v", h.s.stage.noDirect.Load(), direct)
	}

	// A block changed in the page cache only (dirty, not written back)
	// is what a direct read sees: its checksum fails.
	f, err := os.OpenFile(h.s.chunkPath(file, 0), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	bad := 5*DefaultBlockSize + 99
	if _, err := f.WriteAt([]byte{^datas[0][bad]}, int64(bad)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = h.s.ReadChunk(ctx, file, 0, 0, DefaultChunkSize)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Block != 5 {
		t.Fatalf("whole read of a chunk damaged in the page cache: %v, want a CorruptError of block 5", err)
	}
	f, err = os.OpenFile(h.s.chunkPath(file, 0), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(datas[0][bad:bad+1], int64(bad)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	h.s.stage.noDirect.Store(true)
	check("through the page cache")
}

// TestPreadChunkFallsBack: a read that cannot be direct (unaligned offset
// or buffer, small) reads through the page cache, and a file system that
// refuses O_DIRECT turns it off for the store.
func TestPreadChunkFallsBack(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.NoSync = true; c.Logger = nil })
	data := pattern(9, 1<<20)
	p := filepath.Join(h.cfg.Dir, "plain")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	big := readBuffer(minDirectRead * 2)
	for _, c := range []struct {
		buf []byte
		off int64
	}{
		{big, 0}, {big, directAlign}, {big, 100}, {big[1:], 0}, {big[:4096], 4096},
		{make([]byte, 300<<10)[1:], 8192},
	} {
		n, err := h.s.preadChunk(p, c.buf, c.off)
		if err != nil || n != len(c.buf) || !bytes.Equal(c.buf, data[c.off:c.off+int64(n)]) {
			t.Fatalf("preadChunk of %d bytes at %d: %d, %v", len(c.buf), c.off, n, err)
		}
	}
	// Short at the end of the file.
	n, err := h.s.preadChunk(p, big, int64(len(data)-directAlign))
	if err != nil || n != directAlign || !bytes.Equal(big[:n], data[len(data)-directAlign:]) {
		t.Fatalf("preadChunk at the end: %d, %v", n, err)
	}
	if _, err := h.s.preadChunk(filepath.Join(h.cfg.Dir, "absent"), big, 0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("preadChunk of a missing file: %v, want ErrNotExist", err)
	}
	if h.s.stage.noDirect.Load() && directSupported(t, h.cfg.Dir) {
		t.Fatal("O_DIRECT turned off on a file system that takes it")
	}
}

// TestRecycledBuffers: a whole-chunk read buffer is not handed out again
// while anything refers to it, comes back once nothing does (after a
// garbage collection), and no more than recycleMax ever carry a
// finalizer; reads past them still get buffers.
func TestRecycledBuffers(t *testing.T) {
	// Buffers of earlier tests come back first.
	allBack := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			runtime.GC()
			recycled.mu.Lock()
			free, made := len(recycled.free), recycled.made
			recycled.mu.Unlock()
			if free == made {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d recycled buffers in the free list once unreachable", free, made)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	allBack()
	held := make([][]byte, 0, recycleMax+4)
	seen := map[uintptr]bool{} // addresses: pointers would keep them reachable
	for range recycleMax + 4 {
		b := readBuffer(recycleSize - 1000)
		if len(b) != recycleSize-1000 || cap(b) < recycleSize || !directOK(b) {
			t.Fatalf("readBuffer: len %d cap %d aligned %v", len(b), cap(b), directOK(b))
		}
		p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		if seen[p] {
			t.Fatal("a buffer still referred to was handed out again")
		}
		seen[p] = true
		b[0] = 7
		held = append(held, b)
	}
	runtime.GC()
	runtime.GC()
	recycled.mu.Lock()
	for _, f := range recycled.free {
		if seen[uintptr(unsafe.Pointer(unsafe.SliceData(f)))] {
			recycled.mu.Unlock()
			t.Fatal("a buffer still referred to is in the free list")
		}
	}
	made := recycled.made
	recycled.mu.Unlock()
	if made > recycleMax {
		t.Fatalf("%d recycled buffers made, at most %d", made, recycleMax)
	}
	for _, b := range held {
		if b[0] != 7 {
			t.Fatal("a held buffer changed")
		}
	}
	held = nil

	// Unreachable now: the finalizers put every one back, and the next
	// read reuses one.
	allBack()
	recycled.mu.Lock()
	made = recycled.made
	recycled.mu.Unlock()
	if made != recycleMax {
		t.Fatalf("%d recycled buffers made after %d reads at once, want %d", made, recycleMax+4, recycleMax)
	}
	if b := readBuffer(recycleSize); !seen[uintptr(unsafe.Pointer(unsafe.SliceData(b)))] {
		t.Fatal("a read after the buffers came back got a fresh one")
	}
}
