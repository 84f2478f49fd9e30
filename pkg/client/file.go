package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// MaxFileSize is the largest file size the client accepts (1 PiB).
const MaxFileSize = 1 << 50

// File is an open regular file. Its methods may be called concurrently.
// Every File of one inode opened through the same Volume shares one write
// buffer, so each sees the others' writes at once; other Volumes (other
// clients) see them after Flush (close-to-open consistency).
type File struct {
	st       *openInode
	writable bool
	// appending: opened with O_APPEND; every write goes to the end of
	// the file as committed (see AppendWrite).
	appending bool
	released  atomic.Bool
}

// openInode is the state shared by the Files of one inode in a Volume:
// the buffered writes and what is known of the committed size.
type openInode struct {
	v    *Volume
	node Node
	refs int // guarded by v.openMu

	mu   sync.Mutex
	cond *sync.Cond // on mu; signalled when a chunk write ends

	// attr is the newest attributes seen; version is theirs.
	attr    *dfspb.Attr
	version uint64
	attrAt  time.Time // when attr came from the subvolume
	// attrChanges is the Volume's postOps.changes when attr came.
	attrChanges uint64
	// remoteSize and remoteChunked are the committed size and data
	// placement as last seen.
	remoteSize    uint64
	remoteChunked bool
	// size is the file size including buffered writes. chunked says
	// where the data goes: chunks (committed so, or decided here because
	// the file outgrew InlineMax) or inline.
	size    uint64
	chunked bool
	mtimeNs int64 // local clock of the last buffered write

	dirty    map[uint64]*chunkBuf // chunk index -> unflushed writes
	inflight map[uint64]*chunkBuf // chunk index -> being written
	running  int                  // chunk writes in flight
	buffered int                  // bytes held by dirty and inflight buffers
	// uncommitted: chunks were written, or the size grew, since the last
	// CommitSize/WriteInline.
	uncommitted bool
	// werr is the first failed background chunk write; every later
	// Flush reports it (the file's data is incomplete).
	werr error
	// removed: the file was deleted; buffered data is dropped.
	removed bool
	// orphan: the file lost its last link while open here and was kept
	// (keep_open); the last Release drops it. Guarded by v.openMu.
	orphan bool
	// pending is an attribute change (chmod, chown, utimens) made while
	// writes were buffered: it rides on the next commit (then), so that
	// cp -a's data, times, owner and mode cost one Raft round.
	pending *dfspb.SetAttrCmd
	// ra is the read-ahead cache of committed chunk data (readahead.go).
	ra readAhead
	// fetched is an inline file's data as Open fetched it with the
	// attributes, served to reads until anything changes (opendata.go).
	fetched *fetchedData
	// changed: the committed version moved since the first attributes
	// seen here and TakeChangedOpen has not reported it yet. Only a
	// commit moves it (this Volume's buffered writes do not), so pages a
	// kernel cached from this file's reads and writes may be stale.
	changed bool
}

// Open opens the regular file n. flags are open(2) flags: O_WRONLY or
// O_RDWR make it writable, O_TRUNC truncates it. It fetches fresh
// attributes (close-to-open consistency) and, when the file is opened for
// reading without O_TRUNC, a small (inline) file's data with them in the
// same round trip, which the first reads use (opendata.go).
func (v *Volume) Open(ctx context.Context, n Node, flags int) (*File, error) {
	switch n.Type {
	case dfspb.FileType_FILE_TYPE_FILE:
	case dfspb.FileType_FILE_TYPE_DIR:
		return nil, fmt.Errorf("open: %w", ErrIsDir)
	default:
		return nil, fmt.Errorf("%w: open of a %v", ErrInvalid, n.Type)
	}
	writable := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	if (writable || flags&syscall.O_TRUNC != 0) && v.cfg.ReadOnly {
		return nil, fmt.Errorf("%w: open for writing", ErrReadOnly)
	}
	var (
		attr *dfspb.Attr
		data *fetchedData
		err  error
	)
	if flags&syscall.O_ACCMODE != syscall.O_WRONLY && flags&syscall.O_TRUNC == 0 {
		attr, data, err = v.getAttrData(ctx, n)
	} else {
		attr, err = v.getAttr(ctx, n)
	}
	if err != nil {
		return nil, err
	}
	if attr.GetNlink() == 0 && !v.isOpen(n.ID) {
		// A file removed while open elsewhere (an orphan until its last
		// close, or one an unlink of lost outcome left for fsck), reached
		// through a name the kernel still caches: as on NFS, the handle
		// is stale and the kernel walks the path again (LOOKUP_REVAL).
		// Opening it would write where no name leads. The lookup the
		// kernel makes then must not be answered from a page that still
		// names it.
		v.postOps.batches.drop()
		return nil, fmt.Errorf("open: %w: file has no links", ErrNotFound)
	}
	return v.openFile(ctx, n, attr, data, writable, flags)
}

// OpenFresh is Open for a file whose attributes the caller received from
// this Volume a moment ago (from Create or Lookup): it saves Open's
// GetAttr. attr must be n's.
func (v *Volume) OpenFresh(ctx context.Context, n Node, attr *dfspb.Attr, flags int) (*File, error) {
	if n.Type != dfspb.FileType_FILE_TYPE_FILE || attr == nil {
		return v.Open(ctx, n, flags)
	}
	writable := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	if (writable || flags&syscall.O_TRUNC != 0) && v.cfg.ReadOnly {
		return nil, fmt.Errorf("%w: open for writing", ErrReadOnly)
	}
	return v.openFile(ctx, n, attr, nil, writable, flags)
}

// openFile opens n with attr, its attributes, and data, its data fetched
// with them (nil if none).
func (v *Volume) openFile(ctx context.Context, n Node, attr *dfspb.Attr, data *fetchedData, writable bool, flags int) (*File, error) {
	f := &File{st: v.acquire(n, attr, data), writable: writable, appending: writable && flags&syscall.O_APPEND != 0}
	// O_TRUNC truncates also with O_RDONLY, as Linux does (the kernel
	// has checked write permission).
	if flags&syscall.O_TRUNC != 0 {
		if _, err := f.st.truncate(ctx, 0); err != nil {
			_ = f.Release(ctx)
			return nil, err
		}
	}
	return f, nil
}

// acquire returns the shared state of n, creating it from attr; data (may
// be nil) is the data fetched with attr.
func (v *Volume) acquire(n Node, attr *dfspb.Attr, data *fetchedData) *openInode {
	v.openMu.Lock()
	st := v.open[n.ID]
	if st == nil {
		st = &openInode{v: v, node: n, dirty: make(map[uint64]*chunkBuf), inflight: make(map[uint64]*chunkBuf)}
		st.cond = sync.NewCond(&st.mu)
		v.open[n.ID] = st
	}
	st.refs++
	v.openMu.Unlock()
	st.mu.Lock()
	st.adopt(attr)
	st.keepFetched(data)
	st.mu.Unlock()
	st.ra.invalidate() // close-to-open: read what is committed now
	return st
}

// lookupOpen returns the shared state of id if some File of it is open.
func (v *Volume) lookupOpen(id layout.ID) *openInode {
	v.openMu.Lock()
	defer v.openMu.Unlock()
	return v.open[id]
}

// RecentOpenAttr returns the attributes of file n, buffered writes
// included, when a File of it is open here and its attributes came from
// the subvolume (an open, a commit, a GetAttr) less than maxAge (at most a
// second) ago, and no link, unlink, rename, setattr or other change of
// this Volume's that could have changed them came after; nil otherwise.
// The kernel drops a file's attributes after every write(2) and asks again
// before the next read (it checks mtime to keep its page cache); a caller
// that may cache attributes for maxAge answers from here instead of a
// GetAttr per write.
func (v *Volume) RecentOpenAttr(n Node, maxAge time.Duration) *dfspb.Attr {
	if n.Type != dfspb.FileType_FILE_TYPE_FILE {
		return nil
	}
	st := v.lookupOpen(n.ID)
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.attr == nil || st.removed || time.Since(st.attrAt) >= min(maxAge, postOpMax) ||
		st.attrChanges != v.postOps.changes.Load() {
		return nil
	}
	return st.withLocal(st.attr)
}

// overlayOpen returns a with the size and mtime of buffered writes when a
// File of it is open, after letting that state learn from a. a is not
// modified. It must not be called with an openInode's mutex held.
func (v *Volume) overlayOpen(a *dfspb.Attr) *dfspb.Attr {
	return v.overlayOpenAt(a, time.Now())
}

// overlayOpenAt is overlayOpen for attributes the subvolume answered at
// time at, not just now (a page of a directory read earlier): the open
// state takes them only if they are newer than its own, and as read then.
func (v *Volume) overlayOpenAt(a *dfspb.Attr, at time.Time) *dfspb.Attr {
	if a == nil || a.Type != dfspb.FileType_FILE_TYPE_FILE {
		return a
	}
	id, err := parseID(a.Id)
	if err != nil {
		return a
	}
	st := v.lookupOpen(id)
	if st == nil {
		return a
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.adoptAt(a, at)
	if st.size == a.Size && st.pending == nil {
		return a
	}
	return st.withLocal(a)
}

// withLocal returns a copy of a with this client's buffered writes (size,
// mtime) and held attribute change applied. Callers hold mu.
func (st *openInode) withLocal(a *dfspb.Attr) *dfspb.Attr {
	c := proto.Clone(a).(*dfspb.Attr)
	c.Size = st.size
	c.MtimeNs = max(c.MtimeNs, st.mtimeNs)
	st.applyPending(c)
	return c
}

// deferAttr holds an attribute change of an open file with buffered
// writes until their commit, and returns the attributes as they will be.
// It returns nil (do it now) when id is not open here or nothing waits to
// be committed.
func (v *Volume) deferAttr(id layout.ID, cmd *dfspb.SetAttrCmd) *dfspb.Attr {
	st := v.lookupOpen(id)
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.attr == nil || st.removed || st.werr != nil || (!st.uncommitted && len(st.dirty) == 0) {
		return nil
	}
	st.pending = mergeSetAttr(st.pending, cmd, time.Now().UnixNano())
	return st.withLocal(st.attr)
}

// applyPending shows the held attribute change in a. Callers hold mu.
func (st *openInode) applyPending(a *dfspb.Attr) {
	p := st.pending
	if p == nil {
		return
	}
	has := func(m dfspb.SetAttrMask) bool { return p.Mask&uint32(m) != 0 }
	if has(dfspb.SetAttrMask_SET_ATTR_MASK_MODE) {
		a.Mode = p.Mode
	}
	if has(dfspb.SetAttrMask_SET_ATTR_MASK_UID) {
		a.Uid = p.Uid
	}
	if has(dfspb.SetAttrMask_SET_ATTR_MASK_GID) {
		a.Gid = p.Gid
	}
	if has(dfspb.SetAttrMask_SET_ATTR_MASK_ATIME) {
		a.AtimeNs = p.AtimeNs
	}
	if has(dfspb.SetAttrMask_SET_ATTR_MASK_MTIME) {
		a.MtimeNs = p.MtimeNs
	}
	a.CtimeNs = max(a.CtimeNs, p.CtimeNs)
}

// mergeSetAttr folds a later attribute change into an earlier one. Times
// "now" are resolved to the local clock, so that the change shows at once
// and commits as it showed.
func mergeSetAttr(old, c *dfspb.SetAttrCmd, now int64) *dfspb.SetAttrCmd {
	m := proto.Clone(c).(*dfspb.SetAttrCmd)
	if m.Mask&uint32(dfspb.SetAttrMask_SET_ATTR_MASK_ATIME_NOW) != 0 {
		m.Mask = m.Mask&^uint32(dfspb.SetAttrMask_SET_ATTR_MASK_ATIME_NOW) | uint32(dfspb.SetAttrMask_SET_ATTR_MASK_ATIME)
		m.AtimeNs = now
	}
	if m.Mask&uint32(dfspb.SetAttrMask_SET_ATTR_MASK_MTIME_NOW) != 0 {
		m.Mask = m.Mask&^uint32(dfspb.SetAttrMask_SET_ATTR_MASK_MTIME_NOW) | uint32(dfspb.SetAttrMask_SET_ATTR_MASK_MTIME)
		m.MtimeNs = now
	}
	m.Mask |= uint32(dfspb.SetAttrMask_SET_ATTR_MASK_CTIME)
	m.CtimeNs = now
	if old == nil {
		return m
	}
	out := proto.Clone(old).(*dfspb.SetAttrCmd)
	out.Mask |= m.Mask
	has := func(b dfspb.SetAttrMask) bool { return m.Mask&uint32(b) != 0 }
	if has(dfspb.SetAttrMask_SET_ATTR_MASK_MODE) {
		out.Mode = m.Mode
	}
	if has(dfspb.SetAttrMask_SET_ATTR_MASK_UID) {
		out.Uid = m.Uid
	}
	if has(dfspb.SetAttrMask_SET_ATTR_MASK_GID) {
		out.Gid = m.Gid
	}
	if has(dfspb.SetAttrMask_SET_ATTR_MASK_ATIME) {
		out.AtimeNs = m.AtimeNs
	}
	if has(dfspb.SetAttrMask_SET_ATTR_MASK_MTIME) {
		out.MtimeNs = m.MtimeNs
	}
	out.CtimeNs = m.CtimeNs
	return out
}

// lastAttr returns the last attributes seen of id while a File of it is
// open, with no link left: what fstat(2) of a file removed while open
// reports. nil if it is not open.
func (v *Volume) lastAttr(id layout.ID) *dfspb.Attr {
	st := v.lookupOpen(id)
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.attr == nil {
		return nil
	}
	c := proto.Clone(st.attr).(*dfspb.Attr)
	c.Nlink, c.Size = 0, st.size
	return c
}

// flushOpen commits the buffered writes of id, if it is open.
func (v *Volume) flushOpen(ctx context.Context, id layout.ID) error {
	if st := v.lookupOpen(id); st != nil {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.flushLocked(ctx)
	}
	return nil
}

// forgetOpen drops the buffered writes of a deleted file.
func (v *Volume) forgetOpen(id layout.ID) {
	if st := v.lookupOpen(id); st != nil {
		st.mu.Lock()
		st.removed = true
		st.dropAfter(0)
		st.uncommitted = false
		st.mu.Unlock()
	}
}

// adopt learns committed attributes newer than those seen. While nothing
// is buffered the size follows them; otherwise it is at least theirs.
// Callers hold mu.
func (st *openInode) adopt(a *dfspb.Attr) {
	st.adoptAt(a, time.Now())
}

// adoptAt is adopt for attributes the subvolume answered at time at. The
// same version read earlier than the attributes held changes nothing, so
// that their age (RecentOpenAttr) is never made younger than it is.
func (st *openInode) adoptAt(a *dfspb.Attr, at time.Time) {
	if a == nil || a.Version < st.version || (a.Version == st.version && at.Before(st.attrAt)) {
		return
	}
	if a.Version > st.version {
		st.ra.invalidate() // committed data may have changed
		st.dropFetched()
		// Versions are Raft indexes of the subvolume: a commit of
		// this Volume's cannot be told from another client's that
		// came between, so every move counts.
		st.changed = st.changed || st.version != 0
	}
	st.version, st.attr, st.attrAt = a.Version, a, at
	st.attrChanges = st.v.postOps.changes.Load()
	st.remoteSize, st.remoteChunked = a.Size, a.Chunked
	if st.idle() {
		st.size, st.chunked = a.Size, a.Chunked
		return
	}
	st.size = max(st.size, a.Size)
	st.chunked = st.chunked || a.Chunked
}

// idle reports that nothing is buffered, in flight or uncommitted.
func (st *openInode) idle() bool {
	return len(st.dirty) == 0 && st.running == 0 && !st.uncommitted
}

// Node returns the file's node.
func (f *File) Node() Node { return f.st.node }

// Attr returns the file's attributes as this Volume knows them, buffered
// writes included (size and mtime). The caller must not modify them.
func (f *File) Attr() *dfspb.Attr {
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	if f.st.attr == nil {
		return nil
	}
	// Not overlayOpen: adopting the attributes held would make them look
	// freshly read.
	return f.st.withLocal(f.st.attr)
}

// Size returns the file's size as this Volume knows it, buffered writes
// included.
func (f *File) Size() uint64 {
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	return f.st.size
}

// ReadAt reads len(p) bytes at off, as io.ReaderAt: fewer only at the end of
// the file, with io.EOF. It sees this Volume's buffered writes. Holes read
// as zeros.
func (f *File) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset", ErrInvalid)
	}
	return f.st.read(ctx, p, off)
}

// WriteAt buffers p at off. The data is written to the bricks when a chunk
// is full, when the buffer passes Config.WriteBuffer, and on Flush, Fsync
// and Release; a failed background write makes every later Flush of the
// file fail. A File opened with O_APPEND ignores off and appends
// (AppendWrite).
func (f *File) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if !f.writable {
		return 0, fmt.Errorf("%w: file not open for writing", ErrInvalid)
	}
	if f.appending {
		_, err := f.AppendWrite(ctx, p)
		if err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if off < 0 || uint64(off)+uint64(len(p)) > MaxFileSize {
		return 0, fmt.Errorf("%w: write past %d bytes", ErrTooBig, uint64(MaxFileSize))
	}
	return f.st.write(ctx, p, off)
}

// Truncate sets the file's size, committing buffered writes first.
func (f *File) Truncate(ctx context.Context, size uint64) error {
	if !f.writable {
		return fmt.Errorf("%w: file not open for writing", ErrInvalid)
	}
	_, err := f.st.truncate(ctx, size)
	return err
}

// Flush writes the buffered data and commits the file's size and mtime
// (for a small file: one WriteInline carrying data and size). It is what
// close(2) does.
func (f *File) Flush(ctx context.Context) error {
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	return f.st.flushLocked(ctx)
}

// Fsync is Flush: a commit is on a majority of the subvolume's disks when
// it returns.
func (f *File) Fsync(ctx context.Context) error { return f.Flush(ctx) }

// Release flushes and closes the file. Buffered data that cannot be
// written is dropped and the error returned. The last Release of a file
// whose last link was removed while it was open deletes it. A second
// Release is a no-op.
func (f *File) Release(ctx context.Context) error {
	if f.released.Swap(true) {
		return nil
	}
	err := f.Flush(ctx)
	v := f.st.v
	v.openMu.Lock()
	f.st.refs--
	drop := false
	if f.st.refs == 0 {
		delete(v.open, f.st.node.ID)
		drop = f.st.orphan
	}
	v.openMu.Unlock()
	if drop {
		// The file lost its last link while open: it goes now.
		v.dropOrphan(context.WithoutCancel(ctx), f.st.node)
	}
	return err
}

// truncate implements SetAttr's size change: through the open state if the
// file is open here, directly otherwise.
func (v *Volume) truncate(ctx context.Context, n Node, size uint64) (*dfspb.Attr, error) {
	switch {
	case n.Type == dfspb.FileType_FILE_TYPE_DIR:
		return nil, fmt.Errorf("truncate: %w", ErrIsDir)
	case n.Type != dfspb.FileType_FILE_TYPE_FILE:
		return nil, fmt.Errorf("%w: truncate of a %v", ErrInvalid, n.Type)
	case size > MaxFileSize:
		return nil, fmt.Errorf("%w: truncate to %d bytes", ErrTooBig, size)
	}
	if st := v.lookupOpen(n.ID); st != nil {
		return st.truncate(ctx, size)
	}
	a, err := v.getAttr(ctx, n)
	if err != nil {
		return nil, err
	}
	return v.truncateRemote(ctx, n, a, size)
}

// truncate drops buffered data past size, commits the rest and truncates
// the committed file.
func (st *openInode) truncate(ctx context.Context, size uint64) (*dfspb.Attr, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for st.running > 0 {
		st.cond.Wait()
	}
	st.dropAfter(size)
	if err := st.flushLocked(ctx); err != nil {
		return nil, err
	}
	cur := &dfspb.Attr{Size: st.remoteSize, Chunked: st.remoteChunked}
	a, err := st.v.truncateRemote(ctx, st.node, cur, size)
	if err != nil {
		return nil, err
	}
	st.adopt(a)
	st.size, st.chunked = a.Size, a.Chunked
	return a, nil
}

// dropAfter drops dirty data at and past file offset size. Callers hold
// mu and have waited for chunk writes in flight.
func (st *openInode) dropAfter(size uint64) {
	st.ra.invalidate()
	st.dropFetched()
	for idx, b := range st.dirty {
		start := idx * ChunkSize
		switch {
		case start >= size:
			st.buffered -= b.mem()
			delete(st.dirty, idx)
		case start+ChunkSize > size:
			st.buffered += b.truncate(int(size - start))
			if len(b.ext) == 0 {
				delete(st.dirty, idx)
			}
		}
	}
}

// truncateRemote changes the committed size of file n from cur (its size
// and placement) to size. Inline files stay inline up to InlineMax; an
// inline file growing past it moves its data to chunk 0 and becomes
// chunked. A chunked file shrinking loses its chunks past the new end on
// every subvolume and has its boundary chunk cut, before the size is set
// (so that old data never reappears past the end).
func (v *Volume) truncateRemote(ctx context.Context, n Node, cur *dfspb.Attr, size uint64) (*dfspb.Attr, error) {
	sub := v.subOfDir(n.Locator)
	setSize := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SetAttr{SetAttr: &dfspb.SetAttrCmd{
		Id: n.ID[:], Mask: uint32(dfspb.SetAttrMask_SET_ATTR_MASK_SIZE), Size: size,
	}}}
	if !cur.Chunked && size > InlineMax {
		if cur.Size > 0 {
			data, err := v.readInline(ctx, n, 0, int(cur.Size))
			if err != nil {
				return nil, err
			}
			if len(data) > 0 {
				cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{File: n.ID[:], Index: 0, Data: data}}}
				if _, _, err := v.mutate(ctx, v.subOfChunk(n.ID, 0), "truncate", cmd); err != nil {
					return nil, err
				}
			}
		}
		cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_CommitSize{CommitSize: &dfspb.CommitSizeCmd{Id: n.ID[:], Size: size, Exact: true, Chunked: true}}}
		res, _, err := v.mutate(ctx, sub, "truncate", cmd)
		if err != nil {
			return nil, err
		}
		return res.GetAttr(), nil
	}
	if cur.Chunked && size < cur.Size {
		if err := v.deleteChunks(ctx, n.ID, (size+ChunkSize-1)/ChunkSize); err != nil {
			return nil, err
		}
		if rest := size % ChunkSize; rest != 0 {
			idx := size / ChunkSize
			cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_TruncateChunk{TruncateChunk: &dfspb.TruncateChunkCmd{File: n.ID[:], Index: idx, Length: uint32(rest)}}}
			if _, _, err := v.mutate(ctx, v.subOfChunk(n.ID, idx), "truncate", cmd); err != nil && !errors.Is(err, ErrNotFound) {
				return nil, err
			}
		}
	}
	res, _, err := v.mutate(ctx, sub, "truncate", setSize)
	if err != nil {
		return nil, err
	}
	return res.GetAttr(), nil
}
