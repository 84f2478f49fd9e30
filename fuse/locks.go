package fuse

import (
	"context"
	"errors"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// File locks. The mount asks the kernel to forward flock(2) and fcntl(2)
// locks (MountOptions.EnableLocks); they arrive as GETLK, SETLK and SETLKW
// with the kernel's lock owner (the process's files table for POSIX locks,
// the open file description for flock, which also sets FUSE_LK_FLOCK) and
// go to pkg/client, which keeps them in the inode's subvolume. Locks are
// released:
//   - POSIX locks at every close(2) of the file by the holder: FLUSH
//     carries the closing process's lock owner;
//   - flock at the last close of the open file description: RELEASE of
//     the handle (flocks are held by the handle, see lockOwners);
//   - everything the mount holds when it ends (Volume.Close), or when its
//     lock session's lease runs out because the client died.
//
// go-fuse's fs API drops the lock owner of FLUSH, so the mount puts
// lockOwners between the kernel and go-fuse's bridge: it notes the owner
// of each FLUSH under the request's cancel channel, which the bridge
// hands on as the context's Done channel, for the handle's Flush to find.
//
// A SETLKW that waits (polling the subvolume with backoff) ends with EINTR
// when a signal interrupts it.

var (
	_ fs.NodeGetlker  = (*node)(nil)
	_ fs.NodeSetlker  = (*node)(nil)
	_ fs.NodeSetlkwer = (*node)(nil)
)

// lockOwners wraps go-fuse's raw bridge to keep the lock owner of FLUSH
// and RELEASE requests, and names the holders of flocks.
type lockOwners struct {
	gofuse.RawFileSystem
	owners sync.Map // request cancel channel -> ownerNote

	// A flock belongs to an open file description, which the kernel
	// names by its struct file's address. The kernel sends RELEASE after
	// the struct file is freed, so a new open can get the same address
	// (and owner) while the old RELEASE is still on its way, and would
	// then convert, and lose to that RELEASE, the old lock. So flocks are
	// held by the handle instead: an id per open, forgotten at Release.
	mu     sync.Mutex
	nextID uint64
	flocks map[*handle]uint64
}

// flockOwner returns the flock owner id of h.
func (w *lockOwners) flockOwner(h *handle) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	id, ok := w.flocks[h]
	if !ok {
		if w.flocks == nil {
			w.flocks = make(map[*handle]uint64)
		}
		w.nextID++
		id = w.nextID
		w.flocks[h] = id
	}
	return id
}

// forgetFlock drops h's flock owner id (h is released), reporting it.
func (w *lockOwners) forgetFlock(h *handle) (uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id, ok := w.flocks[h]
	delete(w.flocks, h)
	return id, ok
}

// ownerNote is the lock owner of one FLUSH request.
type ownerNote struct {
	owner uint64
}

func (w *lockOwners) Flush(cancel <-chan struct{}, in *gofuse.FlushIn) gofuse.Status {
	w.owners.Store(cancel, ownerNote{owner: in.LockOwner})
	defer w.owners.Delete(cancel)
	return w.RawFileSystem.Flush(cancel, in)
}

// note returns the owner noted for the request of ctx.
func (w *lockOwners) note(ctx context.Context) (ownerNote, bool) {
	c, ok := ctx.(*gofuse.Context)
	if !ok || w == nil {
		return ownerNote{}, false
	}
	v, ok := w.owners.Load(c.Cancel)
	if !ok {
		return ownerNote{}, false
	}
	return v.(ownerNote), true
}

// mountWithLocks is fs.Mount with lock forwarding enabled and lockOwners
// between the kernel and the bridge.
func mountWithLocks(dir string, root fs.InodeEmbedder, opts *fs.Options, f *fsys) (*gofuse.Server, error) {
	opts.MountOptions.EnableLocks = true
	f.owners = &lockOwners{RawFileSystem: fs.NewNodeFS(root, opts)}
	server, err := gofuse.NewServer(f.owners, dir, &opts.MountOptions)
	if err != nil {
		return nil, err
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, err
	}
	return server, nil
}

// releaseLocks drops the locks that the request of ctx releases, after
// the handle's data is committed: at FLUSH (every close) the closing
// process's POSIX locks on the file, at RELEASE (the last close of the
// open file description) the handle's flock. The kernel ignores failures
// here; they are logged, and the locks go with the session at worst.
func (h *handle) releaseLocks(ctx, mctx context.Context) {
	if h.fsys.owners == nil {
		return
	}
	owner, flock := uint64(0), false
	if note, ok := h.fsys.owners.note(ctx); ok {
		owner = note.owner
	} else if id, ok := h.fsys.owners.forgetFlock(h); ok {
		owner, flock = id, true
	} else {
		return
	}
	if err := h.fsys.vol.ReleaseLocks(mctx, h.f.Node(), owner, flock); err != nil {
		h.fsys.logger.Warn("release locks on close", "id", h.f.Node().ID, "flock", flock, "err", err)
	}
}

// clientLock converts a kernel lock request.
func clientLock(lk *gofuse.FileLock) (client.Lock, syscall.Errno) {
	l := client.Lock{Start: lk.Start, End: lk.End, Pid: lk.Pid}
	switch lk.Typ {
	case syscall.F_RDLCK:
		l.Type = client.LockRead
	case syscall.F_WRLCK:
		l.Type = client.LockWrite
	case syscall.F_UNLCK:
		l.Type = client.Unlock
	default:
		return l, syscall.EINVAL
	}
	return l, 0
}

// lockErrno is toErrno for lock calls: a conflict is EAGAIN.
func lockErrno(err error) syscall.Errno {
	if errors.Is(err, client.ErrWouldBlock) {
		return syscall.EAGAIN
	}
	return toErrno(err)
}

// Getlk reports a lock that would keep lk from being set (F_GETLK), or
// F_UNLCK.
func (n *node) Getlk(ctx context.Context, _ fs.FileHandle, owner uint64, lk *gofuse.FileLock, _ uint32, out *gofuse.FileLock) syscall.Errno {
	l, errno := clientLock(lk)
	if errno != 0 {
		return errno
	}
	rctx, done := n.fsys.interruptible(ctx)
	defer done()
	c, found, err := n.fsys.vol.GetLock(rctx, n.cn, owner, l)
	if err != nil {
		return lockErrno(err)
	}
	if !found {
		*out = gofuse.FileLock{Typ: syscall.F_UNLCK}
		return 0
	}
	*out = gofuse.FileLock{Start: c.Start, End: c.End, Pid: c.Pid, Typ: syscall.F_RDLCK}
	if c.Type == client.LockWrite {
		out.Typ = syscall.F_WRLCK
	}
	return 0
}

// Setlk sets or clears a lock without waiting (F_SETLK, flock with
// LOCK_NB or LOCK_UN): EAGAIN if another holder's lock conflicts.
func (n *node) Setlk(ctx context.Context, f fs.FileHandle, owner uint64, lk *gofuse.FileLock, flags uint32) syscall.Errno {
	return n.setLock(ctx, f, owner, lk, flags, false)
}

// Setlkw sets a lock, waiting for conflicting ones to go (F_SETLKW,
// flock without LOCK_NB). A signal ends the wait with EINTR.
func (n *node) Setlkw(ctx context.Context, f fs.FileHandle, owner uint64, lk *gofuse.FileLock, flags uint32) syscall.Errno {
	return n.setLock(ctx, f, owner, lk, flags, true)
}

func (n *node) setLock(ctx context.Context, f fs.FileHandle, owner uint64, lk *gofuse.FileLock, flags uint32, wait bool) syscall.Errno {
	l, errno := clientLock(lk)
	if errno != 0 {
		return errno
	}
	flock := flags&gofuse.FUSE_LK_FLOCK != 0
	if flock {
		h, ok := f.(*handle)
		if !ok {
			return syscall.EBADF
		}
		owner = n.fsys.owners.flockOwner(h)
	}
	// ctx (the FUSE interrupt) ends only the wait; every commit runs to
	// its end (pkg/client detaches it).
	if err := n.fsys.vol.SetLock(ctx, n.cn, owner, flock, l, wait); err != nil {
		return lockErrno(err)
	}
	if l.Type != client.Unlock && n.cn.Type == dfspb.FileType_FILE_TYPE_FILE {
		// The new holder must not read pages or a size that the kernel
		// cached before the last holder wrote.
		_ = n.NotifyContent(0, 0)
	}
	return 0
}
