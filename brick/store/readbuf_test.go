package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/dfsproject/dfs/pkg/layout"
)

// TestReadChunkParts: reads of every size and alignment, small ones
// copied out of pooled buffers and large ones returned in their own,
// give the chunk's bytes; what a read returned stays intact while later
// reads reuse the pooled buffers; a damaged block is still caught.
func TestReadChunkParts(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.NoSync = true; c.Logger = nil })
	ctx := context.Background()
	file := layout.NewID()
	length := DefaultChunkSize - 1000 // a short last block
	data := pattern(3, length)
	if r := h.apply(writeChunkCmd(file, 0, 0, data)); r.Code != 0 {
		t.Fatal(ResultError(r))
	}
	bs := DefaultBlockSize
	type kept struct {
		off int
		got []byte
	}
	var all []kept
	for _, c := range []struct{ off, n int }{
		{0, 4096}, {5, 100}, {bs - 10, 20}, {3*bs + 4096, 4096}, {bs, bs}, {bs + 1, bs},
		{0, 3 * bs / 2}, {2 * bs, 10 * bs}, {0, DefaultChunkSize}, {length - 5000, 4096},
		{length - 100, 4096}, {7 * bs, 1},
	} {
		got, err := h.s.ReadChunk(ctx, file, 0, int64(c.off), c.n)
		if err != nil {
			t.Fatalf("read %d at %d: %v", c.n, c.off, err)
		}
		want := data[c.off:min(c.off+c.n, length)]
		if !bytes.Equal(got, want) {
			t.Fatalf("read %d at %d: %d bytes, want %d; wrong at %d", c.n, c.off, len(got), len(want), firstDiff(got, want))
		}
		all = append(all, kept{c.off, got})
	}
	for i := range 50 { // reuse the pooled buffers
		if _, err := h.s.ReadChunk(ctx, file, 0, int64(i*4096), 4096); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range all {
		if !bytes.Equal(k.got, data[k.off:k.off+len(k.got)]) {
			t.Fatalf("the %d bytes read at %d changed after later reads", len(k.got), k.off)
		}
	}

	// A damaged block fails its checksum, whether the read is small or
	// whole; its neighbours still read.
	f, err := os.OpenFile(h.s.chunkPath(file, 0), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{^data[2*bs+7]}, int64(2*bs+7)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, c := range []struct{ off, n int }{{2*bs + 4096, 4096}, {0, DefaultChunkSize}} {
		_, err := h.s.ReadChunk(ctx, file, 0, int64(c.off), c.n)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Block != 2 {
			t.Fatalf("read %d at %d of a damaged block: %v, want a CorruptError of block 2", c.n, c.off, err)
		}
	}
	if got, err := h.s.ReadChunk(ctx, file, 0, int64(bs+100), 4096); err != nil || !bytes.Equal(got, data[bs+100:bs+100+4096]) {
		t.Fatalf("read next to a damaged block: %v", err)
	}
	// A missing chunk file is corrupt, not absent.
	if err := os.Remove(h.s.chunkPath(file, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.ReadChunk(ctx, file, 0, 0, 4096); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a missing chunk file: %v, want ErrCorrupt", err)
	}
}

// TestReadBufPool: buffers come in the size asked for, pooled ones back
// in their tier, others ignored.
func TestReadBufPool(t *testing.T) {
	for _, n := range []int{1, 512, 513, 4096, 65536, 65537, 1 << 20, 4 << 20} {
		b := getReadBuf(n)
		if len(b) != n || cap(b) < n || cap(b)&(cap(b)-1) != 0 {
			t.Fatalf("getReadBuf(%d): len %d cap %d", n, len(b), cap(b))
		}
		putReadBuf(b)
	}
	if b := getReadBuf(8 << 20); len(b) != 8<<20 {
		t.Fatalf("getReadBuf past the largest tier: len %d", len(b))
	}
	putReadBuf(make([]byte, 3000)) // not a pool size: dropped
	if b := getReadBuf(3000); len(b) != 3000 || cap(b) != 4096 {
		t.Fatalf("getReadBuf(3000) after putting back a foreign buffer: len %d cap %d", len(b), cap(b))
	}
}

// firstDiff is the first index where a and b differ (the shorter length
// if one is a prefix of the other).
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
