package client

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// write buffers p at off (see File.WriteAt).
func (st *openInode) write(ctx context.Context, p []byte, off int64) (int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.dropFetched()
	limit := st.v.cfg.WriteBuffer
	for st.buffered+len(p) > limit && (len(st.dirty) > 0 || st.running > 0) {
		if !st.chunked {
			break // an inline file holds at most InlineMax
		}
		st.pumpFattest(limit / 4)
		if st.running == 0 {
			break
		}
		st.cond.Wait()
	}
	end := uint64(off) + uint64(len(p))
	if !st.chunked && end > InlineMax {
		if err := st.toChunks(ctx); err != nil {
			return 0, err
		}
	}
	bufLimit, eager := ChunkSize, st.chunked
	if !st.chunked {
		bufLimit = InlineMax
	}
	for done := 0; done < len(p); {
		pos := uint64(off) + uint64(done)
		idx, coff := pos/ChunkSize, int(pos%ChunkSize)
		n := min(len(p)-done, ChunkSize-coff)
		b := st.dirty[idx]
		if b == nil {
			b = &chunkBuf{}
			st.dirty[idx] = b
		}
		st.buffered += b.write(coff, p[done:done+n], bufLimit, eager)
		done += n
	}
	st.size = max(st.size, end)
	st.mtimeNs = time.Now().UnixNano()
	if st.pending != nil {
		// A write after utimens sets mtime again.
		st.pending.Mask &^= uint32(dfspb.SetAttrMask_SET_ATTR_MASK_MTIME)
	}
	st.uncommitted = true
	st.removed = false
	st.ra.invalidate()
	if st.chunked && len(p) > 0 && st.filledChunk(uint64(off)/ChunkSize, (end-1)/ChunkSize) {
		st.pump(false)
	}
	return len(p), nil
}

// filledChunk reports whether a dirty chunk in [first, last] is full: a
// write that filled none has no chunk to start, and small random writes
// need not look at every dirty chunk each (pump). A full chunk left
// waiting for a free flush slot starts when a chunk write ends
// (writeBack). Callers hold mu.
func (st *openInode) filledChunk(first, last uint64) bool {
	for idx := first; idx <= last; idx++ {
		if b := st.dirty[idx]; b != nil && b.full(ChunkSize) {
			return true
		}
	}
	return false
}

// toChunks switches an inline file to chunks because it outgrows
// InlineMax: committed inline data goes under the dirty data of chunk 0,
// to be written with it; the next commit marks the file chunked. Callers
// hold mu.
func (st *openInode) toChunks(ctx context.Context) error {
	if st.remoteSize > 0 && !st.remoteChunked {
		data, err := st.v.readInline(ctx, st.node, 0, int(min(st.remoteSize, InlineMax)))
		if err != nil {
			return err
		}
		b := st.dirty[0]
		if b == nil {
			b = &chunkBuf{}
			st.dirty[0] = b
		}
		st.buffered += b.fillUnder(0, data, ChunkSize)
	}
	st.chunked = true
	return nil
}

// pump starts background writes of dirty chunks that are not already
// being written, up to Config.FlushParallelism at once: all of them with
// all set, otherwise only full ones. Callers hold mu; st.chunked is set.
func (st *openInode) pump(all bool) {
	if len(st.dirty) == 0 {
		return
	}
	idxs := make([]uint64, 0, len(st.dirty))
	for idx, b := range st.dirty {
		if _, busy := st.inflight[idx]; !busy && (all || b.full(ChunkSize)) {
			idxs = append(idxs, idx)
		}
	}
	slices.Sort(idxs)
	for _, idx := range idxs {
		if st.running >= st.v.cfg.FlushParallelism {
			return
		}
		b := st.dirty[idx]
		delete(st.dirty, idx)
		st.inflight[idx] = b
		st.running++
		st.v.wg.Add(1)
		go st.writeBack(idx, b)
	}
}

// pumpFattest makes room in a full write buffer: it starts background
// writes of the dirty chunks holding the most bytes first, until the
// chunk writes in flight hold at least target bytes or
// Config.FlushParallelism run. The other chunks keep gathering writes, so
// that random writes scattered over many chunks commit many extents per
// Raft entry (WriteExtents), not the one or two each chunk holds when
// every chunk is written whenever the buffer fills. Callers hold mu;
// st.chunked is set.
func (st *openInode) pumpFattest(target int) {
	if len(st.dirty) == 0 {
		return
	}
	busy := 0
	for _, b := range st.inflight {
		busy += b.mem()
	}
	type cand struct {
		idx uint64
		mem int
	}
	cands := make([]cand, 0, len(st.dirty))
	for idx, b := range st.dirty {
		if _, ok := st.inflight[idx]; !ok {
			cands = append(cands, cand{idx, b.mem()})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if a.mem != b.mem {
			return b.mem - a.mem
		}
		return cmp.Compare(a.idx, b.idx)
	})
	for _, c := range cands {
		if st.running >= st.v.cfg.FlushParallelism || (busy >= target && st.running > 0) {
			return
		}
		b := st.dirty[c.idx]
		delete(st.dirty, c.idx)
		st.inflight[c.idx] = b
		st.running++
		busy += c.mem
		st.v.wg.Add(1)
		go st.writeBack(c.idx, b)
	}
}

// writeBack writes one chunk buffer in the background.
func (st *openInode) writeBack(idx uint64, b *chunkBuf) {
	defer st.v.wg.Done()
	err := st.v.writeChunk(st.v.bg, st.node.ID, idx, b)
	st.mu.Lock()
	defer st.mu.Unlock()
	// Chunk data fetched ahead while this write was under way may predate
	// it; the buffer that overlaid it is going.
	st.ra.invalidate()
	delete(st.inflight, idx)
	st.running--
	st.buffered -= b.mem()
	if err != nil && st.werr == nil {
		st.werr = err
	}
	st.cond.Broadcast()
	if err == nil {
		st.pump(false)
	}
}

// writeChunk writes the dirty extents of one chunk buffer in one Raft
// entry: a WriteChunk for one extent, a WriteExtents for several (random
// writes scattered over a chunk commit in one round, not one each).
func (v *Volume) writeChunk(ctx context.Context, file layout.ID, idx uint64, b *chunkBuf) error {
	cmd := &dfspb.StoreCommand{}
	switch len(b.ext) {
	case 0:
		return nil
	case 1:
		e := b.ext[0]
		cmd.Op = &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{
			File: file[:], Index: idx, Offset: uint32(e.off), Data: e.buf,
		}}
	default:
		w := &dfspb.WriteExtentsCmd{File: file[:], Index: idx, Extents: make([]*dfspb.ChunkExtent, 0, len(b.ext))}
		for _, e := range b.ext {
			w.Extents = append(w.Extents, &dfspb.ChunkExtent{Offset: uint32(e.off), Data: e.buf})
		}
		cmd.Op = &dfspb.StoreCommand_WriteExtents{WriteExtents: w}
	}
	_, _, err := v.mutate(ctx, v.subOfChunk(file, idx), "write", cmd)
	return err
}

// flushLocked writes every buffered byte and commits the size: for a
// chunked file the chunk writes (in parallel) then one CommitSize; for an
// inline file one WriteInline carrying data and size. Every local change
// of the file's data (commit, truncate, append, punched hole) starts here,
// so it drops the data fetched by Open first. Callers hold mu.
func (st *openInode) flushLocked(ctx context.Context) error {
	st.dropFetched()
	if st.removed {
		return nil
	}
	var err error
	if st.chunked {
		err = st.commitChunks(ctx)
	} else {
		err = st.commitInline(ctx)
	}
	if errors.Is(err, ErrNotFound) {
		// Deleted under us: its data goes with it.
		st.v.logger.Debug("flush of a deleted file; dropping its data", "id", st.node.ID)
		st.removed = true
		st.dropAfter(0)
		st.uncommitted = false
		if st.chunked {
			if err := st.v.deleteChunks(ctx, st.node.ID, 0); err != nil {
				st.v.logger.Warn("could not delete chunks of a deleted file; fsck will find them", "id", st.node.ID, "err", err)
			}
		}
		return nil
	}
	return err
}

func (st *openInode) commitChunks(ctx context.Context) error {
	for {
		st.pump(true)
		if len(st.dirty) == 0 && st.running == 0 {
			break
		}
		st.cond.Wait()
	}
	if st.werr != nil {
		// Sticky: committing the size now would expose the lost data
		// as zeros.
		return st.werr
	}
	if !st.uncommitted {
		return st.commitPending(ctx)
	}
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_CommitSize{CommitSize: &dfspb.CommitSizeCmd{
		Id: st.node.ID[:], Size: st.size, Chunked: true, Then: st.pending,
	}}}
	res, _, err := st.v.mutate(ctx, st.v.subOfDir(st.node.Locator), "commit", cmd)
	if err != nil {
		return err
	}
	st.uncommitted, st.pending = false, nil
	st.adopt(res.GetAttr())
	return nil
}

// commitPending commits a held attribute change on its own, when no data
// commit is left to carry it. Callers hold mu.
func (st *openInode) commitPending(ctx context.Context) error {
	if st.pending == nil {
		return nil
	}
	res, _, err := st.v.mutate(ctx, st.v.subOfDir(st.node.Locator), "setattr", &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SetAttr{SetAttr: st.pending}})
	if err != nil {
		return err
	}
	st.pending = nil
	st.adopt(res.GetAttr())
	return nil
}

func (st *openInode) commitInline(ctx context.Context) error {
	b := st.dirty[0]
	if b == nil || len(b.ext) == 0 {
		delete(st.dirty, 0)
		st.uncommitted = false
		return st.commitPending(ctx)
	}
	if len(b.ext) > 1 {
		// Fill the gaps from the committed data so that one WriteInline
		// (one Raft round) carries everything.
		lo, hi := b.ext[0].off, b.end()
		data, err := st.v.readInline(ctx, st.node, uint64(lo), hi-lo)
		if err != nil {
			return err
		}
		// Past the committed end the gaps are zeros.
		data = append(data, make([]byte, hi-lo-len(data))...)
		st.buffered += b.fillUnder(lo, data, InlineMax)
	}
	var res *dfspb.StoreResult
	for i, e := range b.ext {
		w := &dfspb.WriteInlineCmd{Id: st.node.ID[:], Offset: uint64(e.off), Data: e.buf}
		if i == len(b.ext)-1 {
			w.Then = st.pending
		}
		var err error
		if res, _, err = st.v.mutate(ctx, st.v.subOfDir(st.node.Locator), "commit", &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteInline{WriteInline: w}}); err != nil {
			return err
		}
	}
	st.buffered -= b.mem()
	delete(st.dirty, 0)
	st.uncommitted, st.pending = false, nil
	st.adopt(res.GetAttr())
	return nil
}
