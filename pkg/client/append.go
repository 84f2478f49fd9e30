package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// maxAppendTries bounds how often an append starts over because the file
// changed form (inline, chunked) under it.
const maxAppendTries = 10

// AppendWrite writes p at the end of the file as committed on its
// subvolume, atomically with respect to appends from every client
// (O_APPEND), and returns the offset it went to. Data buffered through this
// Volume is committed first. It is not buffered: an inline file takes one
// WriteInline{append} (one Raft round), a chunked one an AppendReserve on
// the inode's subvolume and then the chunk writes. Both carry an op id, so
// a retry after a lost answer does not append twice. A file growing past
// InlineMax moves to chunks first (refused and redone if it changed
// meanwhile).
func (f *File) AppendWrite(ctx context.Context, p []byte) (uint64, error) {
	if !f.writable {
		return 0, fmt.Errorf("%w: file not open for writing", ErrInvalid)
	}
	st := f.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.flushLocked(ctx); err != nil {
		return 0, err
	}
	v := st.v
	sub := v.subOfDir(st.node.Locator)
	op := layout.NewID()
	for try := 0; ; try++ {
		if try == maxAppendTries {
			return 0, fmt.Errorf("%w: append: the file kept changing", ErrUnavailable)
		}
		if !st.remoteChunked {
			cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteInline{WriteInline: &dfspb.WriteInlineCmd{
				Id: st.node.ID[:], Data: p, Append: true, OpId: op[:],
			}}}
			res, _, err := v.mutate(ctx, sub, "append", cmd)
			if err == nil {
				st.adopt(res.GetAttr())
				return res.GetOffset(), nil
			}
			if !errors.Is(err, ErrTooBig) {
				return 0, err
			}
			// Past InlineMax, or chunked by another client meanwhile.
			a, err := v.getAttr(ctx, st.node)
			if err != nil {
				return 0, err
			}
			st.adopt(a)
			if !a.Chunked {
				if err := st.moveToChunks(ctx, a); err != nil && !errors.Is(err, ErrStale) {
					return 0, err
				}
			}
			continue
		}
		cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_AppendReserve{AppendReserve: &dfspb.AppendReserveCmd{
			Id: st.node.ID[:], Length: uint64(len(p)), OpId: op[:],
		}}}
		res, _, err := v.mutate(ctx, sub, "append", cmd)
		if errors.Is(err, ErrTooBig) {
			// Inline again (truncated to 0 meanwhile), or too large.
			a, gerr := v.getAttr(ctx, st.node)
			if gerr != nil {
				return 0, gerr
			}
			if a.Chunked {
				return 0, err
			}
			st.adopt(a)
			continue
		}
		if err != nil {
			return 0, err
		}
		off := res.GetOffset()
		if err := v.writeRange(ctx, st.node.ID, off, p); err != nil {
			return 0, err
		}
		st.adopt(res.GetAttr())
		return off, nil
	}
}

// moveToChunks moves the data of inline file a to chunk 0 and marks it
// chunked, unless it changed since a was read (ErrStale). Callers hold mu
// and have nothing buffered.
func (st *openInode) moveToChunks(ctx context.Context, a *dfspb.Attr) error {
	v := st.v
	if a.Size > 0 {
		data, err := v.readInline(ctx, st.node, 0, int(a.Size))
		if err != nil {
			return err
		}
		cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{File: st.node.ID[:], Index: 0, Data: data}}}
		if _, _, err := v.mutate(ctx, v.subOfChunk(st.node.ID, 0), "append", cmd); err != nil {
			return err
		}
	}
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_CommitSize{CommitSize: &dfspb.CommitSizeCmd{
		Id: st.node.ID[:], Size: a.Size, Exact: true, Chunked: true, ExpectVersion: a.Version,
	}}}
	res, _, err := v.mutate(ctx, v.subOfDir(st.node.Locator), "append", cmd)
	if err != nil {
		return err
	}
	st.adopt(res.GetAttr())
	return nil
}

// writeRange writes p at file offset off straight to the chunks (no
// buffering), one WriteChunk per chunk touched, in parallel.
func (v *Volume) writeRange(ctx context.Context, file layout.ID, off uint64, p []byte) error {
	// p is the caller's buffer (the kernel's request, which go-fuse
	// reuses once Write returns), and the write codec sends large data
	// without copying it (pkg/wire): gRPC's writer may still be copying
	// a frame of a call that was cancelled after this returns.
	p = bytes.Clone(p)
	type piece struct {
		idx  uint64
		coff uint32
		data []byte
	}
	var pieces []piece
	for done := 0; done < len(p); {
		pos := off + uint64(done)
		idx, coff := pos/ChunkSize, pos%ChunkSize
		n := min(len(p)-done, int(ChunkSize-coff))
		pieces = append(pieces, piece{idx, uint32(coff), p[done : done+n]})
		done += n
	}
	errs := make([]error, len(pieces))
	done := make(chan struct{})
	for i, pc := range pieces {
		go func() {
			defer func() { done <- struct{}{} }()
			cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{
				File: file[:], Index: pc.idx, Offset: pc.coff, Data: pc.data,
			}}}
			_, _, errs[i] = v.mutate(ctx, v.subOfChunk(file, pc.idx), "append", cmd)
		}()
	}
	for range pieces {
		<-done
	}
	return errors.Join(errs...)
}
