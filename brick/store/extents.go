package store

import (
	"fmt"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// writeExtents applies each extent as a WriteChunkCmd, in order, in this
// entry; the answer is the chunk record after the last.
func (t *txn) writeExtents(c *dfspb.WriteExtentsCmd) (*dfspb.StoreResult, error) {
	if len(c.Extents) == 0 {
		return nil, fmt.Errorf("%w: write of no extents", ErrInvalid)
	}
	// Every extent is checked before any is written: a refused command
	// must leave the chunk file as its record says.
	for _, e := range c.Extents {
		if end := int64(e.Offset) + int64(len(e.Data)); end > int64(t.s.cfg.ChunkSize) {
			return nil, fmt.Errorf("%w: write [%d, %d) past chunk size %d", ErrInvalid, e.Offset, end, t.s.cfg.ChunkSize)
		}
	}
	var res *dfspb.StoreResult
	for _, e := range c.Extents {
		var err error
		res, err = t.writeChunk(&dfspb.WriteChunkCmd{File: c.File, Index: c.Index, Offset: e.Offset, Data: e.Data})
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}
