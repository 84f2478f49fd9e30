package store

import (
	"context"
	"testing"

	"github.com/dfsproject/dfs/pkg/layout"
)

// BenchmarkReadChunk reads from chunks in the page cache: a 4 KiB piece
// (one block read and verified), as a random reader asks, and a whole
// 1 MiB chunk, as the client's read-ahead asks.
func BenchmarkReadChunk(b *testing.B) {
	h := newHarness(b, func(c *Config) { c.NoSync = true; c.Logger = nil })
	file := layout.NewID()
	const chunks = 16
	data := pattern(1, DefaultChunkSize)
	for i := range chunks {
		if r := h.apply(writeChunkCmd(file, uint64(i), 0, data)); r.Code != 0 {
			b.Fatal(ResultError(r))
		}
	}
	for _, bc := range []struct {
		name string
		n    int
	}{{"4KiB", 4 << 10}, {"1MiB", DefaultChunkSize}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(bc.n))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				off := int64(i*37%(DefaultChunkSize/bc.n)) * int64(bc.n)
				got, err := h.s.ReadChunk(context.Background(), file, uint64(i%chunks), off, bc.n)
				if err != nil || len(got) != bc.n {
					b.Fatalf("read %d bytes: %v", len(got), err)
				}
			}
		})
	}
}
