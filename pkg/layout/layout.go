package layout

import (
	"errors"
	"fmt"
)

// Limits on the partition count of a volume.
const (
	MinPartitions     = 16
	MaxPartitions     = 65536
	DefaultPartitions = 1024
)

// Errors returned by this package. Returned errors wrap one of these, with
// details; test with errors.Is.
var (
	ErrInvalidID         = errors.New("layout: invalid id")
	ErrInvalidVolumeID   = errors.New("layout: invalid volume id")
	ErrInvalidPartitions = errors.New("layout: partition count must be a power of two between 16 and 65536")
	ErrInvalidSubvolumes = errors.New("layout: subvolume count must be between 1 and the partition count")
	ErrInvalidVersion    = errors.New("layout: invalid version")
	ErrInvalidAssignment = errors.New("layout: partition assigned to a nonexistent subvolume")
)

// Layout maps each partition of a volume to a subvolume. See the package
// documentation for the rules. A Layout is treated as immutable once
// published: produce a new version instead of editing one in place.
type Layout struct {
	// VolumeID names the volume the layout belongs to.
	VolumeID string `json:"volume_id"`
	// Version increases by one with every change; 0 is invalid.
	Version uint64 `json:"version"`
	// Partitions[p] is the subvolume index that stores partition p. Its
	// length is the partition count, a power of two.
	Partitions []int `json:"partitions"`
	// Subvolumes is the number of subvolumes, numbered 0..Subvolumes-1.
	Subvolumes int `json:"subvolumes"`
}

// Move says that partition Partition moves from subvolume From to
// subvolume To.
type Move struct {
	Partition int `json:"partition"`
	From      int `json:"from"`
	To        int `json:"to"`
}

func checkPartitions(partitions int) error {
	if partitions < MinPartitions || partitions > MaxPartitions || partitions&(partitions-1) != 0 {
		return fmt.Errorf("%w: got %d", ErrInvalidPartitions, partitions)
	}
	return nil
}

func checkSubvolumes(partitions, subvolumes int) error {
	if subvolumes < 1 || subvolumes > partitions {
		return fmt.Errorf("%w: got %d subvolumes for %d partitions", ErrInvalidSubvolumes, subvolumes, partitions)
	}
	return nil
}

// New returns version 1 of the layout of a new volume with the given
// partition count (a power of two in [MinPartitions, MaxPartitions]) and
// subvolume count (1 <= subvolumes <= partitions). Partition p goes to
// subvolume p % subvolumes, so subvolume partition counts differ by at most
// one.
func New(volumeID string, partitions, subvolumes int) (*Layout, error) {
	if volumeID == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidVolumeID)
	}
	if err := checkPartitions(partitions); err != nil {
		return nil, err
	}
	if err := checkSubvolumes(partitions, subvolumes); err != nil {
		return nil, err
	}
	l := &Layout{
		VolumeID:   volumeID,
		Version:    1,
		Partitions: make([]int, partitions),
		Subvolumes: subvolumes,
	}
	for p := range l.Partitions {
		l.Partitions[p] = p % subvolumes
	}
	return l, nil
}

// Validate checks that l is usable: a non-empty volume id, a non-zero
// version, a valid partition count and subvolume count, and every
// partition assigned to an existing subvolume. It does not require the
// layout to be balanced.
func (l *Layout) Validate() error {
	if l == nil {
		return fmt.Errorf("%w: nil layout", ErrInvalidPartitions)
	}
	if l.VolumeID == "" {
		return fmt.Errorf("%w: empty", ErrInvalidVolumeID)
	}
	if l.Version == 0 {
		return fmt.Errorf("%w: version 0", ErrInvalidVersion)
	}
	if err := checkPartitions(len(l.Partitions)); err != nil {
		return err
	}
	if err := checkSubvolumes(len(l.Partitions), l.Subvolumes); err != nil {
		return err
	}
	for p, s := range l.Partitions {
		if s < 0 || s >= l.Subvolumes {
			return fmt.Errorf("%w: partition %d on subvolume %d of %d", ErrInvalidAssignment, p, s, l.Subvolumes)
		}
	}
	return nil
}

// mask reduces a hash to a partition.
func (l *Layout) mask() uint64 { return uint64(len(l.Partitions) - 1) }

// PartitionOfDir returns the partition that holds the entries of directory
// dir and the inode records created in it.
func (l *Layout) PartitionOfDir(dir ID) int { return int(hashDir(dir) & l.mask()) }

// PartitionOfChunk returns the partition that holds chunk number chunk of
// the data of file.
func (l *Layout) PartitionOfChunk(file ID, chunk uint64) int {
	return int(hashChunk(file, chunk) & l.mask())
}

// SubvolumeOfDir returns the subvolume that stores PartitionOfDir(dir).
func (l *Layout) SubvolumeOfDir(dir ID) int { return l.Partitions[l.PartitionOfDir(dir)] }

// SubvolumeOfChunk returns the subvolume that stores
// PartitionOfChunk(file, chunk).
func (l *Layout) SubvolumeOfChunk(file ID, chunk uint64) int {
	return l.Partitions[l.PartitionOfChunk(file, chunk)]
}

// Counts returns the number of partitions assigned to each subvolume,
// indexed by subvolume. Out-of-range assignments are ignored.
func (l *Layout) Counts() []int {
	counts := make([]int, l.Subvolumes)
	for _, s := range l.Partitions {
		if s >= 0 && s < len(counts) {
			counts[s]++
		}
	}
	return counts
}

// IsBalanced reports whether the partition counts of the subvolumes differ
// by at most one.
func (l *Layout) IsBalanced() bool {
	counts := l.Counts()
	if len(counts) == 0 {
		return false
	}
	lo, hi := counts[0], counts[0]
	for _, c := range counts {
		lo, hi = min(lo, c), max(hi, c)
	}
	return hi-lo <= 1
}

// PartitionsOf returns, in increasing order, the partitions stored by
// subvolume sub.
func (l *Layout) PartitionsOf(sub int) []int {
	var ps []int
	for p, s := range l.Partitions {
		if s == sub {
			ps = append(ps, p)
		}
	}
	return ps
}

// Clone returns a deep copy of l.
func (l *Layout) Clone() *Layout {
	c := *l
	c.Partitions = append([]int(nil), l.Partitions...)
	return &c
}
