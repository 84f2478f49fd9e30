package client

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ReadLent reads at off like ReadAt, but may answer without copying the
// data: from the read-ahead cache, whose chunk buffers it lends. It
// returns the data read (n bytes in all, in order, as one or more slices)
// and release, which the caller must call once it no longer reads them:
// until then the lent buffers are neither reused nor changed. Data that
// cannot be lent (not fetched ahead, overlaid by buffered writes, holes)
// is read into p as ReadAt does and returned as p[:n]. err is io.EOF when
// n < len(p), as for ReadAt. release is never nil; after an error other
// than io.EOF there is nothing to release.
//
// It saves the copy of a sequential reader's data from the chunk buffer
// into p (a FUSE read answers with the slices themselves).
func (f *File) ReadLent(ctx context.Context, p []byte, off int64) (data [][]byte, release func(), err error) {
	if off < 0 {
		return nil, noRelease, fmt.Errorf("%w: negative offset", ErrInvalid)
	}
	st := f.st
	st.mu.Lock()
	size, chunked := st.size, st.chunked
	buffered := len(st.dirty) > 0 || len(st.inflight) > 0
	st.mu.Unlock()
	if !chunked || buffered || uint64(off) >= size || len(p) == 0 {
		n, err := st.read(ctx, p, off)
		if err != nil && err != io.EOF {
			return nil, noRelease, err
		}
		return [][]byte{p[:n]}, noRelease, err
	}
	n := int(min(uint64(len(p)), size-uint64(off)))
	data, release, err = st.lendChunked(ctx, p[:n], uint64(off), size)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return data, release, err
}

func noRelease() {}

// lendChunked reads len(p) bytes at off of a chunked file of size bytes
// as readChunked does, but returns them as slices of the chunks fetched
// ahead when they hold all of them; otherwise (the read goes direct, a
// chunk is a hole or shorter than its part: zeros that are not in its
// buffer) it fills p and returns it.
func (st *openInode) lendChunked(ctx context.Context, p []byte, off, size uint64) ([][]byte, func(), error) {
	chunks := st.ahead(off, len(p), size)
	if chunks == nil {
		if err := st.v.readChunks(ctx, st.node.ID, p, off); err != nil {
			return nil, noRelease, err
		}
		return [][]byte{p}, noRelease, nil
	}
	release := func() { st.ra.release(chunks) }
	if err := st.waitChunks(ctx, chunks); err != nil {
		release()
		if errors.Is(err, errFetchFailed) {
			err = st.v.readChunks(ctx, st.node.ID, p, off)
		}
		if err != nil {
			return nil, noRelease, err
		}
		return [][]byte{p}, noRelease, nil
	}
	data := make([][]byte, 0, len(chunks))
	end := off + uint64(len(p))
	for _, c := range chunks {
		lo := max(off, c.idx*ChunkSize) - c.idx*ChunkSize
		hi := min(end, (c.idx+1)*ChunkSize) - c.idx*ChunkSize
		if hi > uint64(len(c.data)) {
			copyChunks(p, off, chunks)
			release()
			return [][]byte{p}, noRelease, nil
		}
		data = append(data, c.data[lo:hi])
	}
	return data, release, nil
}
