package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/hashicorp/raft"

	"github.com/dfsproject/dfs/pkg/pebblelog"
)

// Compile-time interface checks.
var (
	_ raft.FSM         = (*Store)(nil)
	_ raft.BatchingFSM = (*Store)(nil)
)

// Config configures a Store. Start from DefaultConfig and set Dir.
//
// ChunkSize, BlockSize and InlineMax are part of the on-disk format and of
// the replicated state machine: every replica of a subvolume must use the
// same values, and they must not change for the life of the store (Open
// refuses a store created with other values).
type Config struct {
	// Dir is the store's directory (inside the brick's .dfs directory). It
	// is created if it does not exist. Required; there is no default.
	Dir string
	// OnRestore, if set, is called after Restore installed a snapshot,
	// with the number of chunks whose data this member lacks (their
	// blocks are marked bad; repair them from other members). It must
	// not block. Default: nil.
	OnRestore func(missing int)
	// Logger receives the store's and Pebble's log messages (Pebble's
	// routine chatter at Debug). Default: discard (also when nil).
	Logger *slog.Logger
	// ChunkSize is the size of a file data chunk in bytes. Must be a
	// multiple of BlockSize, at most 64 MiB. Default: 1 MiB.
	ChunkSize int
	// BlockSize is the checksum granule: every BlockSize bytes of a chunk
	// carry a CRC-32C. Must be between 512 bytes and ChunkSize. Default:
	// 64 KiB.
	BlockSize int
	// InlineMax is the largest file whose data is kept inline in its inode
	// record; larger files keep their data in chunks. At most ChunkSize.
	// Default: 64 KiB.
	InlineMax int
	// NoSync, if true, neither fsyncs chunk files nor syncs Pebble commits.
	// Faster, but a machine crash may lose applied entries. Tests and
	// benchmarks only. Default: false.
	NoSync bool
	// SyncCommits syncs Pebble at every applied batch. Default: false:
	// the Raft log, synced on a majority before an entry is applied,
	// already holds every entry, so the store syncs Pebble only every
	// 1,024 entries, before every snapshot and at Close; after a machine
	// crash Raft replays the entries whose application was lost. Chunk
	// files are fsynced before the batch that names them either way.
	SyncCommits bool
}

// Defaults.
const (
	DefaultChunkSize = 1 << 20
	DefaultBlockSize = 64 << 10
	DefaultInlineMax = 64 << 10
	maxChunkSize     = 64 << 20
	minBlockSize     = 512
)

// recoveryWindow bounds how many entries after the applied index found at
// an unclean Open may have written chunk files without being committed:
// one ApplyBatch, and raft caps a batch at MaxAppendEntries <= 1024.
const recoveryWindow = syncEvery + 1024

// syncEvery is how many applied entries may separate two synced commits
// (see Config.SyncCommits).
const syncEvery = 1024

// DefaultConfig returns a Config with every field at its default. Dir is
// empty and must be set before Open.
func DefaultConfig() Config {
	return Config{
		Logger:    slog.New(slog.DiscardHandler),
		ChunkSize: DefaultChunkSize,
		BlockSize: DefaultBlockSize,
		InlineMax: DefaultInlineMax,
	}
}

// Validate reports whether the config can be used to Open a store. The
// returned error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: Dir is required", ErrInvalidConfig)
	case c.BlockSize < minBlockSize:
		return fmt.Errorf("%w: BlockSize %d is below %d", ErrInvalidConfig, c.BlockSize, minBlockSize)
	case c.ChunkSize < c.BlockSize || c.ChunkSize > maxChunkSize || c.ChunkSize%c.BlockSize != 0:
		return fmt.Errorf("%w: ChunkSize %d must be a multiple of BlockSize %d, at most %d", ErrInvalidConfig, c.ChunkSize, c.BlockSize, maxChunkSize)
	case c.InlineMax < 0 || c.InlineMax > c.ChunkSize:
		return fmt.Errorf("%w: InlineMax %d must be between 0 and ChunkSize %d", ErrInvalidConfig, c.InlineMax, c.ChunkSize)
	}
	return nil
}

// counts are the store's object counts, kept in Pebble (keyCounts) and in
// memory, for Statfs.
type counts struct {
	Inodes     uint64
	Chunks     uint64
	ChunkBytes uint64
}

func (c counts) encode() []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b, c.Inodes)
	binary.BigEndian.PutUint64(b[8:], c.Chunks)
	binary.BigEndian.PutUint64(b[16:], c.ChunkBytes)
	return b
}

func decodeCounts(b []byte) (counts, error) {
	if len(b) != 24 {
		return counts{}, fmt.Errorf("%w: counts record of %d bytes", ErrIO, len(b))
	}
	return counts{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint64(b[16:])}, nil
}

// Store is the brick store: the state machine of one subvolume's Raft
// group and the brick's local metadata and chunk store. Create it with
// Open and release it with Close. See the package documentation for which
// methods may run concurrently.
type Store struct {
	cfg    Config
	logger *slog.Logger
	wo     *pebble.WriteOptions
	crc    *crc32.Table

	// zeroCRC is the CRC-32C of a whole block of zeros.
	zeroCRC uint32

	// mu guards the generation below (db, gen, chunkDir) and closed. Reads,
	// Apply and snapshots hold it for reading; Restore (which swaps the
	// generation) and Close hold it for writing.
	mu       sync.RWMutex
	db       *pebble.DB
	gen      string // name of the current generation directory
	chunkDir string
	closed   bool

	// stripes are the chunk locks: a chunk is guarded by
	// stripes[stripeOf(file, index)]. Apply holds the stripes of the chunks
	// a batch touches from the first write until after the batch is
	// committed; readers hold a stripe for reading while they read a record
	// and its file.
	stripes [256]sync.RWMutex

	applied atomic.Uint64

	// snaps are the snapshots handed to raft and not yet released.
	snapsMu sync.Mutex
	snaps   map[*fsmSnapshot]struct{}

	countsMu sync.Mutex
	counts   counts

	stage stageBook // staged chunk writes (stage.go)

	lockWatch lockWatch // waiters for lock changes (lockwait.go)

	// The fields below are used only by Apply, ApplyBatch and Restore,
	// which raft calls one at a time.

	// syncedIndex is the applied index of the last synced commit.
	syncedIndex uint64
	// recoverUntil is the highest Raft index that may find chunk blocks
	// written by a batch that was lost in a crash (see doc: Durability).
	recoverUntil uint64
	// failed is set when applying hit a local storage failure: the batch
	// was not committed, and every later Apply fails, until the store is
	// reopened (raft then replays the lost entries).
	failed error
}

// Directory layout.
const (
	currentFile = "CURRENT"
	dirtyFile   = "dirty"
	genPrefix   = "gen-"
	pebbleDir   = "pebble"
	chunksDir   = "chunks"
	tmpSuffix   = ".tmp"
)

// blockCacheSize is the Pebble block cache of a store.
const blockCacheSize = 32 << 20

// Open opens (creating if needed) the store in cfg.Dir.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		cfg:    cfg,
		logger: logger.With("component", "store", "dir", cfg.Dir),
		wo:     pebble.Sync,
		crc:    crc32.MakeTable(crc32.Castagnoli),
		snaps:  make(map[*fsmSnapshot]struct{}),
	}
	if cfg.NoSync {
		s.wo = pebble.NoSync
	}
	s.zeroCRC = crc32.Checksum(make([]byte, cfg.BlockSize), s.crc)
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	_, err := os.Stat(filepath.Join(cfg.Dir, dirtyFile))
	unclean := err == nil

	gen, err := s.currentGen()
	if err != nil {
		return nil, err
	}
	if err := s.removeStale(gen); err != nil {
		return nil, err
	}
	db, err := s.openGen(gen)
	if err != nil {
		return nil, err
	}
	s.db, s.gen, s.chunkDir = db, gen, filepath.Join(cfg.Dir, gen, chunksDir)
	if err := s.loadState(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if unclean {
		s.recoverUntil = s.applied.Load() + recoveryWindow
		s.logger.Warn("store was not closed cleanly; sweeping orphan chunk files", "applied_index", s.applied.Load())
		if err := s.sweepChunks(); err != nil {
			_ = db.Close()
			return nil, err
		}
	} else if err := writeFileSync(filepath.Join(cfg.Dir, dirtyFile), nil, !cfg.NoSync); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open: mark dirty: %w", err)
	}
	s.logger.Debug("opened", "generation", gen, "applied_index", s.applied.Load(), "unclean", unclean)
	return s, nil
}

// currentGen returns the current generation directory, creating the first
// one in a new store.
func (s *Store) currentGen() (string, error) {
	b, err := os.ReadFile(filepath.Join(s.cfg.Dir, currentFile))
	if err == nil {
		gen := strings.TrimSpace(string(b))
		if !strings.HasPrefix(gen, genPrefix) || strings.ContainsRune(gen, '/') {
			return "", fmt.Errorf("store: open: %w: CURRENT names %q", ErrIO, gen)
		}
		return gen, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("store: open: %w", err)
	}
	gen := genName(1)
	if err := s.makeGen(gen); err != nil {
		return "", err
	}
	if err := writeFileSync(filepath.Join(s.cfg.Dir, currentFile), []byte(gen+"\n"), !s.cfg.NoSync); err != nil {
		return "", fmt.Errorf("store: open: %w", err)
	}
	return gen, nil
}

func genName(n uint64) string { return fmt.Sprintf("%s%06d", genPrefix, n) }

// nextGen returns the name of the generation after the current one.
func (s *Store) nextGen() string {
	n, _ := strconv.ParseUint(strings.TrimPrefix(s.gen, genPrefix), 10, 64)
	return genName(n + 1)
}

// makeGen creates an empty generation directory with its 256 chunk
// subdirectories (removing any leftover of the same name).
func (s *Store) makeGen(gen string) error {
	dir := filepath.Join(s.cfg.Dir, gen)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("store: create %s: %w", gen, err)
	}
	for i := range 256 {
		if err := os.MkdirAll(filepath.Join(dir, chunksDir, fmt.Sprintf("%02x", i)), 0o755); err != nil {
			return fmt.Errorf("store: create %s: %w", gen, err)
		}
	}
	if !s.cfg.NoSync {
		for _, d := range []string{filepath.Join(dir, chunksDir), dir, s.cfg.Dir} {
			if err := syncDir(d); err != nil {
				return fmt.Errorf("store: create %s: %w", gen, err)
			}
		}
	}
	return nil
}

// removeStale deletes generation directories other than gen (left by an
// interrupted Restore) and temporary files.
func (s *Store) removeStale(gen string) error {
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if (strings.HasPrefix(name, genPrefix) && name != gen) || strings.HasSuffix(name, tmpSuffix) {
			s.logger.Info("removing leftover", "name", name)
			if err := os.RemoveAll(filepath.Join(s.cfg.Dir, name)); err != nil {
				return fmt.Errorf("store: open: %w", err)
			}
		}
	}
	return nil
}

// openGen opens the Pebble database of generation gen.
func (s *Store) openGen(gen string) (*pebble.DB, error) {
	dir := filepath.Join(s.cfg.Dir, gen, pebbleDir)
	opts := &pebble.Options{
		Logger:             pebblelog.New(s.logger.With("subsystem", "pebble"), "store"),
		FormatMajorVersion: pebble.FormatNewest,
		CacheSize:          blockCacheSize,
	}
	// Creates look up names and ids that do not exist yet: bloom filters
	// answer those without reading data blocks.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	return db, nil
}

// loadState checks the format record (writing it in a new store) and loads
// the applied index and counts from s.db.
func (s *Store) loadState() error {
	want := s.formatRecord()
	got, ok, err := getValue(s.db, keyFormat)
	switch {
	case err != nil:
		return fmt.Errorf("store: open: %w", err)
	case !ok:
		if err := s.db.Set(keyFormat, want, s.wo); err != nil {
			return fmt.Errorf("store: open: %w", err)
		}
	case string(got) != string(want):
		return fmt.Errorf("%w: store was created with chunk size %d, block size %d, inline max %d",
			ErrInvalidConfig, binary.BigEndian.Uint64(got), binary.BigEndian.Uint64(got[8:]), binary.BigEndian.Uint64(got[16:]))
	}
	applied, err := loadApplied(s.db)
	if err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	s.applied.Store(applied)
	c, ok, err := getValue(s.db, keyCounts)
	if err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	s.counts = counts{}
	if ok {
		if s.counts, err = decodeCounts(c); err != nil {
			return fmt.Errorf("store: open: %w", err)
		}
	}
	return nil
}

func (s *Store) formatRecord() []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b, uint64(s.cfg.ChunkSize))
	binary.BigEndian.PutUint64(b[8:], uint64(s.cfg.BlockSize))
	binary.BigEndian.PutUint64(b[16:], uint64(s.cfg.InlineMax))
	return b
}

func loadApplied(r pebble.Reader) (uint64, error) {
	v, ok, err := getValue(r, keyApplied)
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: applied index of %d bytes", ErrIO, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// sweepChunks removes chunk files that have no index record (written by a
// batch lost in a crash, or deleted from the index just before one) and
// temporary files of an interrupted repair.
func (s *Store) sweepChunks() error {
	for i := range 256 {
		dir := filepath.Join(s.chunkDir, fmt.Sprintf("%02x", i))
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("store: sweep: %w", err)
		}
		for _, e := range ents {
			id, idx, ok := parseChunkName(e.Name())
			keep := false
			if ok {
				_, found, err := getValue(s.db, chunkKey(id, idx))
				if err != nil {
					return fmt.Errorf("store: sweep: %w", err)
				}
				keep = found
			}
			if !keep {
				s.logger.Info("removing orphan chunk file", "name", e.Name())
				if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
					return fmt.Errorf("store: sweep: %w", err)
				}
			}
		}
	}
	return nil
}

// Close closes the store. It waits for running reads, applies and
// snapshot streams. Calls made after Close return errors wrapping
// ErrClosed; a second Close returns ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	s.invalidateSnapshots()
	if !s.cfg.NoSync && s.failed == nil {
		if err := s.db.LogData(nil, pebble.Sync); err != nil {
			return fmt.Errorf("store: close: sync: %w", err)
		}
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	if s.failed != nil {
		// Leave the dirty marker: the next Open must treat the lost
		// batch as a crash.
		return nil
	}
	if err := os.Remove(filepath.Join(s.cfg.Dir, dirtyFile)); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	if !s.cfg.NoSync {
		if err := syncDir(s.cfg.Dir); err != nil {
			return fmt.Errorf("store: close: %w", err)
		}
	}
	return nil
}

// rlock takes the read side of mu and reports ErrClosed if the store is
// closed (in which case the lock is not held).
func (s *Store) rlock() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// AppliedIndex returns the Raft index of the last applied entry.
func (s *Store) AppliedIndex() uint64 { return s.applied.Load() }

// chunkPath returns the path of a chunk file. Callers hold mu.
func (s *Store) chunkPath(file [16]byte, index uint64) string {
	return filepath.Join(s.chunkDir, chunkRelPath(file, index))
}

// stripeOf picks the lock stripe of a chunk.
func stripeOf(file [16]byte, index uint64) int {
	h := binary.LittleEndian.Uint64(file[:8]) ^ binary.LittleEndian.Uint64(file[8:])
	h ^= index * 0x9e3779b97f4a7c15
	h ^= h >> 32
	h ^= h >> 16
	h ^= h >> 8
	return int(h & 0xff)
}

// getValue reads key from r and returns a copy of its value.
func getValue(r pebble.Reader, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	_ = closer.Close()
	return out, true, nil
}

// writeFileSync writes path atomically (temporary file and rename),
// fsyncing the file and its directory when sync is set.
func writeFileSync(path string, data []byte, sync bool) error {
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil && sync {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// syncDir fsyncs a directory, making renames and creations in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ChunkPath is the file that holds a chunk's data, for tools and tests
// that inspect (or damage) a brick on disk.
func (s *Store) ChunkPath(file [16]byte, index uint64) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.chunkPath(file, index)
}
