// Package raftstore is a Pebble-backed log and stable store for
// github.com/hashicorp/raft. One *Store implements both raft.LogStore and
// raft.StableStore, so a node passes the same value twice to raft.NewRaft.
//
// # What is stored
//
// A Store owns one Pebble database in Config.Dir holding two kinds of record:
//
//   - Raft log entries (raft.Log): Index, Term, Type, Data, Extensions and
//     AppendedAt, in a compact versioned binary encoding (a version byte,
//     varints and length-prefixed byte strings; see codec.go).
//   - Stable values: the small key/value pairs raft keeps across restarts
//     (current term, last vote, ...), stored as given; SetUint64 values are
//     8 bytes big-endian.
//
// # Key layout
//
//	'l' + uint64 index (8 bytes, big-endian)  -> encoded raft.Log
//	's' + stable key (verbatim)                -> stable value
//
// Big-endian indexes make Pebble's byte order equal to index order, so the
// first and last log entries are a single seek away and DeleteRange(min, max)
// is one range tombstone ['l'+min, 'l'+(max+1)).
//
// # Durability
//
// Every mutation (StoreLog, StoreLogs, DeleteRange, Set, SetUint64) is a
// single atomic Pebble batch; a StoreLogs call is all or nothing. By default
// the batch is committed with pebble.Sync, so it is on stable storage when
// the call returns, which is what raft's safety argument assumes. With
// Config.NoSync the write-ahead log is not fsynced per call: a process crash
// loses nothing, but a machine crash or power loss may drop the most recent
// writes. Use NoSync only for tests and benchmarks.
//
// # Concurrency
//
// raft calls the store from several goroutines at once (the main loop
// appends and truncates, the FSM and replication goroutines read entries, the
// snapshot goroutine compacts the log prefix). All methods are safe for
// concurrent use. Reads run in parallel with each other and with writes.
// Log mutations (StoreLogs, DeleteRange) are serialised with each other so
// that the in-memory FirstIndex/LastIndex cache tracks what is on disk;
// FirstIndex and LastIndex are atomic loads that never touch Pebble. The
// cache grows after a StoreLogs commit and shrinks before a DeleteRange
// commit, so a bound a reader sees never names an entry that the write in
// progress has already removed. As with any store, an entry can still be
// compacted away between a reader's FirstIndex and its GetLog; raft
// tolerates that (GetLog returns raft.ErrLogNotFound). Close waits for
// in-flight calls to finish; any call made after Close returns an error
// wrapping ErrClosed.
//
// # Errors
//
// GetLog of an index that is not stored returns raft.ErrLogNotFound. Get and
// GetUint64 of a missing stable key return an empty value and a nil error, as
// the raft.StableStore contract asks. Other errors wrap one of this package's
// sentinels (ErrClosed, ErrCorrupt, ErrInvalidConfig) or an underlying
// Pebble error, and are prefixed "raftstore:".
package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/hashicorp/raft"

	"github.com/dfsproject/dfs/pkg/pebblelog"
)

// Compile-time interface checks.
var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// Sentinel errors. Returned errors wrap these; test with errors.Is.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("raftstore: closed")
	// ErrCorrupt is returned when a stored record cannot be decoded.
	ErrCorrupt = errors.New("raftstore: corrupt record")
	// ErrInvalidConfig is returned by Config.Validate and Open.
	ErrInvalidConfig = errors.New("raftstore: invalid config")
)

// Config configures a Store. Start from DefaultConfig and set Dir.
type Config struct {
	// Dir is the directory holding the Pebble database. It is created if it
	// does not exist. Required; there is no default.
	Dir string
	// Logger receives the store's and Pebble's log messages. Pebble's
	// informational chatter (flushes, compactions, WAL recovery) is logged at
	// Debug, Pebble errors at Error. Default: discard (also when nil).
	Logger *slog.Logger
	// NoSync, if true, commits writes without fsyncing the write-ahead log.
	// Faster, but a machine crash may lose acknowledged writes, which breaks
	// raft's guarantees. Default: false (every write is synced).
	NoSync bool
	// SegmentBytes is the size after which the data of large entries goes
	// to a new blob segment; segments are dropped whole at log compaction.
	// Default (0): 64 MiB.
	SegmentBytes int64
}

// DefaultConfig returns a Config with every field at its default. Dir is
// empty and must be set before Open.
func DefaultConfig() Config {
	return Config{
		Logger: slog.New(slog.DiscardHandler),
		NoSync: false,
	}
}

// Validate reports whether the config can be used to Open a store. The
// returned error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	if c.Dir == "" {
		return fmt.Errorf("%w: Dir is required", ErrInvalidConfig)
	}
	return nil
}

// Store is a Pebble-backed raft.LogStore and raft.StableStore. Create it with
// Open and release it with Close. All methods are safe for concurrent use.
type Store struct {
	db     *pebble.DB
	wo     *pebble.WriteOptions
	logger *slog.Logger

	// mu guards closed and the lifetime of db: every call holds it for
	// reading while it touches db; Close holds it for writing.
	mu     sync.RWMutex
	closed bool

	// writeMu serialises log mutations (StoreLogs, DeleteRange) so that the
	// cached bounds below are updated in the same order as the DB. Lock
	// order: writeMu before mu.
	writeMu sync.Mutex

	// first and last cache the lowest and highest stored log index; both
	// are 0 when the log is empty. Written only under writeMu.
	first atomic.Uint64
	last  atomic.Uint64

	// blobs holds the Data of large entries (blobs.go).
	blobs *blobs
}

// Open opens (creating if needed) the store in cfg.Dir and loads the log
// bounds. A nil cfg.Logger discards logs.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "raftstore", "dir", cfg.Dir)

	opts := &pebble.Options{
		Logger:             pebblelog.New(logger.With("subsystem", "pebble"), "raftstore"),
		FormatMajorVersion: pebble.FormatNewest,
	}
	// Entries carry chunk data (up to 1 MiB), mostly incompressible file
	// data that log compaction deletes soon after: compressing it when
	// Pebble flushes and compacts is wasted work.
	for i := range opts.Levels {
		opts.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
	}
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("raftstore: open %s: %w", cfg.Dir, err)
	}
	s := &Store{db: db, wo: pebble.Sync, logger: logger}
	if cfg.NoSync {
		s.wo = pebble.NoSync
	}
	first, last, err := s.scanBounds()
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("raftstore: open %s: load log bounds: %w", cfg.Dir, err)
	}
	if s.blobs, err = openBlobs(filepath.Join(cfg.Dir, blobDirName), !cfg.NoSync, cfg.SegmentBytes); err == nil {
		err = s.scanBlobs()
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("raftstore: open %s: blob segments: %w", cfg.Dir, err)
	}
	s.first.Store(first)
	s.last.Store(last)
	logger.Debug("opened", "first_index", first, "last_index", last, "no_sync", cfg.NoSync)
	return s, nil
}

// Close flushes and closes the database. Calls made after Close, including a
// second Close, return an error wrapping ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	berr := s.blobs.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("raftstore: close: %w", err)
	}
	if berr != nil {
		return fmt.Errorf("raftstore: close blob segments: %w", berr)
	}
	return nil
}

// BlobBytes is the disk space the log's blob segments take: the data of
// its large entries, until log compaction drops them.
func (s *Store) BlobBytes() int64 { return s.blobs.bytes() }

// scanBlobs learns which segments the stored entries refer to, and
// deletes the others.
func (s *Store) scanBlobs() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logLower, UpperBound: logUpper})
	if err != nil {
		return err
	}
	var l raft.Log
	for it.First(); it.Valid(); it.Next() {
		ref, err := decodeLogRef(it.Value(), &l)
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("log key %x: %w", it.Key(), err)
		}
		if ref != nil {
			s.blobs.noteRef(ref, l.Index)
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	return s.blobs.removeUnreferenced()
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

// FirstIndex returns the lowest stored log index, or 0 if the log is empty.
func (s *Store) FirstIndex() (uint64, error) {
	if err := s.rlock(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	return s.first.Load(), nil
}

// LastIndex returns the highest stored log index, or 0 if the log is empty.
func (s *Store) LastIndex() (uint64, error) {
	if err := s.rlock(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	return s.last.Load(), nil
}

// GetLog reads the entry at index into log. It returns raft.ErrLogNotFound
// if no entry with that index is stored. The returned Data and Extensions
// are owned by the caller.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	k := logKey(index)
	val, closer, err := s.db.Get(k[:])
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("raftstore: get log %d: %w", index, err)
	}
	// val is only valid until closer.Close; decodeLogRef copies what it
	// keeps.
	ref, err := decodeLogRef(val, log)
	_ = closer.Close()
	if err != nil {
		return fmt.Errorf("raftstore: get log %d: %w", index, err)
	}
	if ref != nil {
		data, err := s.blobs.read(ref)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrClosed) {
			if index < s.first.Load() {
				return raft.ErrLogNotFound // compacted away meanwhile
			}
		}
		if err != nil {
			return fmt.Errorf("raftstore: get log %d: %w", index, err)
		}
		log.Data = data
	}
	if log.Index != index {
		return fmt.Errorf("raftstore: get log %d: %w: entry claims index %d", index, ErrCorrupt, log.Index)
	}
	return nil
}

// StoreLog stores a single log entry.
func (s *Store) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores the entries in one atomic batch, overwriting any entry
// already stored at the same index. Indexes need not be contiguous with
// the existing log.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if len(logs) == 0 {
		return nil
	}

	size := 0
	for i, l := range logs {
		if l == nil {
			return fmt.Errorf("raftstore: store logs: entry %d is nil", i)
		}
		if len(l.Data) < blobThreshold {
			size += logKeyLen + encodedLogSize(l) + 8
		} else {
			size += logKeyLen + encodedLogSize(&raft.Log{Extensions: l.Extensions}) + 40
		}
	}
	// Large Data goes to a blob segment first, synced: the batch below
	// refers to it.
	refs, err := s.blobs.write(logs)
	if err != nil {
		return fmt.Errorf("raftstore: store logs: %w", err)
	}
	b := s.db.NewBatchWithSize(size)
	defer func() { _ = b.Close() }()

	lo, hi := logs[0].Index, logs[0].Index
	var buf []byte
	for i, l := range logs {
		k := logKey(l.Index)
		var ref *blobRef
		if refs != nil {
			ref = refs[i]
		}
		buf = appendLogRef(buf[:0], l, ref)
		// Batch.Set copies key and value into the batch.
		if err := b.Set(k[:], buf, nil); err != nil {
			return fmt.Errorf("raftstore: store log %d: %w", l.Index, err)
		}
		lo, hi = min(lo, l.Index), max(hi, l.Index)
	}
	if err := b.Commit(s.wo); err != nil {
		return fmt.Errorf("raftstore: store logs [%d, %d]: %w", lo, hi, err)
	}

	if f := s.first.Load(); f == 0 || lo < f {
		s.first.Store(lo)
	}
	if hi > s.last.Load() {
		s.last.Store(hi)
	}
	return nil
}

// DeleteRange deletes the log entries with min <= index <= max (both ends
// inclusive). Deleting indexes that are not stored is not an error; min >
// max deletes nothing.
func (s *Store) DeleteRange(min, max uint64) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if min > max {
		return nil
	}

	start := logKey(min)
	end := logUpper // exclusive; covers max == MaxUint64
	if max < math.MaxUint64 {
		k := logKey(max + 1)
		end = k[:]
	}
	// Invariant: first and last are the smallest and largest stored index
	// (or both 0). Only a deletion that covers one of them moves a bound.
	// The new bounds lie outside [min, max], so they can be found before the
	// delete; with writeMu held nothing else changes the log meanwhile.
	first, last := s.first.Load(), s.last.Load()
	newFirst, newLast := first, last
	if first != 0 && max >= first && min <= last {
		switch {
		case min <= first && max >= last: // everything goes
			newFirst, newLast = 0, 0
		case min <= first: // prefix truncation (log compaction)
			k := logKey(max + 1) // max < last, so no overflow
			idx, ok, err := s.seekIndex(k[:], true)
			if err != nil || !ok {
				return fmt.Errorf("raftstore: delete range [%d, %d]: find new first index: %w", min, max, missingBound(err, ok))
			}
			newFirst = idx
		case max >= last: // suffix truncation (conflicting entries)
			idx, ok, err := s.seekIndex(start[:], false)
			if err != nil || !ok {
				return fmt.Errorf("raftstore: delete range [%d, %d]: find new last index: %w", min, max, missingBound(err, ok))
			}
			newLast = idx
		}
	}

	b := s.db.NewBatch()
	defer func() { _ = b.Close() }()
	if err := b.DeleteRange(start[:], end, nil); err != nil {
		return fmt.Errorf("raftstore: delete range [%d, %d]: %w", min, max, err)
	}
	// Shrink the cached bounds before the entries disappear (StoreLogs grows
	// them after its entries appear), so a reader never gets a FirstIndex or
	// LastIndex whose entry has already been deleted by this call.
	s.first.Store(newFirst)
	s.last.Store(newLast)
	if err := b.Commit(s.wo); err != nil {
		s.reloadBounds()
		return fmt.Errorf("raftstore: delete range [%d, %d]: %w", min, max, err)
	}
	if newFirst != first || newFirst == 0 {
		// Log compaction: segments holding only entries below the new
		// first index go.
		if err := s.blobs.dropBelow(newFirst); err != nil {
			s.logger.Warn("delete blob segments", "err", err)
		}
	}
	return nil
}

// missingBound turns "no key found where one must be" into an error.
func missingBound(err error, found bool) error {
	if err == nil && !found {
		return fmt.Errorf("%w: log bound not found", ErrCorrupt)
	}
	return err
}

// reloadBounds re-reads the cached bounds from the database after a failed
// commit, so the cache cannot drift from what is on disk.
func (s *Store) reloadBounds() {
	first, last, err := s.scanBounds()
	if err != nil {
		s.logger.Error("reload log bounds", "err", err)
		return
	}
	s.first.Store(first)
	s.last.Store(last)
}

// seekIndex returns the index of the first log key >= key (ge) or the last
// log key < key (!ge). ok is false if there is none.
func (s *Store) seekIndex(key []byte, ge bool) (idx uint64, ok bool, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logLower, UpperBound: logUpper})
	if err != nil {
		return 0, false, err
	}
	if ge {
		ok = it.SeekGE(key)
	} else {
		ok = it.SeekLT(key)
	}
	if ok {
		idx, err = parseLogKey(it.Key())
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, false, err
	}
	return idx, ok, nil
}

// scanBounds reads the first and last log index from the database.
func (s *Store) scanBounds() (first, last uint64, err error) {
	if first, _, err = s.seekIndex(logLower, true); err != nil {
		return 0, 0, err
	}
	if last, _, err = s.seekIndex(logUpper, false); err != nil {
		return 0, 0, err
	}
	return first, last, nil
}

// Set stores val under key, synced unless Config.NoSync.
func (s *Store) Set(key []byte, val []byte) error {
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if err := s.db.Set(stableKey(key), val, s.wo); err != nil {
		return fmt.Errorf("raftstore: set %q: %w", key, err)
	}
	return nil
}

// Get returns the value stored under key. A missing key yields an empty
// (nil) value and a nil error, as raft.StableStore requires. The returned
// slice is owned by the caller.
func (s *Store) Get(key []byte) ([]byte, error) {
	val, _, err := s.getStable(key)
	return val, err
}

// getStable is Get that also reports whether key exists.
func (s *Store) getStable(key []byte) (val []byte, found bool, err error) {
	if err := s.rlock(); err != nil {
		return nil, false, err
	}
	defer s.mu.RUnlock()
	v, closer, err := s.db.Get(stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("raftstore: get %q: %w", key, err)
	}
	// v is only valid until closer.Close.
	val = append([]byte(nil), v...)
	_ = closer.Close()
	return val, true, nil
}

// SetUint64 stores val under key as 8 bytes big-endian.
func (s *Store) SetUint64(key []byte, val uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], val)
	return s.Set(key, b[:])
}

// GetUint64 returns the value stored under key by SetUint64, or 0 and a nil
// error if key is missing. A value that is not 8 bytes long is ErrCorrupt.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	val, found, err := s.getStable(key)
	if err != nil || !found {
		return 0, err
	}
	if len(val) != 8 {
		return 0, fmt.Errorf("raftstore: get uint64 %q: %w: value is %d bytes, want 8", key, ErrCorrupt, len(val))
	}
	return binary.BigEndian.Uint64(val), nil
}
