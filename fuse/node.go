package fuse

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// node is one inode of the mounted volume.
type node struct {
	fs.Inode
	fsys *fsys
	cn   client.Node
	// target is a symlink's target, known from the attributes that came
	// with the node (targets never change).
	target string
	// last is the attributes last handed to the kernel for this inode
	// (see revalidate: close-to-open consistency; and Getattr).
	last atomic.Pointer[dfspb.Attr]
	// pages is the size and mtime the kernel's cached pages of this file
	// are known to hold data for (set at open; nil: unknown). The kernel
	// does not drop pages when told another mtime (no AUTO_INVAL_DATA,
	// inval.go), so the next open compares with this, not with last.
	pages atomic.Pointer[dfspb.Attr]
	// alive is when this inode was last known to exist (unix ns; see
	// nameErrno).
	alive atomic.Int64
	// miss is the last name of this directory its brick answered absent
	// (see Lookup); names counts this mount's changes to its names.
	miss  atomic.Pointer[lookupMiss]
	names atomic.Uint64
}

// lookupMiss is a name a directory's brick answered absent: at (unix ns)
// is when the Lookup was sent, names the directory's change count then.
type lookupMiss struct {
	name  string
	at    int64
	names uint64
}

// missGrace is how long a name found absent is answered absent once more
// without asking (capped by the entry timeout; 0 disables it). The kernel
// always looks up the target of a rename again, even one it was just
// told is absent (LOOKUP_RENAME_TARGET), and rename(2) callers such as
// Go's os.Rename stat the target first: the second LOOKUP, microseconds
// later, needs no RPC. An answer this recent is as fresh as one whose RPC
// took missGrace longer. The store resolves the target itself when the
// rename is applied, so a target another client made meanwhile is still
// replaced atomically; an exclusive create checks on the store as well.
const missGrace = 20 * time.Millisecond

// changing marks the start of a change to n's names by this mount; the
// function it returns marks its end. Absent names recorded across
// either are not answered from (Lookup).
func (n *node) changing() func() {
	n.names.Add(1)
	return func() { n.names.Add(1) }
}

// aliveGrace is how long an inode known to exist is taken to exist
// without asking again (nameErrno).
const aliveGrace = 100 * time.Millisecond

// nameErrno is the errno of err, a failure of an operation on a name in
// directory n (or on the nodes also named, such as link(2)'s target):
// ENOENT because one of them is itself gone becomes ESTALE. That happens
// when another client removed or replaced a directory while this kernel
// still holds an entry for it (the entry timeout): as on NFS, a system
// call that walked a path then walks it again with fresh lookups
// (LOOKUP_REVAL), and finds what the path means now. Finding out costs a
// GetAttr, only on ENOENT, and not for a node seen alive within
// aliveGrace (a burst of creates in one directory checks it once).
func nameErrno(ctx context.Context, err error, nodes ...*node) syscall.Errno {
	errno := toErrno(err)
	if errno != syscall.ENOENT {
		return errno
	}
	for _, n := range nodes {
		if n.cn.ID == layout.RootID || time.Since(time.Unix(0, n.alive.Load())) < aliveGrace {
			continue
		}
		rctx, done := n.fsys.interruptible(ctx)
		_, gerr := n.fsys.vol.GetAttr(rctx, n.cn)
		done()
		if errors.Is(gerr, client.ErrNotFound) {
			return syscall.ESTALE
		}
		if gerr == nil {
			n.alive.Store(time.Now().UnixNano())
		}
	}
	return errno
}

// seenAlive records that n existed at t.
func (n *node) seenAlive(t time.Time) {
	at := t.UnixNano()
	for {
		old := n.alive.Load()
		if at <= old || n.alive.CompareAndSwap(old, at) {
			return
		}
	}
}

// tell records a as handed to the kernel. Attributes that move the size
// or mtime (this mount's own writes, another client's, learned from a
// lookup or GETATTR) make the cached pages unknown: the next open drops
// them.
func (n *node) tell(a *dfspb.Attr) {
	n.last.Store(a)
	if p := n.pages.Load(); p != nil && !sameData(p, a) {
		n.pages.CompareAndSwap(p, nil)
	}
}

// sameData reports whether a and b give a file the same size, mtime and
// ctime (a rewrite of the same size whose mtime was set back, as cp -p
// does, still moved ctime).
func sameData(a, b *dfspb.Attr) bool {
	return a.Size == b.Size && a.MtimeNs == b.MtimeNs && a.CtimeNs == b.CtimeNs
}

// revalidate makes the kernel drop its cached attributes of n when a,
// fresh from the subvolume, differs from what it was told: the attribute
// timeout lets it keep a size for up to a second, but a file another
// client wrote and closed must read whole on the next open here
// (close-to-open consistency). It reports whether the kernel's cached
// pages hold the data of a (size and mtime as at the open that cached
// them, nothing told since moved them), so that the open may keep them
// (FOPEN_KEEP_CACHE); otherwise the open drops them.
func (n *node) revalidate(a *dfspb.Attr) (unchanged bool) {
	if a == nil {
		return false
	}
	// The kernel caches a file's data by its size and mtime.
	p := n.pages.Load()
	unchanged = p != nil && sameData(p, a)
	if t := n.last.Load(); t == nil || !sameData(t, a) {
		// -1: attributes only. ENOENT means the kernel forgot the inode.
		_ = n.NotifyContent(-1, 0)
		n.tell(a)
	}
	if !unchanged {
		n.pages.Store(a)
	}
	return unchanged
}

// Compile-time interface checks.
var (
	_ fs.InodeEmbedder      = (*node)(nil)
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeReadlinker     = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeStatfser       = (*node)(nil)
	_ fs.NodeGetxattrer     = (*node)(nil)
	_ fs.NodeSetxattrer     = (*node)(nil)
	_ fs.NodeListxattrer    = (*node)(nil)
	_ fs.NodeRemovexattrer  = (*node)(nil)
)

// maxName is NAME_MAX.
const maxName = 255

// newChild returns the inode for cn (the bridge keeps one per inode
// number) and fills out from attr.
func (n *node) newChild(ctx context.Context, cn client.Node, attr *dfspb.Attr, out *gofuse.EntryOut) *fs.Inode {
	child := &node{fsys: n.fsys, cn: cn}
	if attr.Type == dfspb.FileType_FILE_TYPE_SYMLINK {
		child.target = attr.Target
	}
	fillAttr(attr, &out.Attr)
	in := n.NewInode(ctx, child, fs.StableAttr{Mode: typeBits(cn.Type), Ino: inoOf(cn.ID), Gen: 1})
	if got, ok := in.Operations().(*node); ok {
		got.tell(attr)
	}
	return in
}

// caller returns the uid and gid of the process making the request.
func caller(ctx context.Context) (uint32, uint32) {
	if c, ok := gofuse.FromContext(ctx); ok {
		return c.Uid, c.Gid
	}
	return 0, 0
}

// Lookup finds a child.
func (n *node) Lookup(ctx context.Context, name string, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if len(name) > maxName {
		return nil, syscall.ENAMETOOLONG
	}
	grace := min(missGrace, n.fsys.opts.EntryTimeout)
	start, names := time.Now(), n.names.Load()
	if m := n.miss.Load(); m != nil && m.name == name && m.names == names && start.Sub(time.Unix(0, m.at)) < grace &&
		n.miss.CompareAndSwap(m, nil) { // once: the repeat rename(2) makes
		return nil, syscall.ENOENT
	}
	rctx, done := n.fsys.interruptible(ctx)
	defer done()
	// The answer may come from a page of the directory read a moment ago
	// (client.Volume.LookupAt): the kernel keeps it no longer than it
	// would have kept an entry looked up then.
	entryTO, attrTO := n.fsys.opts.EntryTimeout, n.fsys.opts.AttrTimeout
	cn, attr, asOf, err := n.fsys.vol.LookupAt(rctx, n.cn, name, min(entryTO, attrTO))
	if err != nil {
		errno := nameErrno(ctx, err, n)
		if errno == syscall.ENOENT && grace > 0 {
			n.miss.Store(&lookupMiss{name: name, at: start.UnixNano(), names: names})
		}
		return nil, errno
	}
	now := time.Now()
	// The directory existed when the answer was read (asOf: long ago for
	// an answer from a page of it).
	n.seenAlive(asOf)
	in := n.newChild(ctx, cn, attr, out)
	if age := now.Sub(asOf); age > 0 && entryTO > 0 && attrTO > 0 {
		out.SetEntryTimeout(max(entryTO-age, time.Nanosecond))
		out.SetAttrTimeout(max(attrTO-age, time.Nanosecond))
	}
	return in, 0
}

// Getattr reads attributes (with this client's unflushed writes). fstat(2)
// of a descriptor whose inode is gone (a directory removed or renamed
// over while open) answers its last attributes with no links, as a local
// file system does.
func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *gofuse.AttrOut) syscall.Errno {
	if a := n.postOpAttr(); a != nil {
		fillAttr(a, &out.Attr)
		n.tell(a)
		return 0
	}
	rctx, done := n.fsys.interruptible(ctx)
	defer done()
	a, err := n.fsys.vol.GetAttr(rctx, n.cn)
	if err != nil {
		if last := n.last.Load(); fh != nil && last != nil && errors.Is(err, client.ErrNotFound) {
			gone := proto.Clone(last).(*dfspb.Attr)
			gone.Nlink = 0
			fillAttr(gone, &out.Attr)
			return 0
		}
		return inodeErrno(err)
	}
	fillAttr(a, &out.Attr)
	n.tell(a)
	return 0
}

// postOpAttr returns attributes of n this mount learned from the
// subvolume less than the attribute timeout ago, for a GETATTR the kernel
// sends only because it changed n itself: for a directory, what this
// mount's last create, link, unlink or rename in it answered
// (client.Volume.RecentDirAttr; the kernel asks on the next path walk
// through it); for a file open here, its attributes with the buffered
// writes (client.Volume.RecentOpenAttr; the kernel asks after every
// write(2)). They are not used if the kernel was told newer ones since (a
// chmod's answer, say).
func (n *node) postOpAttr() *dfspb.Attr {
	var a *dfspb.Attr
	if n.cn.IsDir() {
		a = n.fsys.vol.RecentDirAttr(n.cn, n.fsys.opts.AttrTimeout)
	} else {
		a = n.fsys.vol.RecentOpenAttr(n.cn, n.fsys.opts.AttrTimeout)
	}
	if a == nil {
		return nil
	}
	if t := n.last.Load(); t != nil && t.CtimeNs > a.CtimeNs {
		return nil
	}
	return a
}

// Setattr changes mode, owner, size and times. UTIME_NOW arrives as
// FATTR_ATIME_NOW / FATTR_MTIME_NOW and is stamped by the subvolume
// leader; UTIME_OMIT fields are simply absent from the mask.
func (n *node) Setattr(ctx context.Context, _ fs.FileHandle, in *gofuse.SetAttrIn, out *gofuse.AttrOut) syscall.Errno {
	var s client.SetAttrIn
	if m, ok := in.GetMode(); ok {
		s.Mask |= client.SetMode
		s.Mode = m
	}
	if u, ok := in.GetUID(); ok {
		s.Mask |= client.SetUID
		s.UID = u
	}
	if g, ok := in.GetGID(); ok {
		s.Mask |= client.SetGID
		s.GID = g
	}
	if sz, ok := in.GetSize(); ok {
		s.Mask |= client.SetSize
		s.Size = sz
	}
	switch {
	case in.Valid&gofuse.FATTR_ATIME_NOW != 0:
		s.Mask |= client.SetAtimeNow
	case in.Valid&gofuse.FATTR_ATIME != 0:
		s.Mask |= client.SetAtime
		s.Atime = time.Unix(int64(in.Atime), int64(in.Atimensec))
	}
	switch {
	case in.Valid&gofuse.FATTR_MTIME_NOW != 0:
		s.Mask |= client.SetMtimeNow
	case in.Valid&gofuse.FATTR_MTIME != 0:
		s.Mask |= client.SetMtime
		s.Mtime = time.Unix(int64(in.Mtime), int64(in.Mtimensec))
	}
	mctx, cancel := n.fsys.mutation(ctx)
	defer cancel()
	a, err := n.fsys.vol.SetAttr(mctx, n.cn, s)
	if err != nil {
		return inodeErrno(err)
	}
	fillAttr(a, &out.Attr)
	n.tell(a)
	return 0
}

// Create creates (or, without O_EXCL, opens) a regular file.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *gofuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if len(name) > maxName {
		return nil, nil, 0, syscall.ENAMETOOLONG
	}
	uid, gid := caller(ctx)
	defer n.changing()()
	mctx, cancel := n.fsys.mutation(ctx)
	defer cancel()
	vol := n.fsys.vol
	cn, attr, err := vol.Create(mctx, n.cn, name, mode&0o7777, uid, gid, flags&syscall.O_EXCL != 0)
	if err != nil {
		return nil, nil, 0, nameErrno(ctx, err, n)
	}
	if cn.Type == dfspb.FileType_FILE_TYPE_DIR {
		return nil, nil, 0, syscall.EISDIR
	}
	if attr.Size == 0 {
		// creat(2) passes O_TRUNC; a new (or empty) file needs no
		// truncation, and skipping it keeps create-write-close at two
		// Raft rounds.
		flags &^= syscall.O_TRUNC
	}
	f, err := vol.OpenFresh(mctx, cn, attr, int(flags))
	if err != nil {
		return nil, nil, 0, toErrno(err)
	}
	if f.Size() != attr.Size {
		a, err := vol.GetAttr(mctx, cn)
		if err == nil {
			attr = a
		}
	}
	in := n.newChild(ctx, cn, attr, out)
	return in, n.fsys.newHandle(in, f), openFlags(flags), 0
}

// openFlags returns the FOPEN flags of a file opened with flags. An
// O_APPEND file bypasses the page cache (FOPEN_DIRECT_IO): the client
// appends at the end of the file as committed, which may lie past the end
// the kernel knows (another client appended), so the kernel must not
// cache the data at the offset it computed.
func openFlags(flags uint32) uint32 {
	if flags&syscall.O_APPEND != 0 {
		return gofuse.FOPEN_DIRECT_IO
	}
	return 0
}

// Open opens a regular file.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	openCtx, done := n.fsys.interruptible(ctx)
	defer done()
	if flags&syscall.O_TRUNC != 0 {
		mctx, cancel := n.fsys.mutation(ctx)
		defer cancel()
		openCtx = mctx
	}
	f, err := n.fsys.vol.Open(openCtx, n.cn, int(flags))
	if err != nil {
		return nil, 0, inodeErrno(err)
	}
	fl := openFlags(flags)
	// Pages cached by an earlier open stay when the file's size and mtime
	// are what the kernel was told with them (as NFS keeps its cache when
	// the change attribute is unchanged): a warm re-read costs no RPC.
	// Every change, here or by another client, moves mtime.
	if n.revalidate(f.Attr()) && fl&gofuse.FOPEN_DIRECT_IO == 0 && flags&syscall.O_TRUNC == 0 {
		fl |= gofuse.FOPEN_KEEP_CACHE
	}
	return n.fsys.newHandle(n.EmbeddedInode(), f), fl, 0
}

// Mkdir creates a directory.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if len(name) > maxName {
		return nil, syscall.ENAMETOOLONG
	}
	uid, gid := caller(ctx)
	defer n.changing()()
	mctx, cancel := n.fsys.mutation(ctx)
	defer cancel()
	cn, attr, err := n.fsys.vol.Mkdir(mctx, n.cn, name, mode&0o7777, uid, gid)
	if err != nil {
		return nil, nameErrno(ctx, err, n)
	}
	return n.newChild(ctx, cn, attr, out), 0
}

// Mknod creates a FIFO, socket, device or empty regular file.
func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if len(name) > maxName {
		return nil, syscall.ENAMETOOLONG
	}
	typ, ok := fileType(mode)
	if !ok {
		return nil, syscall.EINVAL
	}
	uid, gid := caller(ctx)
	defer n.changing()()
	mctx, cancel := n.fsys.mutation(ctx)
	defer cancel()
	cn, attr, err := n.fsys.vol.Mknod(mctx, n.cn, name, typ, mode&0o7777, uint64(dev), uid, gid)
	if err != nil {
		return nil, nameErrno(ctx, err, n)
	}
	return n.newChild(ctx, cn, attr, out), 0
}

// Symlink creates a symbolic link.
func (n *node) Symlink(ctx context.Context, target, name string, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if len(name) > maxName {
		return nil, syscall.ENAMETOOLONG
	}
	uid, gid := caller(ctx)
	defer n.changing()()
	mctx, cancel := n.fsys.mutation(ctx)
	defer cancel()
	cn, attr, err := n.fsys.vol.Symlink(mctx, n.cn, name, target, uid, gid)
	if err != nil {
		return nil, nameErrno(ctx, err, n)
	}
	return n.newChild(ctx, cn, attr, out), 0
}

// Link makes name in n a new hard link to target (link(2)). The bridge
// finds target's Inode by its inode number, so both names share it.
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if len(name) > maxName {
		return nil, syscall.ENAMETOOLONG
	}
	tn, ok := target.(*node)
	if !ok {
		return nil, syscall.EXDEV
	}
	defer n.changing()()
	mctx, cancel := n.fsys.mutation(ctx)
	defer cancel()
	attr, err := n.fsys.vol.Link(mctx, tn.cn, n.cn, name)
	if err != nil {
		return nil, nameErrno(ctx, err, n, tn)
	}
	return n.newChild(ctx, tn.cn, attr, out), 0
}

// Readlink returns a symlink's target.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if n.target != "" {
		return []byte(n.target), 0
	}
	rctx, done := n.fsys.interruptible(ctx)
	defer done()
	t, err := n.fsys.vol.Readlink(rctx, n.cn)
	if err != nil {
		return nil, toErrno(err)
	}
	return []byte(t), 0
}

// Unlink removes a non-directory.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	defer n.changing()()
	mctx, cancel := n.fsys.mutation(ctx)
	defer cancel()
	return nameErrno(ctx, n.fsys.vol.Unlink(mctx, n.cn, name), n)
}

// Rmdir removes an empty directory.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	defer n.changing()()
	mctx, cancel := n.fsys.mutation(ctx)
	defer cancel()
	return nameErrno(ctx, n.fsys.vol.Rmdir(mctx, n.cn, name), n)
}

// Rename moves an entry (flags: RENAME_NOREPLACE, RENAME_EXCHANGE).
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	defer n.changing()()
	defer np.changing()()
	mctx, cancel := n.fsys.mutation(ctx)
	defer cancel()
	return nameErrno(ctx, n.fsys.vol.Rename(mctx, n.cn, name, np.cn, newName, flags), n, np)
}

// OpendirHandle opens a directory for reading.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if n.cn.Type != dfspb.FileType_FILE_TYPE_DIR {
		return nil, 0, syscall.ENOTDIR
	}
	// The first page at once: a directory another client removed fails
	// here with ESTALE (the kernel looks its path up again), not later in
	// getdents.
	d := &dirHandle{dir: n, base: firstEntry}
	rctx, done := n.fsys.interruptible(ctx)
	err := d.load(rctx)
	done()
	if err != nil {
		return nil, 0, inodeErrno(err)
	}
	return d, 0, 0
}

// Statfs reports the volume's space: the sum over subvolumes.
func (n *node) Statfs(ctx context.Context, out *gofuse.StatfsOut) syscall.Errno {
	rctx, done := n.fsys.interruptible(ctx)
	defer done()
	s, err := n.fsys.vol.Statfs(rctx)
	if err != nil {
		return toErrno(err)
	}
	const bsize = 4096
	out.Bsize, out.Frsize = bsize, bsize
	out.Blocks, out.Bfree, out.Bavail = s.TotalBytes/bsize, s.FreeBytes/bsize, s.AvailBytes/bsize
	out.Files, out.Ffree = s.TotalInodes, s.FreeInodes
	out.NameLen = maxName
	return 0
}

// unsupportedXattr reports the attributes dfs does not keep, answered
// without an RPC (as Gluster's FUSE client does without its acl, selinux
// and capability options): POSIX ACLs (the kernel does not enforce them on
// this mount), SELinux labels (no policy labels dfs from xattrs) and file
// capabilities. They are asked for constantly: ls -l reads the first two
// on every file, and the kernel reads security.capability before every
// write(2) to a FUSE file; answering locally keeps ls -l at one RPC per
// page and small writes free of RPCs.
//
// Reading one answers EOPNOTSUPP, as a local file system mounted without
// ACLs or labels does (and as setxattr of one does here), not ENODATA:
// that tells ls(1) (and libacl, libselinux) that the file system has none,
// so it stops asking for the rest of the listing. With ENODATA it asked
// twice per entry, each a FUSE round trip: the better part of a cold ls -l.
func unsupportedXattr(name string) bool {
	switch name {
	case "system.posix_acl_access", "system.posix_acl_default", "security.selinux", "security.capability":
		return true
	}
	return false
}

// xattrName checks an attribute's name as Linux does before asking a file
// system: the namespaces a local file system keeps (user, trusted,
// security; system only for the ACLs of unsupportedXattr) and a name
// after the prefix. Others are EOPNOTSUPP, an empty name EINVAL.
func xattrName(name string) syscall.Errno {
	for _, ns := range []string{"user.", "trusted.", "security."} {
		if strings.HasPrefix(name, ns) {
			if len(name) == len(ns) {
				return syscall.EINVAL
			}
			return 0
		}
	}
	if unsupportedXattr(name) {
		return 0
	}
	return syscall.EOPNOTSUPP
}

// Getxattr reads an extended attribute; with a too small dest it returns
// the size and ERANGE (the bridge turns that into the size query's answer).
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if errno := xattrName(attr); errno != 0 {
		return 0, errno
	}
	if unsupportedXattr(attr) {
		return 0, syscall.EOPNOTSUPP
	}
	rctx, done := n.fsys.interruptible(ctx)
	defer done()
	v, err := n.fsys.vol.GetXattr(rctx, n.cn, attr)
	if err != nil {
		return 0, toErrno(err)
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// Setxattr sets an extended attribute (flags XATTR_CREATE, XATTR_REPLACE).
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if errno := xattrName(attr); errno != 0 {
		return errno
	}
	if unsupportedXattr(attr) {
		return syscall.EOPNOTSUPP
	}
	mctx, cancel := n.fsys.mutation(ctx)
	defer cancel()
	err := n.fsys.vol.SetXattr(mctx, n.cn, attr, data, flags)
	if errors.Is(err, client.ErrTooBig) {
		return syscall.E2BIG // setxattr(2)'s errno for a value too large
	}
	return toErrno(err)
}

// Listxattr lists extended attribute names, NUL-terminated.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	rctx, done := n.fsys.interruptible(ctx)
	defer done()
	names, err := n.fsys.vol.ListXattr(rctx, n.cn)
	if err != nil {
		return 0, toErrno(err)
	}
	size := 0
	for _, nm := range names {
		size += len(nm) + 1
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	off := 0
	for _, nm := range names {
		off += copy(dest[off:], nm)
		dest[off] = 0
		off++
	}
	return uint32(size), 0
}

// Removexattr removes an extended attribute.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if errno := xattrName(attr); errno != 0 {
		return errno
	}
	mctx, cancel := n.fsys.mutation(ctx)
	defer cancel()
	return toErrno(n.fsys.vol.RemoveXattr(mctx, n.cn, attr))
}
