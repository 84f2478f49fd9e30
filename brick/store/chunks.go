package store

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// getChunk reads a chunk index record from r; nil if absent.
func getChunk(r pebble.Reader, file layout.ID, index uint64) (*dfspb.ChunkInfo, error) {
	v, ok, err := getValue(r, chunkKey(file, index))
	if err != nil {
		return nil, ioErr(err)
	}
	if !ok {
		return nil, nil
	}
	rec := &dfspb.ChunkInfo{}
	if err := proto.Unmarshal(v, rec); err != nil {
		return nil, ioErr(fmt.Errorf("decode chunk %s.%d: %w", file, index, err))
	}
	return rec, nil
}

func marshalChunk(rec *dfspb.ChunkInfo) ([]byte, error) {
	v, err := proto.MarshalOptions{Deterministic: true}.Marshal(rec)
	if err != nil {
		return nil, ioErr(err)
	}
	return v, nil
}

func (s *Store) nblocks(length int64) int64 {
	bs := int64(s.cfg.BlockSize)
	return (length + bs - 1) / bs
}

// crcOf is the checksum of one block's bytes.
func (s *Store) crcOf(b []byte) uint32 { return crc32.Checksum(b, s.crc) }

// zeroCRCOf is the checksum of n zero bytes (n <= BlockSize).
func (s *Store) zeroCRCOf(n int64) uint32 {
	if n == int64(s.cfg.BlockSize) {
		return s.zeroCRC
	}
	return s.crcOf(make([]byte, n))
}

func badSet(rec *dfspb.ChunkInfo) map[int64]bool {
	m := make(map[int64]bool, len(rec.BadBlocks))
	for _, b := range rec.BadBlocks {
		m[int64(b)] = true
	}
	return m
}

func badList(m map[int64]bool, nblocks int64) []uint32 {
	var out []uint32
	for b := range m {
		if b < nblocks {
			out = append(out, uint32(b))
		}
	}
	slices.Sort(out)
	return out
}

// oldBlock reads block b of a chunk (rec as indexed, file normalized to its
// length) and verifies it. bad reports that the block is not trustworthy:
// already marked bad, or failing its checksum outside the recovery window.
// Inside the window (the first entries after an unclean restart) a
// mismatch is expected, since the batch lost in the crash may have written
// the block already; its bytes are then taken as they are.
func (t *txn) oldBlock(cf *chunkFile, rec *dfspb.ChunkInfo, file layout.ID, b int64, bad map[int64]bool) ([]byte, bool, error) {
	s := t.s
	bs := int64(s.cfg.BlockSize)
	start := b * bs
	buf := make([]byte, min(start+bs, int64(rec.Length))-start)
	if _, err := readFull(cf.f, buf, start); err != nil {
		return nil, false, ioErr(err)
	}
	if bad[b] {
		return buf, true, nil
	}
	if s.crcOf(buf) == rec.Crcs[b] {
		return buf, false, nil
	}
	if t.index <= s.recoverUntil {
		s.logger.Warn("chunk block changed by an entry lost in a crash; rewriting it", "file", file, "chunk", rec.Index, "block", b, "index", t.index)
		return buf, false, nil
	}
	s.logger.Error("chunk block corrupt under a partial overwrite; marking it bad until repaired", "file", file, "chunk", rec.Index, "block", b, "index", t.index)
	return buf, true, nil
}

// chunkForWrite locks a chunk and returns its record (a fresh one if
// absent) and whether it existed.
func (t *txn) chunkForWrite(file layout.ID, index uint64) (*dfspb.ChunkInfo, bool, error) {
	t.lockChunk(file, index)
	rec, err := getChunk(t.b, file, index)
	if err != nil || rec != nil {
		return rec, rec != nil, err
	}
	return &dfspb.ChunkInfo{File: file[:], Index: index, BlockSize: uint32(t.s.cfg.BlockSize)}, false, nil
}

// putChunk writes a changed chunk record and updates the counts.
func (t *txn) putChunk(file layout.ID, rec *dfspb.ChunkInfo, existed bool, oldLen int64) error {
	rec.Version = t.index
	v, err := marshalChunk(rec)
	if err != nil {
		return err
	}
	if err := t.b.Set(chunkKey(file, rec.Index), v, nil); err != nil {
		return ioErr(err)
	}
	if !existed {
		t.counts.Chunks++
	}
	t.counts.ChunkBytes += uint64(rec.Length) - uint64(oldLen)
	return nil
}

// deleteChunk removes a chunk's record; its file goes after the commit.
func (t *txn) deleteChunk(file layout.ID, rec *dfspb.ChunkInfo) error {
	if err := t.b.Delete(chunkKey(file, rec.Index), nil); err != nil {
		return ioErr(err)
	}
	t.remove[t.s.chunkPath(file, rec.Index)] = true
	t.counts.Chunks--
	t.counts.ChunkBytes -= uint64(rec.Length)
	return nil
}

func (t *txn) writeChunk(c *dfspb.WriteChunkCmd) (*dfspb.StoreResult, error) {
	if len(c.StageId) > 0 {
		return t.writeStaged(c) // stage.go
	}
	s := t.s
	file, err := parseID("file", c.File)
	if err != nil {
		return nil, err
	}
	off, data := int64(c.Offset), c.Data
	end := off + int64(len(data))
	if end > int64(s.cfg.ChunkSize) {
		return nil, fmt.Errorf("%w: write [%d, %d) past chunk size %d", ErrInvalid, off, end, s.cfg.ChunkSize)
	}
	rec, existed, err := t.chunkForWrite(file, c.Index)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return &dfspb.StoreResult{Chunk: rec}, nil
	}
	oldLen := int64(rec.Length)
	newLen := max(oldLen, end)
	cf, err := t.openChunk(s.chunkPath(file, c.Index), oldLen)
	if err != nil {
		return nil, err
	}
	bs := int64(s.cfg.BlockSize)
	first, last := off/bs, (end-1)/bs
	crcs := make([]uint32, s.nblocks(newLen))
	copy(crcs, rec.Crcs)
	bad := badSet(rec)

	// Blocks wholly in the hole between the old end and the write are zeros.
	for b := s.nblocks(oldLen); b < first; b++ {
		crcs[b] = s.zeroCRC
	}
	// Blocks whose bytes change: the old partial last block if the chunk
	// grows past it, and the blocks written. Only partially covered blocks
	// that held data are read (read-modify-write).
	todo := make([]int64, 0, last-first+2)
	if oldLen%bs != 0 && oldLen/bs < first {
		todo = append(todo, oldLen/bs)
	}
	for b := first; b <= last; b++ {
		todo = append(todo, b)
	}
	for _, b := range todo {
		start := b * bs
		blockEnd := min(start+bs, newLen)
		buf := make([]byte, blockEnd-start)
		covered := off <= start && end >= blockEnd
		markBad := false
		if !covered && start < oldLen {
			old, isBad, err := t.oldBlock(cf, rec, file, b, bad)
			if err != nil {
				return nil, err
			}
			copy(buf, old)
			markBad = isBad
		}
		if lo, hi := max(off, start), min(end, blockEnd); lo < hi {
			copy(buf[lo-start:], data[lo-off:hi-off])
		}
		crcs[b] = s.crcOf(buf)
		if markBad {
			bad[b] = true
		} else {
			delete(bad, b)
		}
	}
	if _, err := cf.f.WriteAt(data, off); err != nil {
		return nil, ioErr(err)
	}
	cf.size = newLen
	rec.Length, rec.Crcs, rec.BadBlocks = uint32(newLen), crcs, badList(bad, int64(len(crcs)))
	if err := t.putChunk(file, rec, existed, oldLen); err != nil {
		return nil, err
	}
	return &dfspb.StoreResult{Chunk: rec}, nil
}

func (t *txn) truncateChunk(c *dfspb.TruncateChunkCmd) (*dfspb.StoreResult, error) {
	s := t.s
	file, err := parseID("file", c.File)
	if err != nil {
		return nil, err
	}
	length := int64(c.Length)
	if length > int64(s.cfg.ChunkSize) {
		return nil, fmt.Errorf("%w: truncate to %d past chunk size %d", ErrInvalid, length, s.cfg.ChunkSize)
	}
	rec, existed, err := t.chunkForWrite(file, c.Index)
	if err != nil {
		return nil, err
	}
	oldLen := int64(rec.Length)
	switch {
	case length == oldLen:
		return &dfspb.StoreResult{Chunk: rec}, nil
	case length == 0:
		if err := t.deleteChunk(file, rec); err != nil {
			return nil, err
		}
		return &dfspb.StoreResult{Chunk: &dfspb.ChunkInfo{File: file[:], Index: c.Index, BlockSize: rec.BlockSize, Version: t.index}}, nil
	}
	cf, err := t.openChunk(s.chunkPath(file, c.Index), oldLen)
	if err != nil {
		return nil, err
	}
	bs := int64(s.cfg.BlockSize)
	n := s.nblocks(length)
	crcs := make([]uint32, n)
	copy(crcs, rec.Crcs)
	bad := badSet(rec)
	// The block holding the old end (growing) or the new end (shrinking)
	// changes length; blocks past the old end are zeros.
	edge := min(oldLen, length)
	if edge%bs != 0 {
		b := edge / bs
		old, isBad, err := t.oldBlock(cf, rec, file, b, bad)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, min((b+1)*bs, length)-b*bs)
		copy(buf, old)
		crcs[b] = s.crcOf(buf)
		if isBad {
			bad[b] = true
		}
	}
	for b := s.nblocks(oldLen); b < n; b++ {
		crcs[b] = s.zeroCRCOf(min(bs, length-b*bs))
	}
	if err := cf.f.Truncate(length); err != nil {
		return nil, ioErr(err)
	}
	cf.size = length
	rec.Length, rec.Crcs, rec.BadBlocks = uint32(length), crcs, badList(bad, n)
	if err := t.putChunk(file, rec, existed, oldLen); err != nil {
		return nil, err
	}
	return &dfspb.StoreResult{Chunk: rec}, nil
}

func (t *txn) deleteChunks(c *dfspb.DeleteChunksCmd) (*dfspb.StoreResult, error) {
	file, err := parseID("file", c.File)
	if err != nil {
		return nil, err
	}
	_, hi := prefixBounds(idKey(prefixChunk, file))
	it, err := t.b.NewIter(&pebble.IterOptions{LowerBound: chunkKey(file, c.FromIndex), UpperBound: hi})
	if err != nil {
		return nil, ioErr(err)
	}
	var indexes []uint64
	for ok := it.First(); ok; ok = it.Next() {
		if _, idx, ok := parseChunkKey(it.Key()); ok {
			indexes = append(indexes, idx)
		}
	}
	if err := it.Close(); err != nil {
		return nil, ioErr(err)
	}
	for _, idx := range indexes {
		rec, _, err := t.chunkForWrite(file, idx)
		if err != nil {
			return nil, err
		}
		if err := t.deleteChunk(file, rec); err != nil {
			return nil, err
		}
	}
	return &dfspb.StoreResult{Deleted: uint32(len(indexes))}, nil
}

// ---- reads -------------------------------------------------------------------

// readChunkFile reads bytes [start, end) of a chunk file into buf (of
// end-start bytes) and verifies the blocks they cover; start is block
// aligned and end is the chunk length or block aligned. The caller holds
// mu and the chunk's stripe.
func (s *Store) readChunkFile(file layout.ID, rec *dfspb.ChunkInfo, start, end int64, buf []byte) error {
	bs := int64(s.cfg.BlockSize)
	n, err := s.preadChunk(s.chunkPath(file, rec.Index), buf, start)
	if errors.Is(err, os.ErrNotExist) {
		return &CorruptError{File: file, Index: rec.Index, Block: int(start / bs), Reason: "chunk file missing"}
	}
	if err != nil {
		return ioErr(err)
	}
	for b := start / bs; b*bs < end; b++ {
		lo, hi := b*bs-start, min((b+1)*bs, end)-start
		switch {
		case slices.Contains(rec.BadBlocks, uint32(b)):
			return &CorruptError{File: file, Index: rec.Index, Block: int(b), Reason: "marked bad"}
		case int64(n) < hi:
			return &CorruptError{File: file, Index: rec.Index, Block: int(b), Reason: "chunk file too short"}
		case int(b) >= len(rec.Crcs) || s.crcOf(buf[lo:hi]) != rec.Crcs[b]:
			return &CorruptError{File: file, Index: rec.Index, Block: int(b), Reason: "crc mismatch"}
		}
	}
	return nil
}

// ReadChunk reads up to n bytes at off from chunk index of file, verifying
// the checksum of every block it touches (a mismatch is a *CorruptError,
// which wraps ErrCorrupt; repair with RepairChunk). It returns what the
// chunk holds: fewer than n bytes when the chunk ends earlier, nothing for
// a chunk this store does not hold. The file's size lives in its inode, so
// the caller pads with zeros up to it. The returned slice is the caller's.
// Safe for concurrent use.
func (s *Store) ReadChunk(ctx context.Context, file layout.ID, index uint64, off int64, n int) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("%w: read at %d of %d bytes", ErrInvalid, off, n)
	}
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	st := &s.stripes[stripeOf(file, index)]
	st.RLock()
	defer st.RUnlock()
	rec, err := getChunk(s.db, file, index)
	if err != nil || rec == nil || off >= int64(rec.Length) || n == 0 {
		return nil, err
	}
	bs := int64(s.cfg.BlockSize)
	end := min(off+int64(n), int64(rec.Length))
	start := off / bs * bs
	bufEnd := min((end+bs-1)/bs*bs, int64(rec.Length))
	if 2*(end-off) >= bufEnd-start {
		// Most of what is read is returned: in its own buffer, aligned
		// for a direct read when it is large (readbuf.go).
		buf := readBuffer(int(bufEnd - start))
		if err := s.readChunkFile(file, rec, start, bufEnd, buf); err != nil {
			return nil, err
		}
		return buf[off-start : end-start], nil
	}
	// A small part of the blocks read: copied out of a pooled buffer.
	buf := getReadBuf(int(bufEnd - start))
	defer putReadBuf(buf)
	if err := s.readChunkFile(file, rec, start, bufEnd, buf); err != nil {
		return nil, err
	}
	return append([]byte(nil), buf[off-start:end-start]...), nil
}

// ChunkInfo returns the index record of a chunk: length, block checksums,
// version. ErrNotFound if this store does not hold it. Safe for concurrent
// use.
func (s *Store) ChunkInfo(ctx context.Context, file layout.ID, index uint64) (*dfspb.ChunkInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	rec, err := getChunk(s.db, file, index)
	if err == nil && rec == nil {
		err = fmt.Errorf("%w: chunk %s.%d", ErrNotFound, file, index)
	}
	return rec, err
}

// RepairChunk replaces the local data of a chunk with data, a good copy
// read from another replica (ReadChunk of the whole chunk there). data must
// have the recorded length and match every recorded block checksum, except
// blocks marked bad here, which take data's bytes and checksums. The file
// is replaced atomically (temporary file, fsync, rename) and read back and
// verified. It is a local repair, not a Raft command: the committed record
// is not changed (only bad-block marks are cleared). Safe for concurrent
// use; it waits for a batch that is writing the chunk.
func (s *Store) RepairChunk(ctx context.Context, file layout.ID, index uint64, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	st := &s.stripes[stripeOf(file, index)]
	st.Lock()
	defer st.Unlock()
	rec, err := getChunk(s.db, file, index)
	if err != nil {
		return err
	}
	if rec == nil {
		return fmt.Errorf("%w: chunk %s.%d", ErrNotFound, file, index)
	}
	if len(data) != int(rec.Length) {
		return fmt.Errorf("%w: repair data for %s.%d has %d bytes, chunk has %d", ErrInvalid, file, index, len(data), rec.Length)
	}
	bs := int64(s.cfg.BlockSize)
	bad := badSet(rec)
	crcs := slices.Clone(rec.Crcs)
	for b := int64(0); b*bs < int64(len(data)); b++ {
		c := s.crcOf(data[b*bs : min((b+1)*bs, int64(len(data)))])
		switch {
		case bad[b]:
			crcs[b] = c
		case c != rec.Crcs[b]:
			return fmt.Errorf("%w: repair data for %s.%d does not match block %d", ErrInvalid, file, index, b)
		}
	}
	path := s.chunkPath(file, index)
	if err := writeFileSync(path, data, !s.cfg.NoSync); err != nil {
		return ioErr(fmt.Errorf("repair %s.%d: %w", file, index, err))
	}
	if len(bad) > 0 {
		rec.Crcs, rec.BadBlocks = crcs, nil
		v, err := marshalChunk(rec)
		if err != nil {
			return err
		}
		if err := s.db.Set(chunkKey(file, index), v, s.wo); err != nil {
			return ioErr(err)
		}
	}
	buf := getReadBuf(int(rec.Length))
	defer putReadBuf(buf)
	if err := s.readChunkFile(file, rec, 0, int64(rec.Length), buf); err != nil {
		return fmt.Errorf("repair %s.%d: read back: %w", file, index, err)
	}
	s.logger.Info("chunk repaired", "file", file, "chunk", index)
	return nil
}

// ScrubReport names a chunk that failed verification. Err wraps ErrCorrupt
// (a *CorruptError naming the first bad block) or is a local I/O error.
type ScrubReport struct {
	File  layout.ID
	Index uint64
	Err   error
}

// ScrubStats summarises a Scrub.
type ScrubStats struct {
	Files   int64 // distinct files whose chunks were verified
	Chunks  int64 // chunks verified
	Bytes   int64 // bytes verified
	Corrupt int64 // chunks reported
}

// ScrubOptions are the hooks of ScrubWith.
type ScrubOptions struct {
	// Report is called for each chunk that fails verification. Required.
	Report func(ScrubReport)
	// Pace, if set, is called before each chunk is read with the chunk's
	// length, outside every lock; it may wait (a rate limit) and stops the
	// scrub by returning an error, which ScrubWith returns.
	Pace func(ctx context.Context, bytes int64) error
	// Progress, if set, is called after each chunk with the totals so far.
	Progress func(ScrubStats)
}

// scrubPage is how many chunk keys Scrub collects per visit of the index.
const scrubPage = 256

// Scrub verifies every block of every chunk and calls fn for each chunk
// that fails. It holds no lock across chunks, so it runs beside Apply and
// reads, and it stops early when ctx is done (returning ctx.Err()).
func (s *Store) Scrub(ctx context.Context, fn func(ScrubReport)) (ScrubStats, error) {
	return s.ScrubWith(ctx, ScrubOptions{Report: fn})
}

// ScrubWith is Scrub with a pace hook and progress reports.
func (s *Store) ScrubWith(ctx context.Context, o ScrubOptions) (ScrubStats, error) {
	var stats ScrubStats
	var lastFile layout.ID
	lower, upper := prefixBounds([]byte{prefixChunk})
	for {
		keys, err := s.chunkKeys(lower, upper, scrubPage)
		if err != nil || len(keys) == 0 {
			return stats, err
		}
		for _, k := range keys {
			if err := ctx.Err(); err != nil {
				return stats, err
			}
			file, idx, _ := parseChunkKey(k)
			if o.Pace != nil {
				if err := o.Pace(ctx, s.chunkLength(file, idx)); err != nil {
					return stats, err
				}
			}
			n, err := s.verifyChunk(file, idx)
			if errors.Is(err, ErrClosed) {
				return stats, err
			}
			if stats.Chunks == 0 || file != lastFile {
				stats.Files++
				lastFile = file
			}
			stats.Chunks++
			stats.Bytes += n
			if err != nil {
				stats.Corrupt++
				o.Report(ScrubReport{File: file, Index: idx, Err: err})
			}
			if o.Progress != nil {
				o.Progress(stats)
			}
		}
		lower = append(keys[len(keys)-1], 0)
	}
}

// chunkLength is a chunk's recorded length, 0 if unknown (for pacing).
func (s *Store) chunkLength(file layout.ID, index uint64) int64 {
	if err := s.rlock(); err != nil {
		return 0
	}
	defer s.mu.RUnlock()
	rec, err := getChunk(s.db, file, index)
	if err != nil || rec == nil {
		return 0
	}
	return int64(rec.Length)
}

// chunkKeys returns up to limit chunk keys in [lower, upper).
func (s *Store) chunkKeys(lower, upper []byte, limit int) ([][]byte, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, ioErr(err)
	}
	var keys [][]byte
	for ok := it.First(); ok && len(keys) < limit; ok = it.Next() {
		keys = append(keys, slices.Clone(it.Key()))
	}
	if err := it.Close(); err != nil {
		return nil, ioErr(err)
	}
	return keys, nil
}

// verifyChunk reads and verifies a whole chunk, returning its length.
func (s *Store) verifyChunk(file layout.ID, index uint64) (int64, error) {
	if err := s.rlock(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	st := &s.stripes[stripeOf(file, index)]
	st.RLock()
	defer st.RUnlock()
	rec, err := getChunk(s.db, file, index)
	if err != nil || rec == nil {
		return 0, err
	}
	buf := getReadBuf(int(rec.Length))
	defer putReadBuf(buf)
	return int64(rec.Length), s.readChunkFile(file, rec, 0, int64(rec.Length), buf)
}

// readChunkData reads a chunk file's recorded bytes without verifying them
// (snapshots carry data as it is; the receiver's reads verify it).
func readChunkData(path string, length int64) ([]byte, error) {
	buf := make([]byte, length)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return buf, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := readFull(f, buf, 0); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return buf, nil
}
