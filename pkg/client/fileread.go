package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// overlayPiece is a copy of buffered data at a file offset.
type overlayPiece struct {
	off  uint64
	data []byte
}

// read reads p at off (see File.ReadAt).
func (st *openInode) read(ctx context.Context, p []byte, off int64) (int, error) {
	n, err := st.readOnce(ctx, p, off)
	if errors.Is(err, errMovedToChunks) {
		// The file went from inline to chunked since we looked (a
		// flush here, or another client): learn that and read again.
		a, aerr := st.v.getAttr(ctx, st.node)
		if aerr != nil {
			return 0, aerr
		}
		st.mu.Lock()
		st.adopt(a)
		st.mu.Unlock()
		n, err = st.readOnce(ctx, p, off)
	}
	if errors.Is(err, errMovedToChunks) {
		err = fmt.Errorf("%w: %v", ErrIO, err)
	}
	return n, err
}

// errMovedToChunks is ReadInline's answer for a file that is chunked.
var errMovedToChunks = errors.New("client: file data moved to chunks")

func (st *openInode) readOnce(ctx context.Context, p []byte, off int64) (int, error) {
	st.mu.Lock()
	size, chunked := st.size, st.chunked
	if uint64(off) >= size {
		st.mu.Unlock()
		return 0, io.EOF
	}
	n := int(min(uint64(len(p)), size-uint64(off)))
	want := p[:n]
	pieces, covered := st.overlays(uint64(off), n)
	fetched := st.fetchedFor(size)
	st.mu.Unlock()

	if !covered {
		var err error
		switch {
		case chunked:
			err = st.readChunked(ctx, want, uint64(off), size)
		case fetched != nil:
			fetched.readAt(want, uint64(off))
			if uint64(off)+uint64(n) >= uint64(len(fetched.data)) {
				// Read to its end: the kernel's page cache has it
				// now; do not hold it for the rest of the open.
				st.releaseFetched(fetched)
			}
		default:
			err = st.v.readInlineInto(ctx, st.node, want, uint64(off))
			if errors.Is(err, ErrInvalid) {
				err = fmt.Errorf("%w: %w", errMovedToChunks, err)
			}
		}
		if err != nil {
			return 0, err
		}
	}
	for _, pc := range pieces {
		copy(want[pc.off-uint64(off):], pc.data)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// overlays copies the buffered data within [off, off+n): writes in flight
// first, then newer dirty data. covered reports that buffers cover the
// whole range. Callers hold mu.
func (st *openInode) overlays(off uint64, n int) (pieces []overlayPiece, covered bool) {
	if len(st.dirty) == 0 && len(st.inflight) == 0 {
		return nil, false
	}
	covered = true
	end := off + uint64(n)
	for pos := off; pos < end; {
		idx, coff := pos/ChunkSize, int(pos%ChunkSize)
		ln := int(min(end-pos, ChunkSize-uint64(coff)))
		chunkCovered := false
		for _, b := range []*chunkBuf{st.inflight[idx], st.dirty[idx]} {
			if b == nil {
				continue
			}
			for _, e := range b.ext {
				lo, hi := max(e.off, coff), min(e.end, coff+ln)
				if lo < hi {
					data := append([]byte(nil), e.buf[lo-e.off:hi-e.off]...)
					pieces = append(pieces, overlayPiece{off: idx*ChunkSize + uint64(lo), data: data})
				}
			}
			chunkCovered = chunkCovered || b.covers(coff, coff+ln)
		}
		covered = covered && chunkCovered
		pos += uint64(ln)
	}
	return pieces, covered
}

// readInline reads up to n bytes of an inline file's data at off; the
// answer is shorter at the end of the data.
func (v *Volume) readInline(ctx context.Context, n Node, off uint64, length int) ([]byte, error) {
	var res *dfspb.ReadResponse
	_, err := v.call(ctx, v.subOfDir(n.Locator), "read", func(ctx context.Context, c dfspb.BrickServiceClient, o callOpts) error {
		r, err := c.ReadInline(ctx, &dfspb.ReadInlineRequest{Id: n.ID[:], Offset: off, Length: uint32(length)}, o...)
		res = r
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := codeError(res.GetCode(), res.GetMessage()); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return res.Data, nil
}

// readInlineInto fills p with inline data at off, zeros past its end.
func (v *Volume) readInlineInto(ctx context.Context, n Node, p []byte, off uint64) error {
	data, err := v.readInline(ctx, n, off, len(p))
	if err != nil {
		return err
	}
	clear(p[copy(p, data):])
	return nil
}

// readChunks fills p with file data at off from the chunks it spans (in
// parallel), zeros where a chunk holds nothing.
func (v *Volume) readChunks(ctx context.Context, file layout.ID, p []byte, off uint64) error {
	type piece struct {
		idx  uint64
		coff uint32
		dst  []byte
	}
	var pieces []piece
	for done := 0; done < len(p); {
		pos := off + uint64(done)
		idx, coff := pos/ChunkSize, uint32(pos%ChunkSize)
		n := min(len(p)-done, ChunkSize-int(coff))
		pieces = append(pieces, piece{idx, coff, p[done : done+n]})
		done += n
	}
	errs := make([]error, len(pieces))
	readOne := func(i int) {
		pc := pieces[i]
		var res *dfspb.ReadResponse
		_, err := v.call(ctx, v.subOfChunk(file, pc.idx), "read", func(ctx context.Context, c dfspb.BrickServiceClient, o callOpts) error {
			r, err := c.ReadChunk(ctx, &dfspb.ReadChunkRequest{File: file[:], Index: pc.idx, Offset: pc.coff, Length: uint32(len(pc.dst))}, o...)
			res = r
			return err
		})
		if err == nil {
			err = codeError(res.GetCode(), res.GetMessage())
			if errors.Is(err, ErrNotFound) {
				err, res = nil, nil // a hole
			} else if err != nil {
				err = fmt.Errorf("read chunk %d: %w", pc.idx, err)
			}
		}
		if err != nil {
			errs[i] = err
			return
		}
		clear(pc.dst[copy(pc.dst, res.GetData()):])
	}
	if len(pieces) == 1 {
		readOne(0)
		return errs[0]
	}
	var wg sync.WaitGroup
	for i := range pieces {
		wg.Go(func() { readOne(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
