package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/dfsproject/dfs/pkg/wire"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Read-ahead of chunked files. The kernel asks for at most MaxReadAhead
// (1 MiB) at a time and keeps one or two such requests outstanding, so a
// sequential reader waits a round trip per request. Once reads of a file
// follow each other, the client fetches whole chunks ahead of them, up to
// raWindow chunks, in parallel; chunks are striped over the subvolumes,
// so the fetches spread over every replica set.
//
// The kernel's requests of a sequential reader arrive slightly out of
// order (its read-ahead and the reader's own read are served by different
// FUSE threads): a read that starts in a chunk already fetched or being
// fetched counts as sequential, and the cache keeps raBehind chunks behind
// the newest read for the request that was overtaken. Only a read outside
// the cache that does not continue the last one starts over.
//
// A chunk's buffer comes from the data path codec's pool (pkg/wire) and
// goes back to it once the chunk has left the cache, its fetch is done and
// no reader is copying from it (refs), which saves zeroing and collecting
// a fresh 1 MiB buffer per chunk.
//
// The cache belongs to the file's shared open state and holds committed
// data only: buffered writes of this client overlay it as they overlay any
// read, and any change to the file's data here, any newer attributes seen
// (another client committed), and every new open (close-to-open) drop it.
const (
	// raStart is how many sequential reads start the read-ahead.
	raStart = 2
	// raWindow is the most chunks fetched ahead of the reader.
	raWindow = 8
	// raBehind is how many chunks behind the newest read stay cached.
	raBehind = 2
)

// readAhead is an openInode's read-ahead state.
type readAhead struct {
	mu     sync.Mutex
	next   uint64 // where a sequential read continues (the furthest end)
	seq    int    // sequential reads in a row
	top    uint64 // the first chunk of the newest sequential read
	chunks map[uint64]*raChunk
}

// raChunk is one chunk fetched ahead: data is valid once done is closed
// and err is nil; shorter than ChunkSize at the end of the data, nil for
// a hole. fetched, refs and dropped are guarded by readAhead.mu.
type raChunk struct {
	idx     uint64 // the chunk's index in the file
	done    chan struct{}
	data    []byte
	err     error
	fetched bool // data and err are set
	refs    int  // readers that will copy from data
	dropped bool // no longer in the cache
}

// invalidate drops everything fetched or being fetched.
func (ra *readAhead) invalidate() {
	ra.mu.Lock()
	ra.dropAll()
	ra.seq, ra.top = 0, 0
	ra.mu.Unlock()
}

// dropAll empties the cache. ra.mu is held.
func (ra *readAhead) dropAll() {
	for _, c := range ra.chunks {
		ra.drop(c)
	}
	ra.chunks = nil
}

// drop marks c as out of the cache (the caller removes it from the map)
// and recycles its buffer if nobody needs it. ra.mu is held.
func (ra *readAhead) drop(c *raChunk) {
	c.dropped = true
	ra.recycle(c)
}

// recycle gives c's buffer back to the codec's pool once c is out of the
// cache, fetched, and not being read. ra.mu is held.
func (ra *readAhead) recycle(c *raChunk) {
	if c.dropped && c.fetched && c.refs == 0 && c.data != nil {
		wire.Recycle(c.data)
		c.data = nil
	}
}

// release ends the readers' hold on chunks. ra.mu is not held.
func (ra *readAhead) release(chunks []*raChunk) {
	ra.mu.Lock()
	for _, c := range chunks {
		c.refs--
		ra.recycle(c)
	}
	ra.mu.Unlock()
}

// readChunked fills p with committed data at off of the chunked file
// whose size is size (as the reader saw it), through the read-ahead cache
// when reads are sequential.
func (st *openInode) readChunked(ctx context.Context, p []byte, off, size uint64) error {
	want := st.ahead(off, len(p), size)
	if want == nil {
		return st.v.readChunks(ctx, st.node.ID, p, off)
	}
	defer st.ra.release(want)
	if err := st.waitChunks(ctx, want); err != nil {
		if errors.Is(err, errFetchFailed) {
			return st.v.readChunks(ctx, st.node.ID, p, off)
		}
		return err
	}
	copyChunks(p, off, want)
	return nil
}

// errFetchFailed: a chunk fetched ahead failed; the read goes direct.
var errFetchFailed = errors.New("client: read-ahead fetch failed")

// ahead keeps the read-ahead state for a read of n bytes at off of a file
// of size bytes: when reads are sequential it starts the fetches ahead
// and returns the cached chunks the read spans, in order, each with a
// reference held (release them); nil when the read is to go direct.
func (st *openInode) ahead(off uint64, n int, size uint64) []*raChunk {
	ra := &st.ra
	first, last := off/ChunkSize, (off+uint64(n)-1)/ChunkSize
	ra.mu.Lock()
	defer ra.mu.Unlock()
	switch {
	case off == ra.next || ra.chunks[first] != nil:
		ra.seq++
		ra.next = max(ra.next, off+uint64(n))
	default:
		ra.dropAll()
		ra.seq, ra.top = 0, 0
		ra.next = off + uint64(n)
	}
	if ra.seq < raStart {
		return nil
	}
	// Keep raBehind chunks behind the newest read, fetch up to raWindow
	// past it.
	ra.top = max(ra.top, first)
	for idx, c := range ra.chunks {
		if idx+raBehind < ra.top {
			delete(ra.chunks, idx)
			ra.drop(c)
		}
	}
	if ra.chunks == nil {
		ra.chunks = make(map[uint64]*raChunk)
	}
	ahead := min(raWindow, 1<<min(ra.seq-raStart, 3))
	end := (size + ChunkSize - 1) / ChunkSize // chunks in the file
	want := make([]*raChunk, 0, last-first+1)
	for idx := first; idx <= last+uint64(ahead) && idx < end; idx++ {
		c := ra.chunks[idx]
		if c == nil {
			c = &raChunk{idx: idx, done: make(chan struct{})}
			ra.chunks[idx] = c
			go st.fetchChunk(idx, c)
		}
		if idx <= last {
			c.refs++
			want = append(want, c)
		}
	}
	if uint64(len(want)) != last-first+1 {
		// Past the end of the file as seen: read directly.
		for _, c := range want {
			c.refs--
			ra.recycle(c)
		}
		return nil
	}
	return want
}

// waitChunks waits until chunks are fetched; errFetchFailed (and the cache
// dropped) if one of them failed.
func (st *openInode) waitChunks(ctx context.Context, chunks []*raChunk) error {
	for _, c := range chunks {
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctxError(ctx, "read")
		}
		if c.err != nil {
			st.ra.invalidate()
			return fmt.Errorf("%w: %w", errFetchFailed, c.err)
		}
	}
	return nil
}

// copyChunks fills p, at file offset off, from the fetched chunks it
// spans (chunks[0] holds off), zeros where they hold nothing.
func copyChunks(p []byte, off uint64, chunks []*raChunk) {
	for _, c := range chunks {
		lo := max(off, c.idx*ChunkSize)
		hi := min(off+uint64(len(p)), (c.idx+1)*ChunkSize)
		dst := p[lo-off : hi-off]
		coff := lo - c.idx*ChunkSize
		var n int
		if coff < uint64(len(c.data)) {
			n = copy(dst, c.data[coff:])
		}
		clear(dst[n:])
	}
}

// fetchChunk reads chunk idx whole into c, in the background.
func (st *openInode) fetchChunk(idx uint64, c *raChunk) {
	defer close(c.done)
	v, file := st.v, st.node.ID
	var res *dfspb.ReadResponse
	_, err := v.call(v.bg, v.subOfChunk(file, idx), "read ahead", func(ctx context.Context, cl dfspb.BrickServiceClient, o callOpts) error {
		r, err := cl.ReadChunk(ctx, &dfspb.ReadChunkRequest{File: file[:], Index: idx, Offset: 0, Length: ChunkSize}, o...)
		res = r
		return err
	})
	hole := false
	if err == nil {
		err = codeError(res.GetCode(), res.GetMessage())
		if errors.Is(err, ErrNotFound) {
			err, hole = nil, true
		} else if err != nil {
			err = fmt.Errorf("read chunk %d: %w", idx, err)
		}
	}
	ra := &st.ra
	ra.mu.Lock()
	defer ra.mu.Unlock()
	c.fetched = true
	switch {
	case err != nil:
		c.err = err
	case !hole:
		c.data = res.GetData()
		ra.recycle(c) // dropped while it was being fetched
	}
}
