package store

import (
	"bytes"
	"testing"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// TestWriteExtents checks that one WriteExtentsCmd leaves a chunk as the
// same extents written one WriteChunkCmd each would: bytes, length,
// checksums (overlapping, unaligned and gap-leaving extents, over data
// already there).
func TestWriteExtents(t *testing.T) {
	one, many := newHarness(t, smallConfig), newHarness(t, smallConfig)
	file := layout.NewID()
	base := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{File: file[:], Index: 2, Data: pattern(1, 10000)}}}
	mustOK(t, one.apply(base))
	mustOK(t, many.apply(base))
	exts := []*dfspb.ChunkExtent{
		{Offset: 100, Data: pattern(2, 50)},
		{Offset: 9000, Data: pattern(3, 5000)},  // past the old end
		{Offset: 30000, Data: pattern(4, 4096)}, // leaves a hole
		{Offset: 120, Data: pattern(5, 4096)},   // overlaps the first
	}
	var last *dfspb.StoreResult
	for _, e := range exts {
		last = one.apply(&dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{File: file[:], Index: 2, Offset: e.Offset, Data: e.Data}}})
		mustOK(t, last)
	}
	res := many.apply(&dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteExtents{WriteExtents: &dfspb.WriteExtentsCmd{File: file[:], Index: 2, Extents: exts}}})
	mustOK(t, res)
	if a, b := one.readAll(file, 2), many.readAll(file, 2); !bytes.Equal(a, b) {
		t.Fatalf("chunk bytes differ: %d bytes one by one, %d in one command", len(a), len(b))
	}
	a, b := last.GetChunk(), res.GetChunk()
	if a.Length != b.Length || len(a.Crcs) != len(b.Crcs) {
		t.Fatalf("records differ: length %d / %d, %d / %d checksums", a.Length, b.Length, len(a.Crcs), len(b.Crcs))
	}
	for i := range a.Crcs {
		if a.Crcs[i] != b.Crcs[i] {
			t.Fatalf("block %d checksum %08x one by one, %08x in one command", i, a.Crcs[i], b.Crcs[i])
		}
	}

	// No extents, or one past the chunk, is refused and changes nothing.
	for _, bad := range [][]*dfspb.ChunkExtent{nil, {{Offset: 1, Data: []byte("x")}, {Offset: uint32(many.cfg.ChunkSize), Data: []byte("y")}}} {
		r := many.apply(&dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteExtents{WriteExtents: &dfspb.WriteExtentsCmd{File: file[:], Index: 2, Extents: bad}}})
		if r.GetCode() != dfspb.StoreErrorCode_STORE_ERROR_CODE_INVALID {
			t.Errorf("extents %v: code %v, want INVALID", bad, r.GetCode())
		}
	}
	if a, b := one.readAll(file, 2), many.readAll(file, 2); !bytes.Equal(a, b) {
		t.Fatal("a refused command changed the chunk")
	}
}
