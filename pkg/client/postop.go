package client

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Post-operation attributes of directories, as NFS keeps them: the answer
// to a create, link, unlink or rename carries its directory's attributes
// after the change. The kernel drops its cached attributes of a directory
// it changed and asks for them again before the next path walk through it
// (one GetAttr per create, rename and remove in a loop); RecentDirAttr
// answers that from the operation's answer instead.
//
// An answer is recorded only if nothing was forgotten while its operation
// was in flight (epoch), so an older answer never replaces what a
// concurrent change of the same directory made stale. Every other change
// that can touch a directory (attributes, xattrs, transactions, an
// operation whose answer carries no directory attributes, a failure whose
// outcome is unknown) forgets the directories it names, or all of them.
type postOps struct {
	mu    sync.Mutex
	epoch uint64
	dirs  map[layout.ID]postOpAttr

	// changes counts this Volume's operations that may have changed some
	// inode's attributes other than by writing its data (links, unlinks,
	// renames, setattr, transactions, failures): an open file's
	// attributes learned before one of them are not answered locally
	// (RecentOpenAttr).
	changes atomic.Uint64

	// batches are the pages of directories that answer lookups
	// (lookupbatch.go); every change drops them.
	batches lookupBatches
}

type postOpAttr struct {
	attr *dfspb.Attr
	at   time.Time
}

// postOpMax bounds how long an answer is kept; RecentDirAttr asks for
// less (the mount's attribute timeout).
const postOpMax = time.Second

// postOpSweep is the size above which recording sweeps expired entries.
const postOpSweep = 1024

// postOpStart is where an operation stood when it started: the epoch to
// pass to record, and the time (for lookupBatches.change).
type postOpStart struct {
	epoch uint64
	at    time.Time
}

// start returns the start of an operation starting now.
func (p *postOps) start() postOpStart {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	return postOpStart{epoch: p.epoch, at: now}
}

// record keeps a, a directory's attributes in the answer to an operation
// that started at s.
func (p *postOps) record(s postOpStart, a *dfspb.Attr) {
	if a == nil || a.Type != dfspb.FileType_FILE_TYPE_DIR {
		return
	}
	id, err := parseID(a.Id)
	if err != nil {
		return
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epoch != s.epoch {
		return
	}
	if p.dirs == nil {
		p.dirs = map[layout.ID]postOpAttr{}
	}
	if old, ok := p.dirs[id]; ok && old.attr.CtimeNs > a.CtimeNs {
		return // a concurrent operation's later answer is kept
	}
	if len(p.dirs) >= postOpSweep {
		for k, e := range p.dirs {
			if now.Sub(e.at) >= postOpMax {
				delete(p.dirs, k)
			}
		}
	}
	p.dirs[id] = postOpAttr{attr: a, at: now}
}

// forget drops what is known of ids, or of every directory without ids,
// and every page of lookups.
func (p *postOps) forget(ids ...[]byte) {
	p.changes.Add(1)
	p.batches.drop()
	p.forgetDirs(ids...)
}

// forgetDirs drops the post-operation attributes of ids, or of every
// directory without ids.
func (p *postOps) forgetDirs(ids ...[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.epoch++
	if len(ids) == 0 {
		clear(p.dirs)
		return
	}
	for _, b := range ids {
		if id, err := parseID(b); err == nil {
			delete(p.dirs, id)
		}
	}
}

// get returns the attributes of directory id recorded less than maxAge
// ago, or nil.
func (p *postOps) get(id layout.ID, maxAge time.Duration) *dfspb.Attr {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.dirs[id]
	if !ok || time.Since(e.at) >= min(maxAge, postOpMax) {
		return nil
	}
	return e.attr
}

// afterMutate records or forgets what cmd, started at s, did to
// directories and to the pages of lookups; res is its answer, nil when it
// failed.
func (p *postOps) afterMutate(s postOpStart, cmd *dfspb.StoreCommand, res *dfspb.StoreResult) {
	if res == nil {
		p.forget()
		return
	}
	if !p.batches.change(s.at, cmd, res) {
		p.batches.drop()
	}
	switch cmd.Op.(type) {
	case *dfspb.StoreCommand_WriteInline, *dfspb.StoreCommand_WriteChunk, *dfspb.StoreCommand_CommitSize,
		*dfspb.StoreCommand_TruncateChunk, *dfspb.StoreCommand_DeleteChunks, *dfspb.StoreCommand_AppendReserve,
		*dfspb.StoreCommand_SetLock, *dfspb.StoreCommand_ExpireLockSession, *dfspb.StoreCommand_CreateInode,
		*dfspb.StoreCommand_WriteExtents:
		return // file data, locks, a new inode: no directory changes
	}
	p.changes.Add(1)
	var parents [][]byte
	switch op := cmd.Op.(type) {
	case *dfspb.StoreCommand_CreateEntry:
		parents = [][]byte{op.CreateEntry.Parent}
	case *dfspb.StoreCommand_Link:
		parents = [][]byte{op.Link.Parent}
	case *dfspb.StoreCommand_Unlink:
		parents = [][]byte{op.Unlink.Parent}
	case *dfspb.StoreCommand_Rename:
		parents = [][]byte{op.Rename.OldParent, op.Rename.NewParent}
	case *dfspb.StoreCommand_SetAttr:
		p.forgetDirs(op.SetAttr.Id)
		return
	case *dfspb.StoreCommand_SetXattr:
		p.forgetDirs(op.SetXattr.Id)
		return
	case *dfspb.StoreCommand_RemoveXattr:
		p.forgetDirs(op.RemoveXattr.Id)
		return
	default:
		// (Pages were edited by change, or dropped.)
		p.forgetDirs()
		return
	}
	// The answer names the directory it describes (the new parent of a
	// rename); the others named by cmd are forgotten.
	var others [][]byte
	for _, b := range parents {
		if res.Parent == nil || string(b) != string(res.Parent.Id) {
			others = append(others, b)
		}
	}
	if len(others) > 0 {
		p.forgetDirs(others...)
		return // this answer is older than the forget
	}
	p.record(s, res.Parent)
}

// RecentDirAttr returns the attributes of directory n that an operation of
// this Volume (a create, link, unlink or rename in it) answered less than
// maxAge (at most a second) ago, or nil. They are as fresh as a GetAttr
// made when that answer came; a caller that may cache attributes for
// maxAge anyway can use them instead of one.
func (v *Volume) RecentDirAttr(n Node, maxAge time.Duration) *dfspb.Attr {
	if !n.IsDir() {
		return nil
	}
	return v.postOps.get(n.ID, maxAge)
}
