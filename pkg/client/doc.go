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
// subvolume and Link in the parent's. See the method documentation for
// each.
//
// # Transactions across subvolumes
//
// Rename and link between directories on different subvolumes, and rmdir
// of a directory whose inode lives on another subvolume than its entry,
// are transactions over the two Raft groups, coordinated by a brick (see
// brick/txn.go and decision 9): the client plans a TxnIntent (the entries
// to hold, the steps for the other subvolume and their undo, the local
// commit command, the steps after it) and sends it in one RunTxn to the
// leader of the coordinating subvolume, which answers once it is done.
// Rename: coordinated by the source's subvolume; a directory target whose
// inode is on a third subvolume is sealed there first; Link under the new
// name (replacing the target atomically), then Unlink{keep_inode} of the
// old name (the inode never moves); a replaced file whose inode lives
// elsewhere loses its link there in the transaction, and the client
// deletes its chunks (or keeps it open) from the result. Link: coordinated by the new name's
// subvolume; AdjustLink{+1} on the inode's, then Link. Rmdir: coordinated
// by the parent's; SealDir on the directory's own subvolume (ErrNotEmpty
// aborts), Unlink, DropInode. RenameExchange: coordinated by the source's
// subvolume; SwapEntry of the target's name, then of the source's. Either all of it happens or none, whatever
// leader or client crashes: a new leader of the coordinator finishes what
// its store records, and a retry of RunTxn (same transaction id) gets the
// outcome.
//
// # Routing and failover
//
// Every brick RPC goes to the last known leader of its subvolume. A brick
// that is not the leader answers FAILED_PRECONDITION and names the leader
// in the "dfs-leader" trailer, which the client follows at once; a brick
// that is unreachable or does not answer within Config.CallTimeout is left
// for the next brick of the subvolume. A call not answered within a second
// asks the subvolume's other bricks (Status, every 500 ms) whom they
// follow; once they name another leader, the call is abandoned for it, so
// a hung or cut-off leader costs about one election rather than
// CallTimeout. A brick that hung stays out of the rotation, and hints
// naming it are ignored, for 3 s. Between rounds the client pauses
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
//   - AdjustLink carries a fresh random op id; the store remembers the op
//     ids it applied to the inode and answers a repeat without applying it
//     again, so it is retried like the rest. A retried AdjustLink{-1} that
//     answers NOT_FOUND removed the last link: the file's chunks are
//     deleted to be sure.
//   - Link answering existed=true is a retry's own entry after an
//     ambiguous failure, EEXIST otherwise.
//
// # Hard links
//
// Link(n, dir, name) adds a name to a non-directory. Its inode never
// moves: when it lives on the subvolume of dir's entries, one
// Link{new_link} adds the entry and the link count atomically; otherwise
// it is a transaction (above). Unlinking a name whose inode is on another
// subvolume sends AdjustLink{-1} there (a client crash in between leaves
// the count one too high, an orphan for fsck, never too low). Every name
// leads to the same Node (same id, same locator).
//
// # Files removed while open
//
// Unlinks and replacing renames and links name the files open through the
// Volume (keep_ids; with more than 32 open, keep_open asks for any file):
// one of them that loses its last link is kept by the store as an orphan
// (nlink 0, no entry), and its Files keep reading and writing it by id.
// The last Release drops it (DropInode, then its chunks on every
// subvolume); a file kept that is not open here (any more) is dropped at
// once. Only this Volume's opens
// count: a file open on another client is deleted under it, as on NFS
// without silly renames. A client that crashes (or loses the volume)
// while holding such a file leaves the orphan behind, inode and chunks;
// dfs volume fsck (issue 4) finds and removes orphans.
//
// Multi-step operations that are not transactions (mkdir, unlink's chunk
// cleanup, the cleanup of what a replacing rename removed) finish or undo
// their later steps even when the caller's context is cancelled after the
// first step committed (context.WithoutCancel); a client crash between
// steps can leave an orphan inode or chunks for fsck, never a lost entry.
// A transaction, once sent, is waited for whatever the caller's context
// does.
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
// consistency, as NFS), and Open always fetches fresh attributes; for an
// inline file opened for reading, the data with them from the same store
// read, which the open's reads use until anything changes (opendata.go), so
// a cold small-file read is one round trip after the lookup. The
// client caches no metadata; the kernel does, for the timeouts the FUSE
// layer sets.
//
// # O_APPEND, fallocate
//
// A File opened with O_APPEND does not buffer: each write goes to the end
// of the file as committed on its subvolume, so appends from any number of
// clients never overwrite each other (AppendWrite). An inline file takes
// one WriteInline{append}; a chunked one reserves its range with
// AppendReserve on the inode's subvolume (the size grows at once; the range
// reads as zeros until the chunk writes land) and then writes the chunks.
// Both carry an op id, so a retry never appends twice. A crash between
// the reservation and the chunk writes leaves zeros in the file.
// File.PunchHole zeroes a range without changing the size: whole chunks
// are deleted, the ends overwritten with zeros.
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
