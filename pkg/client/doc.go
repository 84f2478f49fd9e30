// Package client is the dfs volume client library: it reads a volume's
// layout, routes every operation to the Raft leader of the right
// subvolume, retries through failover, and implements the file system on
// top of the brick store's commands. It knows nothing of FUSE; package
// fuse adapts it to the kernel.
//
// # Structure
//
// Open a volume with Open(ctx, Config). The Volume fetches the layout from
// the first configured server that answers and keeps a WatchLayout stream
// to some server (the configured ones, then those the layout lists),
// swapping in each newer layout atomically. Files and directories are
// named by Node values (inode id, locator, type); the root is Volume.Root.
// Namespace operations are methods of Volume; file data goes through a
// File from Volume.Open.
//
// # Placement
//
// The client enforces dfs's placement protocol; the bricks only apply
// commands. The entries of directory D, and the inode records of files,
// symlinks and special files created in D, live on SubvolumeOfDir(D.id); a
// directory's inode lives with its own entries (its locator is its id).
// Chunk i of a file lives on SubvolumeOfChunk(file, i). So a create is one
// command on one subvolume; mkdir is CreateInode on the new directory's
// subvolume and Link in the parent's; rmdir of a directory on another
// subvolume is SealDir, Unlink, DropInode; rename between directories on
// different subvolumes is Link then Unlink{keep_inode} (the inode never
// moves). See the method documentation for each.
//
// # Routing and failover
//
// Every brick RPC goes to the last known leader of its subvolume. A brick
// that is not the leader answers FAILED_PRECONDITION and names the leader
// in the "dfs-leader" trailer, which the client follows at once; a brick
// that is unreachable or does not answer within Config.CallTimeout is left
// for the next brick of the subvolume. Between rounds the client pauses
// 25 ms, doubling to 500 ms, while a new leader is elected. An operation
// gives up with ErrUnavailable after Config.FailoverTimeout (by default
// the volume option network.ping-timeout plus 5 s), or as soon as its
// context ends. There is one gRPC connection per brick address, shared by
// all calls.
//
// # Retries
//
// A Mutate whose answer is lost (timeout, connection reset) may or may not
// have been committed. The client retries it, and every command is made
// safe to repeat, by the store or here:
//
//   - CreateEntry, CreateInode, Link: a retry with the same id finds its
//     own result and succeeds (store).
//   - SetAttr, WriteInline, WriteChunk, TruncateChunk, DeleteChunks,
//     CommitSize, SealDir, UnsealDir, SetXattr without flags or with
//     XATTR_REPLACE: idempotent.
//   - Unlink, Rename, DropInode: a retry after an ambiguous failure that
//     answers NOT_FOUND is taken as success (the lost attempt did it). The
//     lost answer's RemovedInode is lost with it, so the chunks of a file
//     removed that way are left for fsck.
//   - SetXattr with XATTR_CREATE answering EXISTS, RemoveXattr answering
//     NO_ATTR after an ambiguous failure: taken as success.
//   - AdjustLink is not idempotent: it is retried only after unambiguous
//     failures (not the leader); after an ambiguous one the client gives up
//     and logs the inode for fsck.
//
// Multi-step operations (mkdir, rmdir, rename, unlink's chunk cleanup)
// finish or undo their later steps even when the caller's context is
// cancelled after the first step committed (context.WithoutCancel); a
// crash between steps can leave an orphan inode, a sealed directory or two
// names for one inode, never a lost entry.
//
// # Writes, caching and consistency
//
// Every File of one inode opened through one Volume shares a write
// buffer: writes are copied once into per-chunk buffers (dirty byte ranges
// per 1 MiB chunk) and sent when a chunk is full (up to
// Config.FlushParallelism chunk writes in flight per file), when the
// buffer passes Config.WriteBuffer (8 MiB), and on Flush, Fsync and
// Release. Flush then commits the size and mtime with one CommitSize. A
// file of at most InlineMax (64 KiB) keeps its data inline in its inode:
// create, write and close is two Raft rounds (CreateEntry, one WriteInline
// with data and size). Reads and GetAttr through the same Volume see
// buffered data; other clients see it after Flush (close-to-open
// consistency, as NFS), and Open always fetches fresh attributes. The
// client caches no metadata; the kernel does, for the timeouts the FUSE
// layer sets.
//
// # Concurrency
//
// All Volume and File methods may be called concurrently. Operations on
// different inodes run in parallel; the buffered writes, flushes and
// truncates of one inode are serialized by that inode's lock (reads only
// take it to copy buffered data). Close waits for background chunk writes
// and the layout watch to stop.
//
// # Errors
//
// Errors wrap the package's sentinels (ErrNotFound, ErrExists, ...),
// mapped from the store's result codes in one function; test them with
// errors.Is. Names longer than 255 bytes fail with ErrNameTooLong before
// any RPC.
package client
