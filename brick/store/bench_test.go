package store

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

func benchModes(b *testing.B, fn func(b *testing.B, noSync bool)) {
	for _, noSync := range []bool{false, true} {
		name := "sync"
		if noSync {
			name = "nosync"
		}
		b.Run(name, func(b *testing.B) { fn(b, noSync) })
	}
}

// BenchmarkApplyBatchCreate applies batches of 64 file creates (one
// synced Pebble commit per batch), as raft delivers them under load.
func BenchmarkApplyBatchCreate(b *testing.B) {
	benchModes(b, func(b *testing.B, noSync bool) {
		h := newHarness(b, func(c *Config) { c.NoSync = noSync; c.Logger = nil }).withRoot()
		const perBatch = 64
		logs := make([]*raft.Log, perBatch)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			for j := range logs {
				logs[j] = h.entry(createCmd(root, fmt.Sprintf("f%d.%d", i, j), layout.NewID(), dfspb.FileType_FILE_TYPE_FILE, true))
			}
			for _, r := range h.s.ApplyBatch(logs) {
				if r.(*dfspb.StoreResult).Code != 0 {
					b.Fatal(ResultError(r.(*dfspb.StoreResult)))
				}
			}
		}
		b.ReportMetric(float64(b.N*perBatch)/b.Elapsed().Seconds(), "creates/s")
	})
}

// BenchmarkWriteChunk1MiB applies one whole-chunk write per entry (chunk
// file written and fsynced, then the index committed).
func BenchmarkWriteChunk1MiB(b *testing.B) {
	benchModes(b, func(b *testing.B, noSync bool) {
		h := newHarness(b, func(c *Config) { c.NoSync = noSync; c.Logger = nil })
		file := layout.NewID()
		data := pattern(1, DefaultChunkSize)
		b.SetBytes(DefaultChunkSize)
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			r := h.apply(writeChunkCmd(file, uint64(i%64), 0, data))
			if r.Code != 0 {
				b.Fatal(ResultError(r))
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "MiB/s")
	})
}
