// Package layout decides where every piece of metadata and data of a dfs
// volume lives. It is pure: no I/O and no goroutines.
//
// # Ids
//
// Every inode has a 128-bit [ID]. New ids come from [NewID] (crypto/rand);
// the root directory has the fixed id [RootID]. The text form of an id is 32
// lowercase hex characters ([ID.String], [ParseID]); ids marshal to and from
// JSON in that form.
//
// # Partitions and subvolumes
//
// A volume is made of subvolumes (replica sets), numbered 0..Subvolumes-1.
// The key space of the volume is cut into a fixed number of partitions,
// chosen when the volume is created: a power of two between [MinPartitions]
// and [MaxPartitions] ([DefaultPartitions] is a good choice). The partition
// count never changes for the life of the volume.
//
// A [Layout] is a table mapping each partition to the subvolume that stores
// it (Layout.Partitions[p] is the subvolume of partition p). A partition is
// the unit of placement and of movement: everything that hashes to a
// partition lives on its subvolume, and rebalancing moves whole partitions.
//
// # Placement rules
//
//   - The directory entries of a directory D, and the inode records of the
//     inodes created in D, live in partition PartitionOfDir(D).
//   - Chunk number c of the data of file F lives in partition
//     PartitionOfChunk(F, c). Chunks are hashed independently, so the
//     consecutive chunks of a large file are spread over all partitions and
//     hence over all subvolumes (striping); any 64 consecutive chunks of a
//     file practically always touch every one of 4 subvolumes.
//   - The subvolume of a key is Partitions[partition]; SubvolumeOfDir and
//     SubvolumeOfChunk do both steps.
//
// The partition of a key is computed as follows, and this definition is
// part of the on-disk format:
//
//	h := FNV-1a 64 (offset 14695981039346656037, prime 1099511628211)
//	     over the 16 id bytes, in order; for a chunk, continued over the
//	     8 bytes of the chunk index, least significant byte first
//	h  = splitmix64 finalizer of h:
//	     h ^= h >> 30; h *= 0xbf58476d1ce4e5b9
//	     h ^= h >> 27; h *= 0x94d049bb133111eb
//	     h ^= h >> 31
//	partition = h & (partitions - 1)
//
// # Stability
//
// The hash and the reduction to a partition decide where existing data is
// stored. They must never change: a different hash would make every
// existing directory and chunk unreachable. The package tests pin golden
// values so that an accidental change fails the build. Because the
// partition is the low bits of the hash, a partition count can in principle
// be doubled later by splitting partition p into p and p+partitions, but
// this package does not do that: the partition count is fixed.
//
// Which subvolume owns a partition is not a formula, it is the table. [New]
// assigns partition p to subvolume p % subvolumes, so that subvolume counts
// differ by at most one, but after a [Layout.Rebalance] the table is
// arbitrary. Always consult the table; never recompute p % Subvolumes.
//
// # Versions
//
// Every layout carries a Version. [New] returns version 1; version 0 means
// "no layout" and is invalid. Each [Layout.Rebalance] returns a new layout
// whose Version is one more than its input. Of two layouts of the same
// volume, the one with the higher version is the current one; a component
// holding an older version must fetch the newer one before placing or
// looking up anything. Layouts are values: code never modifies a layout in
// place, it replaces it with a new version.
//
// # Rebalancing
//
// Adding subvolumes moves whole partitions. [Layout.Rebalance] computes the
// layout for a new subvolume count that is again balanced (partition counts
// differ by at most one) while moving the minimum number of partitions: when
// going from n to n+k subvolumes, about partitions/(n+k) partitions go to
// each new subvolume, taken from the old ones, and no other partition moves.
// Shrinking removes the highest-numbered subvolumes; all their partitions
// move, plus the minimum needed to rebalance the rest. Each [Move] says
// that the whole partition (directory entries, inode records and data
// chunks) must be copied from subvolume From to subvolume To.
//
// # Using a layout
//
// The lookup methods assume a valid layout: check layouts obtained from
// elsewhere (for example decoded from JSON) with [Layout.Validate] before
// use. The lookup methods do not modify the layout and are safe for
// concurrent use.
package layout
