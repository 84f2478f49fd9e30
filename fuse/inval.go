package fuse

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/layout"
)

// The kernel's page cache and this mount's own writes
// (docs/decisions/0014-page-cache-and-own-writes.md).
//
// With FUSE_AUTO_INVAL_DATA (go-fuse's default) the kernel drops all the
// cached pages of a file whenever a GETATTR answer shows an mtime other
// than the one it holds, and every write(2) moves the mtime: under random
// reads and writes no read ever hit the page cache, not even one of a
// block just written. The mount therefore asks for explicit data cache
// control, and drops a file's pages itself when its committed data may
// have changed:
//   - at open, unless size and mtime are what the kernel was told with
//     its pages (node.Open, FOPEN_KEEP_CACHE): close-to-open, as before;
//   - when a lock is taken (locks.go), as before;
//   - while the file is open here, within the attribute timeout of a
//     commit (another client's, or this mount's own at close, fsync or
//     truncate): watchOpenFiles asks the subvolume for the attributes of
//     open files whose attributes are older than half the timeout, every
//     half timeout, and drops the pages of those whose committed version
//     moved. The kernel used to learn the same by a GETATTR on a read once
//     its attributes had expired; without AUTO_INVAL_DATA a read inside
//     the file asks nothing, so the mount asks instead;
//   - for a file open here but idle (no read or write through the mount
//     for idleAfter): its pages are dropped once and it is no longer
//     asked about, so files held open but unused cost nothing; its next
//     read or write asks for its attributes first (handle.touch).

// watchPeriod is how often watchOpenFiles looks at the open files for an
// attribute timeout of attr.
func watchPeriod(attr time.Duration) time.Duration {
	return max(attr/2, 10*time.Millisecond)
}

// idleAfter is how long an open file goes without a read or write through
// the mount before its pages are dropped and it is no longer watched.
func idleAfter(attr time.Duration) time.Duration {
	return max(4*attr, 2*time.Second)
}

// openFiles is the mount's registry of the files open through it, by id.
type openFiles struct {
	mu    sync.Mutex
	files map[layout.ID]*openFile
}

// openFile is a file open through the mount.
type openFile struct {
	in   *fs.Inode
	node client.Node
	refs int          // handles open; guarded by openFiles.mu
	used atomic.Int64 // unix ns of the last read or write through it
	idle atomic.Bool  // its pages were dropped for idleness: not watched
	wake sync.Mutex   // held by the first read or write after idle (touch)
}

// add registers a handle of node, whose inode is in.
func (o *openFiles) add(in *fs.Inode, node client.Node) *openFile {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.files == nil {
		o.files = make(map[layout.ID]*openFile)
	}
	of := o.files[node.ID]
	if of == nil {
		of = &openFile{in: in, node: node}
		o.files[node.ID] = of
	}
	of.refs++
	of.used.Store(time.Now().UnixNano())
	return of
}

// remove unregisters a handle of of.
func (o *openFiles) remove(of *openFile) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if of.refs--; of.refs == 0 && o.files[of.node.ID] == of {
		delete(o.files, of.node.ID)
	}
}

// get returns the open file of id, or nil.
func (o *openFiles) get(id layout.ID) *openFile {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.files[id]
}

// list returns the files open now.
func (o *openFiles) list() []*openFile {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Collect(maps.Values(o.files))
}

// newHandle opens a handle of f, whose inode is in.
func (f *fsys) newHandle(in *fs.Inode, cf *client.File) *handle {
	return &handle{fsys: f, f: cf, of: f.open.add(in, cf.Node())}
}

// touch records a read or write through h. The first after the file went
// idle asks for its attributes (its pages were dropped, and the client's
// own read caches follow the committed version).
func (h *handle) touch(ctx context.Context) {
	h.of.used.Store(time.Now().UnixNano())
	if !h.of.idle.Load() {
		return
	}
	// Concurrent reads wait for the refresh: the client's read-ahead
	// cache may hold data from before the idle period.
	h.of.wake.Lock()
	defer h.of.wake.Unlock()
	if h.of.idle.Load() {
		h.fsys.vol.RefreshOpenFile(ctx, h.of.node, 0)
		h.of.idle.Store(false)
	}
}

// watchOpenFiles drops the kernel's cached pages of open files whose
// committed data may have changed, and of open files gone idle, until
// stop is closed.
func (f *fsys) watchOpenFiles(stop <-chan struct{}) {
	period := watchPeriod(f.opts.AttrTimeout)
	idle := idleAfter(f.opts.AttrTimeout)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for _, of := range f.open.list() {
			if of.idle.Load() {
				continue
			}
			if time.Since(time.Unix(0, of.used.Load())) > idle {
				of.idle.Store(true)
				_ = of.in.NotifyContent(0, 0)
				continue
			}
			f.vol.RefreshOpenFile(f.vol.Background(), of.node, period)
		}
		changed := f.vol.TakeChangedOpen()
		dropped := 0
		for _, n := range changed {
			if of := f.open.get(n.ID); of != nil {
				// ENOENT: the kernel forgot the inode, and its pages.
				_ = of.in.NotifyContent(0, 0)
				dropped++
			}
		}
		if len(changed) > 0 {
			f.logger.Debug("dropped cached pages of files changed while open", "files", len(changed), "dropped", dropped)
		}
	}
}
