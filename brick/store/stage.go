package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Staged chunk writes: the data path beside the Raft log.
//
// A large, block-aligned chunk write does not carry its bytes through the
// log. The leader writes them to a staging file (Stage) on itself and on
// the other members, and once a majority holds them durably it proposes a
// WriteChunkCmd without data that names the staging file (stage_id) and
// carries the data's length and the CRC-32C of every block it covers.
// Applying it (writeStaged) takes the checksums, length and version from
// the command, so every member records the same chunk record whether or
// not it holds the bytes:
//
//   - staging file present and matching: a write covering the whole chunk
//     renames it over the chunk file (no copy); any other write copies the
//     bytes into the chunk file;
//   - absent or not matching (this member missed the push): the blocks
//     are written as nothing and marked bad (ChunkInfo.bad_blocks), unless
//     the chunk file already holds them (an entry replayed after a crash);
//     reads refuse bad blocks (a leader repairs before answering) and the
//     hook set with SetOnStageMissing asks the brick to repair the chunk
//     from a peer at once.
//
// The staging file is removed after the batch that applied its entry is
// committed. Staging files whose entry never came (the leader died before
// proposing) are removed by SweepStage.

// StageIDLen is the length of a stage id.
const StageIDLen = 16

// stageDirName is the staging directory below Config.Dir: on the file
// system of the chunk files, so that a staging file can be renamed into
// place.
const stageDirName = "stage"

// stageConsumedKeep bounds the stage ids remembered as applied.
const stageConsumedKeep = 4096

// stageBook is the in-memory bookkeeping of staging files. Its zero value
// is ready; it has its own lock because Stage runs beside Apply.
type stageBook struct {
	mu sync.Mutex
	// durable: staging files this process wrote and synced.
	durable map[string]bool
	// consumed: stage ids whose entry was applied (recent ones, FIFO), so
	// that a push arriving after its entry leaves no orphan.
	consumed map[string]bool
	order    []string
	// missing is told of chunks applied without their staged bytes.
	missing func(file layout.ID, index uint64)
	dirMade bool
	// writing: staging files Stage is writing now, closed when it
	// returns, so that applying their entry can wait for them.
	writing map[string]chan struct{}
	// noDirect: the file system refused O_DIRECT (stagewrite.go).
	noDirect atomic.Bool
}

// stageApplyWait bounds how long applying a batch of staged writes waits
// for the pushes of their bytes that this member is writing at that
// moment: on a follower the entry often commits (the leader and the other
// follower hold the bytes) while its own push is still being written, and
// without the wait it would mark the blocks bad and fetch the whole chunk
// from a peer, on top of the push.
const stageApplyWait = 2 * time.Second

// begin registers id as being written and returns the channel to close
// when it is done, or nil when another Stage call writes it already.
func (b *stageBook) begin(id []byte) chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.writing[string(id)]; ok {
		return nil
	}
	if b.writing == nil {
		b.writing = make(map[string]chan struct{})
	}
	ch := make(chan struct{})
	b.writing[string(id)] = ch
	return ch
}

// end undoes begin.
func (b *stageBook) end(id []byte, ch chan struct{}) {
	if ch == nil {
		return
	}
	b.mu.Lock()
	delete(b.writing, string(id))
	b.mu.Unlock()
	close(ch)
}

// waitWriting waits, at most d, for a Stage of id in progress to end.
func (b *stageBook) waitWriting(id []byte, d time.Duration) {
	if d <= 0 {
		return
	}
	b.mu.Lock()
	ch := b.writing[string(id)]
	b.mu.Unlock()
	if ch == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// SetOnStageMissing sets fn to be called, from Apply, for every chunk a
// staged write left with blocks this member lacks: fn must not block (the
// chunk is locked by the batch until it is committed; a repair waits for
// that). Set it before the store applies entries.
func (s *Store) SetOnStageMissing(fn func(file layout.ID, index uint64)) {
	s.stage.mu.Lock()
	s.stage.missing = fn
	s.stage.mu.Unlock()
}

func (s *Store) stageDir() string { return filepath.Join(s.cfg.Dir, stageDirName) }

// stagePath is stage/<first byte>/<id>, both in hex: 256 directories, so
// that concurrent creations and renames do not all queue on one
// directory's lock.
func (s *Store) stagePath(id []byte) string {
	h := hex.EncodeToString(id)
	return filepath.Join(s.stageDir(), h[:2], h)
}

func checkStageID(id []byte) error {
	if len(id) != StageIDLen {
		return fmt.Errorf("%w: stage id of %d bytes, want %d", ErrInvalid, len(id), StageIDLen)
	}
	return nil
}

func (b *stageBook) isConsumed(id []byte) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.consumed[string(id)]
}

// consume remembers id as applied and reports whether Stage wrote and
// synced its file in this process.
func (b *stageBook) consume(id []byte) (synced bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.consumed == nil {
		b.consumed = make(map[string]bool)
	}
	k := string(id)
	synced = b.durable[k]
	delete(b.durable, k)
	if b.consumed[k] {
		return synced
	}
	b.consumed[k] = true
	b.order = append(b.order, k)
	if len(b.order) > stageConsumedKeep {
		delete(b.consumed, b.order[0])
		b.order = slices.Delete(b.order, 0, 1)
	}
	return synced
}

// Stage writes data as the staging file id and makes it durable
// (fdatasync of the file, fsync of its directory) before it returns. It
// fails with ErrNoSpace when the file system is full, and with ErrStale
// when the entry naming id was applied already (the push came late).
// Safe for concurrent use.
func (s *Store) Stage(ctx context.Context, id, data []byte) (err error) {
	if err := checkStageID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.stage.isConsumed(id) {
		return fmt.Errorf("%w: stage %x was applied already", ErrStale, id)
	}
	if err := s.makeStageDir(); err != nil {
		return err
	}
	ch := s.stage.begin(id)
	defer s.stage.end(id, ch)
	path := s.stagePath(id)
	defer func() {
		if err != nil && !errors.Is(err, ErrStale) {
			_ = os.Remove(path)
		}
	}()
	_, err = s.writeStageFile(path, data, !s.cfg.NoSync)
	if err == nil && !s.cfg.NoSync {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return stageErr(err)
	}
	s.stage.mu.Lock()
	late := s.stage.consumed[string(id)]
	if !late {
		if s.stage.durable == nil {
			s.stage.durable = make(map[string]bool)
		}
		s.stage.durable[string(id)] = true
	}
	s.stage.mu.Unlock()
	if late {
		// The entry was applied while the file was written: the apply
		// may be using it, and removes it after its commit; a file left
		// after that is an orphan for SweepStage.
		return fmt.Errorf("%w: stage %x was applied while it was written", ErrStale, id)
	}
	return nil
}

func (s *Store) makeStageDir() error {
	s.stage.mu.Lock()
	defer s.stage.mu.Unlock()
	if s.stage.dirMade {
		return nil
	}
	for i := range 256 {
		if err := os.MkdirAll(filepath.Join(s.stageDir(), fmt.Sprintf("%02x", i)), 0o755); err != nil {
			return ioErr(err)
		}
	}
	s.stage.dirMade = true
	return nil
}

func stageErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: staging: %w", ErrNoSpace, err)
	}
	return ioErr(fmt.Errorf("staging: %w", err))
}

// Unstage removes the staging file id, if any (a write that could not
// reach a majority, or whose proposal was refused: no entry will name
// it). A Stage of id still writing is waited for (as long as an apply
// would), and a later one refused, so that neither leaves the file behind.
// Safe for concurrent use.
func (s *Store) Unstage(id []byte) error {
	if err := checkStageID(id); err != nil {
		return err
	}
	s.stage.consume(id) // a Stage that ends now or later finds it late
	s.stage.waitWriting(id, stageApplyWait)
	if err := os.Remove(s.stagePath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return ioErr(err)
	}
	return nil
}

// SweepStage removes staging files last written more than maxAge ago:
// orphans of writes whose entry never came (the leader died before
// proposing, or the proposal failed). It returns how many files and bytes
// it removed. Safe for concurrent use.
func (s *Store) SweepStage(maxAge time.Duration) (files int, bytes int64, err error) {
	cutoff := time.Now().Add(-maxAge)
	err = s.walkStage(func(path string, fi os.FileInfo) error {
		if !fi.ModTime().Before(cutoff) {
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return ioErr(err)
		}
		s.logger.Info("removed orphan staging file", "name", filepath.Base(path), "bytes", fi.Size(), "age", time.Since(fi.ModTime()).Round(time.Second))
		files++
		bytes += fi.Size()
		return nil
	})
	return files, bytes, err
}

// StageUsage counts the staging files and the space they take.
func (s *Store) StageUsage() (files int, bytes int64, err error) {
	err = s.walkStage(func(_ string, fi os.FileInfo) error {
		files++
		bytes += fi.Size()
		return nil
	})
	return files, bytes, err
}

// walkStage calls fn for every staging file.
func (s *Store) walkStage(fn func(path string, fi os.FileInfo) error) error {
	dirs, err := os.ReadDir(s.stageDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return ioErr(err)
	}
	for _, d := range dirs {
		dir := filepath.Join(s.stageDir(), d.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				continue
			}
			return ioErr(err)
		}
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			if err := fn(filepath.Join(dir, e.Name()), fi); err != nil {
				return err
			}
		}
	}
	return nil
}

// VerifyChunk reads and verifies a whole chunk: nil when it verifies or
// is not held here, a *CorruptError when a block is bad. Safe for
// concurrent use.
func (s *Store) VerifyChunk(ctx context.Context, file layout.ID, index uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := s.verifyChunk(file, index)
	return err
}

// readChunkRange reads n bytes at off of the chunk file at path, zeros
// where the file is absent or short.
func readChunkRange(path string, off, n int64) ([]byte, error) {
	buf := make([]byte, n)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return buf, nil
	}
	if err != nil {
		return nil, ioErr(err)
	}
	defer f.Close()
	if _, err := readFull(f, buf, off); err != nil {
		return nil, ioErr(err)
	}
	return buf, nil
}

// stagedWhole reports every block good when the staging file at path has
// length n (a file Stage synced in this process), else none.
func (s *Store) stagedWhole(path string, n int64, blocks int) ([]bool, error) {
	good := make([]bool, blocks)
	fi, err := os.Stat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, ioErr(err)
	}
	if err == nil && fi.Size() == n {
		for i := range good {
			good[i] = true
		}
	}
	return good, nil
}

// stagedBlocks reads the staging file at path and reports, for each block
// of the write, whether its bytes match crcs. data is nil (and every block
// false) when the file is absent or of the wrong length.
func (s *Store) stagedBlocks(path string, n int64, crcs []uint32) (data []byte, good []bool, err error) {
	good = make([]bool, len(crcs))
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, good, nil
	}
	if err != nil {
		return nil, nil, ioErr(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, ioErr(err)
	}
	if fi.Size() != n {
		s.logger.Warn("staging file has the wrong length; its blocks will be fetched from a peer", "path", path, "length", fi.Size(), "want", n)
		return nil, good, nil
	}
	data = make([]byte, n)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, nil, ioErr(err)
	}
	bs := int64(s.cfg.BlockSize)
	for i := range crcs {
		lo := int64(i) * bs
		good[i] = s.crcOf(data[lo:min(lo+bs, n)]) == crcs[i]
	}
	return data, good, nil
}

// writeStaged applies a staged WriteChunkCmd (see the comment at the top).
// It is deterministic in the chunk record it leaves: checksums, length and
// version come from the command and the committed record; only which
// blocks are marked bad depends on what this member holds.
func (t *txn) writeStaged(c *dfspb.WriteChunkCmd) (*dfspb.StoreResult, error) {
	s := t.s
	file, err := parseID("file", c.File)
	if err != nil {
		return nil, err
	}
	if err := checkStageID(c.StageId); err != nil {
		return nil, err
	}
	bs := int64(s.cfg.BlockSize)
	off, n := int64(c.Offset), int64(c.Length)
	end := off + n
	switch {
	case len(c.Data) != 0:
		return nil, fmt.Errorf("%w: staged write carries data", ErrInvalid)
	case n == 0 || off%bs != 0:
		return nil, fmt.Errorf("%w: staged write [%d, %d) is not block aligned", ErrInvalid, off, end)
	case end > int64(s.cfg.ChunkSize):
		return nil, fmt.Errorf("%w: write [%d, %d) past chunk size %d", ErrInvalid, off, end, s.cfg.ChunkSize)
	case int64(len(c.BlockCrcs)) != (n+bs-1)/bs:
		return nil, fmt.Errorf("%w: staged write of %d bytes with %d block checksums", ErrInvalid, n, len(c.BlockCrcs))
	}
	// Whatever happens below, the staging file has served once its entry
	// is applied.
	stagePath := s.stagePath(c.StageId)
	// One wait bound for the whole batch: several slow pushes in one
	// batch must not hold the group's applies for several times it.
	if t.stageWaitEnd.IsZero() {
		t.stageWaitEnd = time.Now().Add(stageApplyWait)
	}
	s.stage.waitWriting(c.StageId, time.Until(t.stageWaitEnd))
	synced := s.stage.consume(c.StageId)
	t.remove[stagePath] = true

	rec, existed, err := t.chunkForWrite(file, c.Index)
	if err != nil {
		return nil, err
	}
	oldLen := int64(rec.Length)
	if end%bs != 0 && end < oldLen {
		// The last block would keep old bytes, whose checksum the leader
		// did not know (a write extending the chunk came first). Every
		// member refuses alike; the leader resends with the data.
		return nil, fmt.Errorf("%w: staged write [%d, %d) ends inside chunk %s.%d of %d bytes", ErrStale, off, end, file, c.Index, oldLen)
	}
	newLen := max(oldLen, end)
	var data []byte
	var good []bool
	if synced && off == 0 && end >= oldLen {
		// Written, checked (the push's CRC-32C) and synced by this
		// process: it goes into place whole, unread.
		good, err = s.stagedWhole(stagePath, n, len(c.BlockCrcs))
	} else {
		data, good, err = s.stagedBlocks(stagePath, n, c.BlockCrcs)
	}
	if err != nil {
		return nil, err
	}
	chunkPath := s.chunkPath(file, c.Index)
	nb := s.nblocks(newLen)
	crcs := make([]uint32, nb)
	copy(crcs, rec.Crcs)
	bad := badSet(rec)

	if off == 0 && end >= oldLen && !slices.Contains(good, false) {
		renamed, err := t.renameStaged(stagePath, chunkPath, newLen, synced)
		if err != nil {
			return nil, err
		}
		if renamed {
			rec.Length, rec.Crcs, rec.BadBlocks = uint32(newLen), slices.Clone(c.BlockCrcs), nil
			if err := t.putChunk(file, rec, existed, oldLen); err != nil {
				return nil, err
			}
			return &dfspb.StoreResult{Chunk: rec}, nil
		}
		// The staging file went away before its rename (the orphan
		// sweep, a late push): the bytes read are copied instead; if
		// they were not read, the blocks are missing.
		if data == nil {
			clear(good)
		}
	}

	// Blocks not staged here may be in the chunk file already: an entry
	// applied again after a crash (its staging file was removed after the
	// first apply). Read them before the file is cut to the recorded
	// length.
	var onDisk []byte
	if slices.Contains(good, false) {
		if onDisk, err = readChunkRange(chunkPath, off, n); err != nil {
			return nil, err
		}
	}
	cf, err := t.openChunk(chunkPath, oldLen)
	if err != nil {
		return nil, err
	}
	first := off / bs
	// Blocks wholly in the hole between the old end and the write are
	// zeros; an old partial last block before the write grows with zeros.
	for b := s.nblocks(oldLen); b < first; b++ {
		crcs[b] = s.zeroCRC
	}
	if oldLen%bs != 0 && oldLen/bs < first {
		b := oldLen / bs
		old, isBad, err := t.oldBlock(cf, rec, file, b, bad)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, bs)
		copy(buf, old)
		crcs[b] = s.crcOf(buf)
		if isBad {
			bad[b] = true
		}
	}
	if cf.size != newLen {
		if err := cf.f.Truncate(newLen); err != nil {
			return nil, ioErr(err)
		}
		cf.size = newLen
	}
	missing := false
	for i, want := range c.BlockCrcs {
		b := first + int64(i)
		lo, hi := int64(i)*bs, min(int64(i+1)*bs, n)
		crcs[b] = want
		if good[i] {
			if _, err := cf.f.WriteAt(data[lo:hi], off+lo); err != nil {
				return nil, ioErr(err)
			}
			delete(bad, b)
			continue
		}
		// Not staged here: the bytes in the chunk file if they are the
		// ones committed, else the block is bad until repaired from a
		// peer. (Not the recovery window's leniency of oldBlock: a member
		// that missed the push applies new entries inside that window
		// too, and a partial overwrite must then keep the block bad.)
		if s.crcOf(onDisk[lo:hi]) == want {
			if _, err := cf.f.WriteAt(onDisk[lo:hi], off+lo); err != nil {
				return nil, ioErr(err)
			}
			delete(bad, b)
			continue
		}
		bad[b] = true
		missing = true
	}
	if missing {
		s.logger.Warn("staged chunk data missing on this member; fetching it from a peer", "file", file, "chunk", c.Index, "index", t.index)
		s.stage.mu.Lock()
		fn := s.stage.missing
		s.stage.mu.Unlock()
		if fn != nil {
			fn(file, c.Index)
		}
	}
	rec.Length, rec.Crcs, rec.BadBlocks = uint32(newLen), crcs, badList(bad, nb)
	if err := t.putChunk(file, rec, existed, oldLen); err != nil {
		return nil, err
	}
	return &dfspb.StoreResult{Chunk: rec}, nil
}

// renameStaged puts a verified staging file in place of a chunk file and
// reports whether it did (false: the staging file is gone). A file of the
// chunk the batch opened before is the replaced inode: it is closed and
// dropped from the batch, so that later writes of the batch open the
// renamed file. The commit syncs the chunk directory, and the renamed file
// too unless Stage synced it in this process (synced).
func (t *txn) renameStaged(stagePath, chunkPath string, length int64, synced bool) (bool, error) {
	if err := os.Rename(stagePath, chunkPath); errors.Is(err, os.ErrNotExist) {
		t.s.logger.Warn("staging file gone before its rename; copying its bytes", "path", stagePath)
		return false, nil
	} else if err != nil {
		return false, ioErr(fmt.Errorf("rename staged chunk: %w", err))
	}
	if cf, ok := t.files[chunkPath]; ok {
		_ = cf.f.Close()
		delete(t.files, chunkPath)
	}
	delete(t.remove, chunkPath)
	t.dirs[filepath.Dir(chunkPath)] = true
	if synced {
		return true, nil
	}
	f, err := os.OpenFile(chunkPath, os.O_RDWR, 0o644)
	if err != nil {
		return true, ioErr(err)
	}
	t.files[chunkPath] = &chunkFile{f: f, size: length}
	return true, nil
}

// BlockSize is the store's checksum granule (Config.BlockSize).
func (s *Store) BlockSize() int { return s.cfg.BlockSize }

// StageChecksums returns the CRC-32C of data and of each BlockSize block
// of it, as a staged WriteChunkCmd carries them.
func (s *Store) StageChecksums(data []byte) (dataCRC uint32, blocks []uint32) {
	bs := s.cfg.BlockSize
	blocks = make([]uint32, 0, (len(data)+bs-1)/bs)
	for lo := 0; lo < len(data); lo += bs {
		blocks = append(blocks, s.crcOf(data[lo:min(lo+bs, len(data))]))
	}
	return s.crcOf(data), blocks
}

// CRC is the CRC-32C of data (the staging RPC's check).
func (s *Store) CRC(data []byte) uint32 { return s.crcOf(data) }
