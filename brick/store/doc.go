// Package store is the brick store: the state machine of one subvolume's
// Raft group and the brick's local metadata and data store.
//
// A volume is made of subvolumes (replica sets); each is a hashicorp/raft
// group whose members are bricks, and a *Store is that group's FSM on one
// brick. Every mutation is a protobuf dfspb.StoreCommand in the Raft log
// (encode it with EncodeCommand), applied deterministically on every
// replica by Apply or ApplyBatch, which answer with a dfspb.StoreResult.
// Reads (GetAttr, Lookup, ReadDir, ReadInline, ReadChunk, ...) are served
// from the local store. Wiring the store into Raft and gRPC is done
// elsewhere; this package knows nothing of either beyond raft.FSM.
//
// # What is stored
//
//   - Inodes (dfspb.Attr plus a sealed flag), keyed by their 16-byte id
//     (pkg/layout.ID). The client chooses ids and the leader stamps times
//     (StoreCommand.now_ns); Attr.version is the Raft index of the inode's
//     last change.
//   - Directory entries {name, child id, type, locator}. The locator is the
//     id whose partition holds the child's inode: the parent for files,
//     symlinks and special files (their inode lives beside the entry, so a
//     create is one command in one store), the directory itself for
//     directories (mkdir is CreateInode in the directory's own store, then
//     Link in the parent's). The store does not know partitions: an inode is
//     "local" when its record is in this store.
//   - Small-file data inline in the inode's store, up to Config.InlineMax
//     bytes. A larger file is "chunked" (Attr.chunked): its data is in
//     chunks of Config.ChunkSize, chunk i in partition(file, i), wherever the
//     client sends it. Moving a file from inline to chunked is the client's
//     job: WriteInline and a SetAttr growing an inline file with data past
//     InlineMax fail with ErrTooBig; the client reads the inline data,
//     writes it to chunk 0 and commits with CommitSize{chunked: true}, which
//     drops the inline data. A chunked file truncated to size 0 is inline
//     again.
//   - Chunks: one file per chunk, DIR/gen-N/chunks/xx/<file id>.<index> (xx
//     is the first byte of the id in hex), and an index record (ChunkInfo:
//     length, a CRC-32C per Config.BlockSize block, the version = Raft index
//     of the last change, and blocks known bad). Every read verifies the
//     blocks it touches; a mismatch is a *CorruptError (wrapping
//     ErrCorrupt) naming the block, and the caller repairs the chunk from
//     another replica with RepairChunk. Partial writes read, verify and
//     rewrite only the blocks they touch. Holes read as zeros; ReadChunk
//     returns what the chunk holds (the file size lives in the inode, maybe
//     in another store) and the client pads with zeros.
//   - Extended attributes, one record per (inode, name).
//
// # Key layout (Pebble)
//
//	'i' + id                      -> InodeRecord (protobuf)
//	'b' + id                      -> inline data of a file (absent if empty)
//	'd' + dir id + name           -> dirent: type byte, child id, locator id
//	'x' + id + name               -> xattr value
//	'c' + file id + be64(index)   -> ChunkInfo (protobuf)
//	'o' + id + op id              -> be64 offset, be64 time (op ids)
//	'O' + id + be64(time) + op id -> empty (op ids by age, for expiry)
//	'k' + id                      -> LockTable: flock and POSIX locks (locks.go)
//	's' + session + id            -> empty (the inodes where a lock session holds locks)
//	'T' + txn id                  -> TxnIntent: a transaction coordinated here, unfinished (txn.go)
//	'D' + txn id                  -> TxnIntent: one that is DONE, kept for retries
//	'L' + parent id + name        -> txn id: an entry a transaction holds
//	'X' + txn id + be32(step)     -> be64 time, StoreResult: a step applied for a transaction
//	"mapplied"                    -> be64 last applied Raft index
//	"mcounts"                     -> be64 inodes, chunks, chunk bytes (Statfs)
//	"mformat"                     -> be64 chunk size, block size, inline max
//
// A directory's entries are contiguous and in name order, so ReadDir is one
// range scan and rmdir's emptiness check reads at most one key.
//
// # Directory removal and cross-store operations
//
// rmdir of a directory whose inode is in another store is: SealDir there
// (fails with ErrNotEmpty if it has entries; afterwards CreateEntry and
// Link into it fail with ErrStale), Unlink{expect_dir} of its entry in the
// parent's store, then DropInode there (UnsealDir if the unlink failed). If
// the directory's inode is in the parent's store, Unlink checks emptiness
// and deletes it directly. Rename replacing a directory that lives in
// another store needs RenameCmd.target_sealed after the same seal. Unlink
// and replacing renames return the removed inode (RemovedInode) so the
// client can finish elsewhere: AdjustLink in the inode's own store when it
// is not local, DeleteChunks on every store when nlink reached 0. Creates
// and links are idempotent for a retry with the same id.
//
// # Hard links, orphans, setgid
//
// A hard link to an inode in this store is one Link{new_link}: the entry
// and the inode's nlink++ together. A hard link from another store's
// directory is Link there plus AdjustLink{+1} here. AdjustLink carries an
// optional client-chosen op_id (appends carry a required one: WriteInline
// {append}, AppendReserve); the store remembers the op ids applied to each
// inode for OpIDTTL (by the leader's clock; deleted with the inode) and
// answers a repeat with StoreResult.repeated (and the first attempt's
// offset) without applying it again, so the client may retry after a lost
// answer.
//
// Unlink, Rename, Link (of a replaced target) and AdjustLink with
// keep_open do not delete a non-directory that loses its last link: it
// stays as an orphan (InodeRecord.orphan, nlink 0) whose data is read and
// written by id as before, until the client that has it open drops it with
// DropInode at its last close. No link can be added to an orphan. An
// orphan left by a client that crashed is for fsck to find.
//
// A file, symlink or special file created (CreateEntry) in a directory
// with the setgid bit takes the directory's group. (Directories are
// created in their own store, which does not hold the parent: the client
// gives a new directory its parent's group and setgid bit.)
//
// # Durability
//
// ApplyBatch writes all entries of a batch into one indexed Pebble batch
// (later entries read what earlier ones wrote), together with the last
// applied index, and commits it once. Chunk file writes happen in place
// during the batch; the touched files and new directory entries are
// fsynced before the Pebble commit, so the applied index never points past
// durable data. Chunk files deleted by the batch are removed after it.
//
// The commit itself is synced only every 1,024 entries (and before every
// snapshot, and at Close) unless Config.SyncCommits: every entry is in the
// Raft log, synced on a majority before it was applied, and Pebble's log
// recovers a prefix of its commits after a machine crash, so the stored
// applied index tells Raft exactly which entries to apply again. Raft keeps
// its log at least back to the last snapshot, before which the store
// synced. This halves the latency of a small command (one fsync instead
// of two on each replica's path).
//
// Raft (with NoSnapshotRestoreOnStart) replays entries after its last
// snapshot on restart; entries at or below the stored applied index are
// skipped and answered with StoreResult.replayed. A crash in the middle of a
// batch can leave chunk files partly written by entries that were never
// committed. Replaying those entries converges (chunk commands set bytes
// and lengths), and a chunk file longer than its record is cut back before
// use. The store notices an unclean shutdown by the "dirty" marker file
// (created at Open, removed by Close): it then sweeps chunk files that no
// record names, and for the next 2,048 entries (at most the unsynced
// commits plus raft's largest batch) accepts blocks that fail their checksum under a partial overwrite as
// written by the lost batch. Outside that window such a block is corrupt:
// the overwrite still applies (every replica must apply every entry), and
// the block is marked bad in the record, so reads fail with ErrCorrupt until
// RepairChunk replaces it with a replica's copy.
//
// If local storage fails while applying (an I/O error, not a command
// error), the batch is not committed, its commands answer CodeIO, and the
// store refuses further entries until it is reopened, when raft replays
// them.
//
// # Snapshots
//
// Snapshot takes a Pebble snapshot; Persist streams every key and every
// chunk's record and bytes in a framed format ending in a CRC-32C; Restore
// loads a stream into a fresh generation directory (DIR/gen-N) and then
// switches DIR/CURRENT to it atomically, so a crash leaves either the old or
// the new state. Chunks in a snapshot may be newer than its applied index
// (they are read live, each with its own record); replaying the following
// entries over them converges as above.
//
// # Concurrency
//
// Raft calls Apply, ApplyBatch, Snapshot and Restore one at a time. Persist
// may run concurrently with Apply. All reads (GetAttr, Lookup, ReadDir,
// ReadInline, ReadChunk, ChunkInfo, GetXattr, ListXattr, Statfs, Scrub)
// and RepairChunk are safe for concurrent use with each other and with
// Apply, and see applied state only: Pebble reads see committed batches,
// and each chunk is guarded by a striped RWMutex that a batch holds, from
// its first write of the chunk until after its commit, so a read never sees
// a chunk file ahead of (or behind) its record. Restore and Close wait for
// running reads and make later ones wait or fail with ErrClosed.
//
// # Errors
//
// Errors wrap the package sentinels (ErrNotFound, ErrExists, ErrNotEmpty,
// ErrNotDir, ErrIsDir, ErrTooBig, ErrCorrupt, ErrNoAttr, ErrNameTooLong,
// ErrInvalid, ErrStale, ErrIO, ...); test with errors.Is. Code and
// ErrorCode.Err map them to and from the errno-like dfspb.StoreErrorCode
// that a StoreResult carries; ResultError rebuilds the error of a result.
// Names longer than 255 bytes are ErrNameTooLong.
package store
