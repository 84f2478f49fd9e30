package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// EncodeCommand encodes cmd as the data of a Raft log entry for Apply.
func EncodeCommand(cmd *dfspb.StoreCommand) ([]byte, error) {
	return proto.Marshal(cmd)
}

// Apply applies one committed Raft log entry (raft.FSM). For a command
// entry it returns a *dfspb.StoreResult; for other entry types nil. It is
// ApplyBatch of one entry.
func (s *Store) Apply(l *raft.Log) any {
	return s.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed Raft log entries in order
// (raft.BatchingFSM). All entries go into one Pebble batch, committed once
// with the last applied index; chunk files the batch wrote are fsynced
// before that commit. Each command entry's response is a
// *dfspb.StoreResult; entries at or below the applied index are skipped
// and answered with Replayed set. If the store cannot write locally, no
// entry of the batch is committed, each command gets a CodeIO result, and
// the store refuses further entries until it is reopened.
//
// Raft calls Apply, ApplyBatch, Snapshot and Restore one at a time; reads
// may run concurrently.
func (s *Store) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if err := s.rlock(); err != nil {
		return failAll(logs, out, err)
	}
	defer s.mu.RUnlock()
	if s.failed != nil {
		return failAll(logs, out, fmt.Errorf("store: refusing entries after failure: %w", s.failed))
	}

	applied := s.applied.Load()
	t := s.newTxn()
	defer t.close()
	last := applied
	for i, l := range logs {
		if l.Index <= applied {
			if l.Type == raft.LogCommand {
				out[i] = &dfspb.StoreResult{Replayed: true}
			}
			continue
		}
		last = l.Index
		if l.Type != raft.LogCommand {
			continue
		}
		out[i] = t.applyEntry(l)
		if t.fatal != nil {
			break
		}
	}
	if t.fatal == nil && last > applied {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], last)
		if err := t.b.Set(keyApplied, v[:], nil); err != nil {
			t.fatal = err
		}
	}
	if t.fatal == nil && last > applied {
		t.fatal = t.commit()
	}
	if t.fatal != nil {
		s.failed = t.fatal
		s.logger.Error("apply failed; store stopped until reopened", "first_index", logs[0].Index, "err", t.fatal)
		for i, l := range logs {
			if l.Index > applied {
				out[i] = nil
			}
		}
		return failAll(logs, out, fmt.Errorf("store: apply: %w", t.fatal))
	}
	s.applied.Store(last)
	return out
}

// failAll answers every command entry without a response with err.
func failAll(logs []*raft.Log, out []any, err error) []any {
	for i, l := range logs {
		if out[i] == nil && l.Type == raft.LogCommand {
			out[i] = errResult(err)
		}
	}
	return out
}

// errResult turns an error into a result.
func errResult(err error) *dfspb.StoreResult {
	return &dfspb.StoreResult{Code: dfspb.StoreErrorCode(Code(err)), Message: err.Error()}
}

// txn is the state of one ApplyBatch: the Pebble batch (indexed, so that
// later entries read what earlier ones wrote) and the chunk files touched.
type txn struct {
	s      *Store
	b      *pebble.Batch
	index  uint64 // Raft index of the entry being applied
	now    int64  // its leader timestamp
	counts counts
	// fatal is a local storage failure: the batch must not be committed.
	fatal error

	held   map[int]bool          // stripes locked (for writing)
	files  map[string]*chunkFile // chunk files opened, by path
	dirs   map[string]bool       // chunk directories with new files
	remove map[string]bool       // chunk files to delete after the commit
	locks  []layout.ID           // inodes whose locks the batch changes
	// stageWaitEnd ends the waits of the batch's staged writes for their
	// pushes in progress (stage.go; zero: none yet).
	stageWaitEnd time.Time
}

// chunkFile is a chunk file open for writing in a batch.
type chunkFile struct {
	f    *os.File
	size int64 // current length of the file on disk
}

func (s *Store) newTxn() *txn {
	s.countsMu.Lock()
	c := s.counts
	s.countsMu.Unlock()
	return &txn{
		s:      s,
		b:      s.db.NewIndexedBatch(),
		counts: c,
		held:   make(map[int]bool),
		files:  make(map[string]*chunkFile),
		dirs:   make(map[string]bool),
		remove: make(map[string]bool),
	}
}

// commit makes the batch durable: chunk files and directories first, then
// the Pebble batch, then deferred chunk file deletions.
func (t *txn) commit() error {
	s := t.s
	if !s.cfg.NoSync {
		for path, cf := range t.files {
			if t.remove[path] {
				continue
			}
			if err := cf.f.Sync(); err != nil {
				return fmt.Errorf("sync chunk %s: %w", path, err)
			}
		}
		for dir := range t.dirs {
			if err := syncDir(dir); err != nil {
				return fmt.Errorf("sync chunk directory %s: %w", dir, err)
			}
		}
	}
	if err := t.b.Set(keyCounts, t.counts.encode(), nil); err != nil {
		return err
	}
	// The Raft log, synced on a majority before an entry is applied,
	// holds every entry: the store syncs its commit only every syncEvery
	// entries (bounding what a machine crash makes Raft replay), and
	// before every snapshot, after which Raft may drop log entries.
	wo := pebble.NoSync
	sync := !s.cfg.NoSync && (s.cfg.SyncCommits || t.index >= s.syncedIndex+syncEvery)
	if sync {
		wo = pebble.Sync
	}
	if err := t.b.Commit(wo); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if sync {
		s.syncedIndex = t.index
	}
	s.countsMu.Lock()
	s.counts = t.counts
	s.countsMu.Unlock()
	if len(t.locks) > 0 {
		s.locksChanged(t.locks, false)
	}
	for path := range t.remove {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			// The index no longer names the file: it is an orphan that
			// the sweep after an unclean restart removes.
			s.logger.Warn("remove chunk file", "path", path, "err", err)
		}
	}
	return nil
}

// close releases the batch, files and stripe locks.
func (t *txn) close() {
	for _, cf := range t.files {
		_ = cf.f.Close()
	}
	_ = t.b.Close()
	for st := range t.held {
		t.s.stripes[st].Unlock()
	}
}

// applyEntry applies one command entry and returns its result. A local
// storage failure is recorded in t.fatal.
func (t *txn) applyEntry(l *raft.Log) *dfspb.StoreResult {
	t.index = l.Index
	var cmd dfspb.StoreCommand
	if err := proto.Unmarshal(l.Data, &cmd); err != nil {
		return errResult(fmt.Errorf("%w: decode command at index %d: %v", ErrInvalid, l.Index, err))
	}
	t.now = cmd.GetNowNs()
	res, err := t.dispatch(&cmd)
	if err != nil {
		if Code(err) == CodeIO {
			t.fatal = err
		}
		return errResult(err)
	}
	return res
}

func (t *txn) dispatch(cmd *dfspb.StoreCommand) (*dfspb.StoreResult, error) {
	if err := t.txnGuard(cmd); err != nil {
		return nil, err
	}
	switch op := cmd.GetOp().(type) {
	case *dfspb.StoreCommand_CreateEntry:
		return t.createEntry(op.CreateEntry)
	case *dfspb.StoreCommand_CreateInode:
		return t.createInode(op.CreateInode)
	case *dfspb.StoreCommand_Link:
		return t.link(op.Link)
	case *dfspb.StoreCommand_Unlink:
		return t.unlink(op.Unlink)
	case *dfspb.StoreCommand_SealDir:
		return t.sealDir(op.SealDir.GetDir(), true)
	case *dfspb.StoreCommand_UnsealDir:
		return t.sealDir(op.UnsealDir.GetDir(), false)
	case *dfspb.StoreCommand_DropInode:
		return t.dropInode(op.DropInode)
	case *dfspb.StoreCommand_AdjustLink:
		return t.adjustLink(op.AdjustLink)
	case *dfspb.StoreCommand_AppendReserve:
		return t.appendReserve(op.AppendReserve)
	case *dfspb.StoreCommand_Rename:
		return t.rename(op.Rename)
	case *dfspb.StoreCommand_SetAttr:
		return t.setAttr(op.SetAttr)
	case *dfspb.StoreCommand_WriteInline:
		return t.andThen(t.writeInline(op.WriteInline))(op.WriteInline.GetThen())
	case *dfspb.StoreCommand_CommitSize:
		return t.andThen(t.commitSize(op.CommitSize))(op.CommitSize.GetThen())
	case *dfspb.StoreCommand_WriteChunk:
		return t.writeChunk(op.WriteChunk)
	case *dfspb.StoreCommand_WriteExtents:
		return t.writeExtents(op.WriteExtents)
	case *dfspb.StoreCommand_TruncateChunk:
		return t.truncateChunk(op.TruncateChunk)
	case *dfspb.StoreCommand_DeleteChunks:
		return t.deleteChunks(op.DeleteChunks)
	case *dfspb.StoreCommand_SetXattr:
		return t.setXattr(op.SetXattr)
	case *dfspb.StoreCommand_RemoveXattr:
		return t.removeXattr(op.RemoveXattr)
	case *dfspb.StoreCommand_SetLock:
		return t.setLock(op.SetLock)
	case *dfspb.StoreCommand_ExpireLockSession:
		return t.expireLockSession(op.ExpireLockSession)
	case *dfspb.StoreCommand_TxnBegin:
		return t.txnBegin(op.TxnBegin)
	case *dfspb.StoreCommand_TxnDecide:
		return t.txnDecide(op.TxnDecide)
	case *dfspb.StoreCommand_TxnEnd:
		return t.txnEnd(op.TxnEnd)
	case *dfspb.StoreCommand_TxnStep:
		return t.txnStep(op.TxnStep)
	case *dfspb.StoreCommand_TxnForget:
		return t.txnForget(op.TxnForget)
	case *dfspb.StoreCommand_SwapEntry:
		return t.swapEntry(op.SwapEntry)
	default:
		return nil, fmt.Errorf("%w: unknown command %T", ErrInvalid, op)
	}
}

// ---- record access within a batch ------------------------------------------

// ioErr marks a storage error as local failure (CodeIO).
func ioErr(err error) error { return fmt.Errorf("%w: %w", ErrIO, err) }

// getInode reads an inode record from r; ErrNotFound if absent.
func getInode(r pebble.Reader, id layout.ID) (*dfspb.InodeRecord, error) {
	v, ok, err := getValue(r, inodeKey(id))
	if err != nil {
		return nil, ioErr(err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: inode %s", ErrNotFound, id)
	}
	rec := &dfspb.InodeRecord{}
	if err := proto.Unmarshal(v, rec); err != nil {
		return nil, ioErr(fmt.Errorf("decode inode %s: %w", id, err))
	}
	if rec.Attr == nil {
		rec.Attr = &dfspb.Attr{}
	}
	return rec, nil
}

// getDirent reads the entry name of dir from r.
func getDirent(r pebble.Reader, dir layout.ID, name string) (dirent, bool, error) {
	v, ok, err := getValue(r, direntKey(dir, name))
	if err != nil {
		return dirent{}, false, ioErr(err)
	}
	if !ok {
		return dirent{}, false, nil
	}
	d, err := decodeDirent(v)
	return d, err == nil, err
}

// dirEmpty reports whether dir has no entries in r.
func dirEmpty(r pebble.Reader, dir layout.ID) (bool, error) {
	lo, hi := prefixBounds(idKey(prefixDirent, dir))
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return false, ioErr(err)
	}
	found := it.First()
	if err := it.Close(); err != nil {
		return false, ioErr(err)
	}
	return !found, nil
}

func (t *txn) inode(id layout.ID) (*dfspb.InodeRecord, error) { return getInode(t.b, id) }

// inodeOrNil is inode that returns nil, nil when the inode is absent.
func (t *txn) inodeOrNil(id layout.ID) (*dfspb.InodeRecord, error) {
	rec, err := t.inode(id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return rec, err
}

func (t *txn) putInode(rec *dfspb.InodeRecord) error {
	v, err := proto.MarshalOptions{Deterministic: true}.Marshal(rec)
	if err != nil {
		return ioErr(err)
	}
	var id layout.ID
	copy(id[:], rec.Attr.Id)
	if err := t.b.Set(inodeKey(id), v, nil); err != nil {
		return ioErr(err)
	}
	return nil
}

// deleteInode removes an inode record with its inline data and xattrs.
func (t *txn) deleteInode(id layout.ID) error {
	if err := t.b.Delete(inodeKey(id), nil); err != nil {
		return ioErr(err)
	}
	if err := t.b.Delete(inlineKey(id), nil); err != nil {
		return ioErr(err)
	}
	names, err := listXattrs(t.b, id)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := t.b.Delete(xattrKey(id, n), nil); err != nil {
			return ioErr(err)
		}
	}
	for _, prefix := range []byte{prefixOp, prefixOpTime} {
		ops, err := keysWithPrefix(t.b, idKey(prefix, id))
		if err != nil {
			return err
		}
		for _, k := range ops {
			if err := t.b.Delete(k, nil); err != nil {
				return ioErr(err)
			}
		}
	}
	t.counts.Inodes--
	return nil
}

// OpIDTTL is how long the store remembers an op id (AdjustLink, appends):
// far longer than a client keeps retrying a command (its failover
// timeout), so a retry always finds the op id of an attempt that was
// applied. Ages are measured with the leader's timestamps (now_ns).
const OpIDTTL = 10 * time.Minute

// seenOp reports whether op id opID was applied to inode id, and the
// offset it recorded.
func (t *txn) seenOp(id layout.ID, opID []byte) (offset uint64, seen bool, err error) {
	v, ok, err := getValue(t.b, opKey(id, opID))
	if err != nil {
		return 0, false, ioErr(err)
	}
	if len(v) >= 8 {
		offset = binary.BigEndian.Uint64(v)
	}
	return offset, ok, nil
}

// rememberOp records op id opID as applied to inode id now, with the
// offset a retry must be told (appends), and forgets the inode's op ids
// older than OpIDTTL. Each op id has two keys: 'o'+id+op -> be64 offset,
// be64 time; and 'O'+id+be64 time+op (empty), the inode's op ids in time
// order, so that expiry reads only what it deletes.
func (t *txn) rememberOp(id layout.ID, opID []byte, offset uint64) error {
	now := uint64(max(t.now, 0))
	if now > uint64(OpIDTTL) {
		cutoff := now - uint64(OpIDTTL)
		p := idKey(prefixOpTime, id)
		lo, hi := prefixBounds(p)
		it, err := t.b.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return ioErr(err)
		}
		var expired [][]byte
		for ok := it.First(); ok; ok = it.Next() {
			k := it.Key()
			if len(k) < len(p)+8 || binary.BigEndian.Uint64(k[len(p):]) >= cutoff {
				break
			}
			expired = append(expired, append([]byte(nil), k...))
		}
		if err := it.Close(); err != nil {
			return ioErr(err)
		}
		for _, k := range expired {
			if err := t.b.Delete(k, nil); err != nil {
				return ioErr(err)
			}
			if err := t.b.Delete(opKey(id, k[len(p)+8:]), nil); err != nil {
				return ioErr(err)
			}
		}
	}
	var v [16]byte
	binary.BigEndian.PutUint64(v[:8], offset)
	binary.BigEndian.PutUint64(v[8:], now)
	if err := t.b.Set(opKey(id, opID), v[:], nil); err != nil {
		return ioErr(err)
	}
	if err := t.b.Set(opTimeKey(id, now, opID), nil, nil); err != nil {
		return ioErr(err)
	}
	return nil
}

func (t *txn) dirent(dir layout.ID, name string) (dirent, bool, error) {
	return getDirent(t.b, dir, name)
}

func (t *txn) putDirent(dir layout.ID, name string, d dirent) error {
	if err := t.b.Set(direntKey(dir, name), encodeDirent(d.typ, d.child, d.locator), nil); err != nil {
		return ioErr(err)
	}
	return nil
}

func (t *txn) deleteDirent(dir layout.ID, name string) error {
	if err := t.b.Delete(direntKey(dir, name), nil); err != nil {
		return ioErr(err)
	}
	return nil
}

func (t *txn) inline(id layout.ID) ([]byte, error) {
	v, _, err := getValue(t.b, inlineKey(id))
	if err != nil {
		return nil, ioErr(err)
	}
	return v, nil
}

func (t *txn) putInline(id layout.ID, data []byte) error {
	var err error
	if len(data) == 0 {
		err = t.b.Delete(inlineKey(id), nil)
	} else {
		err = t.b.Set(inlineKey(id), data, nil)
	}
	if err != nil {
		return ioErr(err)
	}
	return nil
}

// touch stamps an inode as changed by the current entry.
func (t *txn) touch(a *dfspb.Attr, mtime bool) {
	a.CtimeNs = t.now
	if mtime {
		a.MtimeNs = t.now
	}
	a.Version = t.index
}

// keysWithPrefix returns the keys in r that start with p.
func keysWithPrefix(r pebble.Reader, p []byte) ([][]byte, error) {
	lo, hi := prefixBounds(p)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, ioErr(err)
	}
	var keys [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		keys = append(keys, append([]byte(nil), it.Key()...))
	}
	if err := it.Close(); err != nil {
		return nil, ioErr(err)
	}
	return keys, nil
}

// listXattrs returns the xattr names of id in r, sorted.
func listXattrs(r pebble.Reader, id layout.ID) ([]string, error) {
	p := idKey(prefixXattr, id)
	lo, hi := prefixBounds(p)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, ioErr(err)
	}
	var names []string
	for ok := it.First(); ok; ok = it.Next() {
		names = append(names, string(it.Key()[len(p):]))
	}
	if err := it.Close(); err != nil {
		return nil, ioErr(err)
	}
	return names, nil
}

// ---- chunk files within a batch --------------------------------------------

// lockChunk takes the stripe lock of a chunk for the rest of the batch.
func (t *txn) lockChunk(file layout.ID, index uint64) {
	st := stripeOf(file, index)
	if !t.held[st] {
		t.s.stripes[st].Lock()
		t.held[st] = true
	}
}

// openChunk opens (creating) the chunk file for writing and makes its
// length on disk equal to length, the length the index records: bytes past
// the recorded length (left by a batch lost in a crash, or by a deletion
// earlier in this batch) are cut off, so they read as zeros.
func (t *txn) openChunk(path string, length int64) (*chunkFile, error) {
	cf, ok := t.files[path]
	if !ok {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, ioErr(err)
		}
		fi, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return nil, ioErr(err)
		}
		cf = &chunkFile{f: f, size: fi.Size()}
		t.files[path] = cf
	}
	delete(t.remove, path)
	if cf.size != length {
		if err := cf.f.Truncate(length); err != nil {
			return nil, ioErr(err)
		}
		cf.size = length
	}
	if length == 0 {
		t.dirs[filepath.Dir(path)] = true
	}
	return cf, nil
}

// readFull reads len(buf) bytes at off, treating a short file as zeros
// (callers verify checksums).
func readFull(f io.ReaderAt, buf []byte, off int64) (int, error) {
	n, err := f.ReadAt(buf, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// andThen applies the attribute change that a write or commit carries
// (then), after it, when it succeeded; the result is the change's, with
// the attributes after both.
func (t *txn) andThen(res *dfspb.StoreResult, err error) func(*dfspb.SetAttrCmd) (*dfspb.StoreResult, error) {
	return func(then *dfspb.SetAttrCmd) (*dfspb.StoreResult, error) {
		if err != nil || then == nil {
			return res, err
		}
		after, err := t.setAttr(then)
		if err != nil {
			return nil, err
		}
		res.Attr = after.GetAttr()
		return res, nil
	}
}
