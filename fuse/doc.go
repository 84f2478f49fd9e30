// Package fuse mounts a dfs volume through FUSE. It adapts pkg/client to
// go-fuse's fs (node) API and is the only package that imports go-fuse
// (docs/decisions/0005-go-fuse-api.md says why fs and not the raw API).
//
// # Structure
//
// Mount(dir, vol, opts) mounts an open client.Volume and returns once the
// mount is live; Wait blocks until it is unmounted (by umount(8) or
// Unmount). Every inode the kernel knows is a node (an fs.Inode embedder
// holding its client.Node); its inode number is the 128-bit id folded to
// 64 bits, the root's is 1. Open files are handles wrapping client.File;
// open directories are handles paging through client.Volume.ReadDir.
//
// The mount uses default_permissions (the kernel checks permissions
// against the attributes we return), allow_other by default (shared like
// an NFS export), max_write and readahead of 1 MiB, subtype "dfs" and the
// fsname of Options (shown in /proc/mounts). It is made with mount(2)
// directly (we run as root), falling back to fusermount3. Names longer
// than NAME_MAX (255) fail with ENAMETOOLONG.
//
// # Caching and consistency
//
// The kernel caches attributes and directory entries for
// Options.AttrTimeout and Options.EntryTimeout (1 s each by default);
// a failed lookup is answered once more from memory if the same name is
// looked up again within 20 ms (the kernel repeats a rename target's
// lookup), and otherwise not cached (NFS caches them longer). The client
// fetches fresh attributes on open, and file data cached in the page cache
// is kept by an open only if the file's size and mtime have not moved
// since it was cached (FOPEN_KEEP_CACHE): close-to-open consistency
// between clients, as NFS gives. The kernel keeps the pages of this
// mount's own writes (no AUTO_INVAL_DATA); while a file is open and in
// use, the mount drops its pages within about the attribute timeout of a
// commit another client made (inval.go, decision 14). Writes are buffered by the
// client (see pkg/client) and committed on close(2) (FLUSH) and fsync;
// close returns the commit's error.
//
// READDIRPLUS is answered from the attributes that come with each page of
// entries (those whose inode lives with the directory's entries: every
// file created there), so `ls -l` of a large directory costs one RPC per
// 1024 entries plus one lookup per subdirectory.
//
// # Extended attributes
//
// xattrs are stored on the inode's subvolume, except POSIX ACLs
// (system.posix_acl_*), SELinux labels (security.selinux) and file
// capabilities (security.capability), which read as absent and cannot be
// set (EOPNOTSUPP), as on a Gluster mount without its acl, selinux and
// capability options. The kernel and ls(1) ask for them constantly (before
// every write(2), for every file listed), so they are answered without an
// RPC.
//
// # Interrupts
//
// A FUSE interrupt (a signal to the calling process; Go programs get them
// constantly from the runtime's preemption signals) cancels the request's
// context. Most are spurious, and many programs do not expect EINTR from
// stat(2) or symlink(2), so read-only requests (lookups, getattr, reads,
// listings, xattr reads) give up with EINTR only if they are still running
// one second (interruptGrace) after the interrupt: a request stuck while
// the cluster is down ends soon after Ctrl-C, and a normal one is never
// cut short. Mutations ignore interrupts: they run on
// context.WithoutCancel with a generous timeout of their own, because
// abandoning a multi-step change (mkdir, rmdir, rename, a flush) halfway
// would leave it half done, and a Raft command once sent commits or not
// regardless. The client bounds every call by its failover timeout.
//
// # Concurrency and locking
//
// go-fuse serves requests concurrently, one goroutine each. Node methods
// keep no mutable state of their own (a node's client.Node never changes;
// a symlink's target is set before the node is published); directory
// handles lock around their cursor; file handles rely on client.File,
// which is safe for concurrent use. flock/fcntl locks are not implemented
// yet.
//
// # Hard links, removed open files, permissions
//
// link(2) makes a new name for an inode (client.Volume.Link); every name
// has the same inode number, and the bridge keeps one Inode for it. A file
// unlinked (or renamed over) while this mount has it open stays readable
// and writable through its open descriptors, fstat shows nlink 0, and it
// is deleted at the last RELEASE; if the client dies first, the file is
// left as an orphan for fsck (see pkg/client). New entries in a setgid
// directory take its group, new subdirectories its setgid bit too. With
// default_permissions the kernel enforces permission bits and the sticky
// bit (unlink and rename in a sticky directory only by the owner of the
// file or of the directory), from the attributes we return.
//
// Files opened with O_APPEND bypass the page cache (FOPEN_DIRECT_IO): the
// client appends at the committed end of the file, which another client
// may have moved past the end the kernel knows. fallocate(2) supports
// mode 0 (the size grows; no space is reserved, dfs files are sparse),
// KEEP_SIZE (a no-op) and PUNCH_HOLE|KEEP_SIZE (the range reads as zeros).
// st_blocks is the size in 512-byte blocks, rounded up (holes are counted).
package fuse
