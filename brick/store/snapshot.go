package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Snapshot stream format (all integers unsigned varints unless noted):
//
//	"DFSSNAP1"
//	records, each a tag byte and its fields:
//	  'K' len key len value           a Pebble key/value (not a chunk record)
//	  'C' len key len record len data  a chunk: its index record and file bytes
//	  'M' len key len record           a chunk: its index record only
//	'E' then CRC-32C (Castagnoli) of every byte before it, 4 bytes big-endian
//
// Persist writes chunks as 'M' records (a manifest): a snapshot holds the
// metadata, not the file data, so taking one (every few thousand entries,
// for log compaction) costs a walk of the index instead of a copy of the
// brick. Restore keeps the chunk files the member already holds whose
// blocks match their records (hard links into the new generation) and
// marks the others' blocks bad; Config.OnRestore then lets the brick fetch
// those from the other members (repair), and reads of a bad block repair
// it on demand meanwhile. 'C' records (data included) are still read.
const (
	snapMagic    = "DFSSNAP1"
	tagKV        = 'K'
	tagChunk     = 'C'
	tagManifest  = 'M'
	tagEnd       = 'E'
	maxKeyLen    = 1 << 20
	maxValueLen  = 64 << 20
	restoreBatch = 16 << 20
)

// fsmSnapshot is a point-in-time view of the store for raft.
type fsmSnapshot struct {
	s    *Store
	mu   sync.Mutex
	snap *pebble.Snapshot // nil once released, or invalidated by Restore or Close
}

var _ raft.FSMSnapshot = (*fsmSnapshot)(nil)

// Snapshot captures the applied state for raft (raft.FSM). It is cheap: a
// Pebble snapshot is taken here and streamed by Persist, which may run
// concurrently with Apply. The Pebble part (inodes, entries, xattrs, inline
// data, applied index) is exactly the state at the applied index. Chunks
// are streamed as they are when Persist reaches them, each record with its
// own bytes (read under the chunk's lock), so a chunk may be newer than the
// applied index; that is safe because chunk commands set bytes and lengths
// and replaying them over a newer chunk yields the same result.
func (s *Store) Snapshot() (raft.FSMSnapshot, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	// Raft may drop the log up to this snapshot once it is persisted:
	// everything applied so far must be durable first.
	if !s.cfg.NoSync {
		if err := s.db.LogData(nil, pebble.Sync); err != nil {
			return nil, fmt.Errorf("store: sync before snapshot: %w", err)
		}
		s.syncedIndex = s.applied.Load()
	}
	f := &fsmSnapshot{s: s, snap: s.db.NewSnapshot()}
	s.snapsMu.Lock()
	s.snaps[f] = struct{}{}
	s.snapsMu.Unlock()
	return f, nil
}

// Persist streams the snapshot to sink and closes it (cancels it on error).
func (f *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	err := f.persist(sink)
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("store: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (f *fsmSnapshot) persist(w io.Writer) error {
	s := f.s
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	f.mu.Lock()
	snap := f.snap
	f.mu.Unlock()
	if snap == nil {
		return fmt.Errorf("%w: snapshot released or store restored", ErrClosed)
	}

	bw := bufio.NewWriterSize(w, 1<<20)
	h := crc32.New(s.crc)
	mw := io.MultiWriter(bw, h)
	var scratch [binary.MaxVarintLen64]byte
	writeBytes := func(b []byte) error {
		n := binary.PutUvarint(scratch[:], uint64(len(b)))
		if _, err := mw.Write(scratch[:n]); err != nil {
			return err
		}
		_, err := mw.Write(b)
		return err
	}
	if _, err := mw.Write([]byte(snapMagic)); err != nil {
		return err
	}
	it, err := snap.NewIter(nil)
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if bytes.Equal(k, keyCounts) {
			continue // recomputed by Restore
		}
		if file, idx, isChunk := parseChunkKey(k); isChunk {
			rec, err := s.liveRecord(file, idx)
			if err != nil {
				return err
			}
			if rec == nil {
				continue // deleted since the snapshot; replay deletes it too
			}
			v, err := marshalChunk(rec)
			if err != nil {
				return err
			}
			if _, err := mw.Write([]byte{tagManifest}); err != nil {
				return err
			}
			for _, b := range [][]byte{k, v} {
				if err := writeBytes(b); err != nil {
					return err
				}
			}
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if _, err := mw.Write([]byte{tagKV}); err != nil {
			return err
		}
		if err := writeBytes(k); err != nil {
			return err
		}
		if err := writeBytes(v); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if _, err := mw.Write([]byte{tagEnd}); err != nil {
		return err
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], h.Sum32())
	if _, err := bw.Write(sum[:]); err != nil {
		return err
	}
	return bw.Flush()
}

// liveRecord reads a chunk's current record under its lock: the record of
// the bytes the member holds now, which may be newer than the snapshot
// (see Snapshot).
func (s *Store) liveRecord(file layout.ID, index uint64) (*dfspb.ChunkInfo, error) {
	st := &s.stripes[stripeOf(file, index)]
	st.RLock()
	defer st.RUnlock()
	return getChunk(s.db, file, index)
}

// Release frees the snapshot.
func (f *fsmSnapshot) Release() {
	f.mu.Lock()
	if f.snap != nil {
		_ = f.snap.Close()
		f.snap = nil
	}
	f.mu.Unlock()
	f.s.snapsMu.Lock()
	delete(f.s.snaps, f)
	f.s.snapsMu.Unlock()
}

// invalidateSnapshots closes the Pebble snapshots of every unreleased
// fsmSnapshot, before the database they belong to is closed. The caller
// holds mu for writing, so no Persist is running.
func (s *Store) invalidateSnapshots() {
	s.snapsMu.Lock()
	defer s.snapsMu.Unlock()
	for f := range s.snaps {
		f.mu.Lock()
		if f.snap != nil {
			_ = f.snap.Close()
			f.snap = nil
		}
		f.mu.Unlock()
		delete(s.snaps, f)
	}
}

// Restore replaces the store's contents with a snapshot stream written by
// Persist (raft.FSM). It builds the new state in a fresh generation
// directory, then switches CURRENT to it atomically and removes the old
// one; if anything fails before the switch the store is unchanged. Reads
// wait while the switch happens. Raft never calls Restore concurrently with
// Apply.
func (s *Store) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := s.rlock(); err != nil {
		return err
	}
	gen := s.nextGen()
	s.mu.RUnlock()

	if err := s.makeGen(gen); err != nil {
		return err
	}
	genDir := filepath.Join(s.cfg.Dir, gen)
	abandon := func(db *pebble.DB, err error) error {
		if db != nil {
			_ = db.Close()
		}
		_ = os.RemoveAll(genDir)
		return fmt.Errorf("store: restore: %w", err)
	}
	db, err := s.openGen(gen)
	if err != nil {
		return abandon(nil, err)
	}
	missing := 0
	c, err := s.loadSnapshot(rc, db, filepath.Join(genDir, chunksDir), &missing)
	if err != nil {
		return abandon(db, err)
	}
	applied, err := loadApplied(db)
	if err != nil {
		return abandon(db, err)
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return abandon(db, ErrClosed)
	}
	if err := writeFileSync(filepath.Join(s.cfg.Dir, currentFile), []byte(gen+"\n"), !s.cfg.NoSync); err != nil {
		s.mu.Unlock()
		return abandon(db, err)
	}
	s.invalidateSnapshots()
	old, oldGen := s.db, s.gen
	s.db, s.gen, s.chunkDir = db, gen, filepath.Join(genDir, chunksDir)
	s.applied.Store(applied)
	s.countsMu.Lock()
	s.counts = c
	s.countsMu.Unlock()
	s.recoverUntil, s.failed = 0, nil
	s.mu.Unlock()

	if err := old.Close(); err != nil {
		s.logger.Warn("close replaced database", "err", err)
	}
	if err := os.RemoveAll(filepath.Join(s.cfg.Dir, oldGen)); err != nil {
		s.logger.Warn("remove replaced generation", "generation", oldGen, "err", err)
	}
	s.logger.Info("restored snapshot", "generation", gen, "applied_index", applied, "inodes", c.Inodes, "chunks", c.Chunks, "chunks_to_fetch", missing)
	s.locksChanged(nil, true)
	if s.cfg.OnRestore != nil {
		s.cfg.OnRestore(missing)
	}
	return nil
}

// loadManifestChunk reads one 'M' record: it adds the chunk's index record
// to b and keeps this member's copy of the chunk (a hard link from the
// current generation into chunkDir) when every block matches the record.
// Otherwise the record goes in with every block marked bad, to be
// repaired from another member; kept is false then. It returns the
// chunk's length.
func (s *Store) loadManifestChunk(hr *hashReader, b *pebble.Batch, chunkDir string) (n int64, kept bool, err error) {
	k, err := hr.readBytes(maxKeyLen)
	if err != nil {
		return 0, false, err
	}
	v, err := hr.readBytes(maxValueLen)
	if err != nil {
		return 0, false, err
	}
	file, idx, ok := parseChunkKey(k)
	rec := &dfspb.ChunkInfo{}
	if !ok || proto.Unmarshal(v, rec) != nil {
		return 0, false, fmt.Errorf("%w: bad chunk record in snapshot", ErrIO)
	}
	old := s.chunkPath(file, idx)
	if s.holds(old, rec) {
		err := os.Link(old, filepath.Join(chunkDir, chunkRelPath(file, idx)))
		if err == nil {
			return int64(rec.Length), true, b.Set(k, v, nil)
		}
		s.logger.Warn("restore: cannot keep a chunk file; fetching it instead", "file", file, "chunk", idx, "err", err)
	}
	nb := s.nblocks(int64(rec.Length))
	all := make(map[int64]bool, nb)
	for i := range nb {
		all[i] = true
	}
	rec.BadBlocks = badList(all, nb)
	if v, err = marshalChunk(rec); err != nil {
		return 0, false, err
	}
	return int64(rec.Length), false, b.Set(k, v, nil)
}

// holds reports whether the chunk file at path has the length rec names
// and blocks that all match its checksums (none marked bad).
func (s *Store) holds(path string, rec *dfspb.ChunkInfo) bool {
	if len(rec.BadBlocks) > 0 {
		return false
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != int64(rec.Length) {
		return false
	}
	data, err := readChunkData(path, int64(rec.Length))
	if err != nil {
		return false
	}
	bs := int64(s.cfg.BlockSize)
	for i := int64(0); i*bs < int64(len(data)); i++ {
		if int(i) >= len(rec.Crcs) || s.crcOf(data[i*bs:min((i+1)*bs, int64(len(data)))]) != rec.Crcs[i] {
			return false
		}
	}
	return true
}

// hashReader reads from a bufio.Reader, hashing every byte consumed.
type hashReader struct {
	r *bufio.Reader
	h hash.Hash32
}

func (r *hashReader) ReadByte() (byte, error) {
	b, err := r.r.ReadByte()
	if err == nil {
		_, _ = r.h.Write([]byte{b})
	}
	return b, err
}

func (r *hashReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	_, _ = r.h.Write(p[:n])
	return n, err
}

// readBytes reads a length-prefixed byte string of at most limit bytes.
func (r *hashReader) readBytes(limit uint64) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("%w: snapshot field of %d bytes", ErrIO, n)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

// loadSnapshot reads a snapshot stream into an empty database and chunk
// directory and returns the counts of what it loaded.
func (s *Store) loadSnapshot(r io.Reader, db *pebble.DB, chunkDir string, missing *int) (counts, error) {
	var c counts
	hr := &hashReader{r: bufio.NewReaderSize(r, 1<<20), h: crc32.New(s.crc)}
	magic := make([]byte, len(snapMagic))
	if _, err := io.ReadFull(hr, magic); err != nil {
		return c, err
	}
	if string(magic) != snapMagic {
		return c, fmt.Errorf("%w: not a store snapshot", ErrIO)
	}
	b := db.NewBatch()
	defer func() { b.Close() }()
	flush := func() error {
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
		b.Close()
		b = db.NewBatch()
		return nil
	}
	var format []byte
	for {
		tag, err := hr.ReadByte()
		if err != nil {
			return c, fmt.Errorf("snapshot truncated: %w", err)
		}
		switch tag {
		case tagKV:
			k, err := hr.readBytes(maxKeyLen)
			if err != nil {
				return c, err
			}
			v, err := hr.readBytes(maxValueLen)
			if err != nil {
				return c, err
			}
			switch {
			case len(k) > 0 && k[0] == prefixInode:
				c.Inodes++
			case bytes.Equal(k, keyFormat):
				format = v
			}
			if err := b.Set(k, v, nil); err != nil {
				return c, err
			}
		case tagChunk:
			n, err := s.loadChunk(hr, b, chunkDir)
			if err != nil {
				return c, err
			}
			c.Chunks++
			c.ChunkBytes += uint64(n)
		case tagManifest:
			n, kept, err := s.loadManifestChunk(hr, b, chunkDir)
			if err != nil {
				return c, err
			}
			c.Chunks++
			c.ChunkBytes += uint64(n)
			if !kept {
				*missing++
			}
		case tagEnd:
			want := hr.h.Sum32()
			var sum [4]byte
			if _, err := io.ReadFull(hr.r, sum[:]); err != nil {
				return c, fmt.Errorf("snapshot truncated: %w", err)
			}
			if got := binary.BigEndian.Uint32(sum[:]); got != want {
				return c, fmt.Errorf("%w: snapshot checksum %08x, computed %08x", ErrIO, got, want)
			}
			if format != nil && !bytes.Equal(format, s.formatRecord()) {
				return c, fmt.Errorf("%w: snapshot has another chunk size, block size or inline max", ErrInvalidConfig)
			}
			if err := b.Set(keyFormat, s.formatRecord(), nil); err != nil {
				return c, err
			}
			if err := b.Set(keyCounts, c.encode(), nil); err != nil {
				return c, err
			}
			if err := b.Commit(s.wo); err != nil {
				return c, err
			}
			if !s.cfg.NoSync {
				for i := range 256 {
					if err := syncDir(filepath.Join(chunkDir, fmt.Sprintf("%02x", i))); err != nil {
						return c, err
					}
				}
			}
			return c, nil
		default:
			return c, fmt.Errorf("%w: snapshot record tag %q", ErrIO, tag)
		}
		if b.Len() > restoreBatch {
			if err := flush(); err != nil {
				return c, err
			}
		}
	}
}

// loadChunk reads one chunk record of a snapshot, writes its file and adds
// its index record to b. It returns the chunk's length.
func (s *Store) loadChunk(hr *hashReader, b *pebble.Batch, chunkDir string) (int64, error) {
	k, err := hr.readBytes(maxKeyLen)
	if err != nil {
		return 0, err
	}
	v, err := hr.readBytes(maxValueLen)
	if err != nil {
		return 0, err
	}
	data, err := hr.readBytes(maxChunkSize)
	if err != nil {
		return 0, err
	}
	file, idx, ok := parseChunkKey(k)
	rec := &dfspb.ChunkInfo{}
	if !ok || proto.Unmarshal(v, rec) != nil || int(rec.Length) != len(data) {
		return 0, fmt.Errorf("%w: bad chunk record in snapshot", ErrIO)
	}
	path := filepath.Join(chunkDir, chunkRelPath(file, idx))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	_, err = f.Write(data)
	if err == nil && !s.cfg.NoSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	if err := b.Set(k, v, nil); err != nil {
		return 0, err
	}
	return int64(len(data)), nil
}
