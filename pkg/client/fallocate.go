package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// PunchHole zeroes length bytes at off without changing the file's size
// (fallocate(2) with FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE). Buffered
// writes are committed first. Chunks wholly inside the range are deleted
// (a missing chunk reads as zeros), the ends of the range are overwritten
// with zeros, an inline file's range is overwritten with zeros; then the
// mtime is committed. Bytes past the end of the file are left alone.
func (f *File) PunchHole(ctx context.Context, off, length uint64) error {
	if !f.writable {
		return fmt.Errorf("%w: file not open for writing", ErrInvalid)
	}
	st := f.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.flushLocked(ctx); err != nil {
		return err
	}
	end := st.size
	if length < end-min(off, end) {
		end = off + length
	}
	if off >= end {
		return nil
	}
	v := st.v
	if !st.chunked {
		cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteInline{WriteInline: &dfspb.WriteInlineCmd{
			Id: st.node.ID[:], Offset: off, Data: make([]byte, end-off),
		}}}
		res, _, err := v.mutate(ctx, v.subOfDir(st.node.Locator), "punch hole", cmd)
		if err != nil {
			return err
		}
		st.adopt(res.GetAttr())
		return nil
	}
	for idx := off / ChunkSize; idx*ChunkSize < end; idx++ {
		base := idx * ChunkSize
		lo, hi := max(off, base)-base, min(end, base+ChunkSize)-base
		var cmd *dfspb.StoreCommand
		if lo == 0 && hi == ChunkSize {
			cmd = &dfspb.StoreCommand{Op: &dfspb.StoreCommand_TruncateChunk{TruncateChunk: &dfspb.TruncateChunkCmd{
				File: st.node.ID[:], Index: idx, Length: 0,
			}}}
		} else {
			cmd = &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{
				File: st.node.ID[:], Index: idx, Offset: uint32(lo), Data: make([]byte, hi-lo),
			}}}
		}
		if _, _, err := v.mutate(ctx, v.subOfChunk(st.node.ID, idx), "punch hole", cmd); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_CommitSize{CommitSize: &dfspb.CommitSizeCmd{
		Id: st.node.ID[:], Size: st.size, Chunked: true,
	}}}
	res, _, err := v.mutate(ctx, v.subOfDir(st.node.Locator), "punch hole", cmd)
	if err != nil {
		return err
	}
	st.adopt(res.GetAttr())
	return nil
}
