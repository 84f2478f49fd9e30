package raftstore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/raft"
	"golang.org/x/sys/unix"
)

// Blob segments hold the Data of large entries (chunk writes, up to 1 MiB)
// beside Pebble. Written into Pebble, every such byte went through its
// write-ahead log, a memtable, a flush and often a compaction before log
// compaction deleted it; here it is written once, sequentially, and
// fdatasync'd before the Pebble batch that refers to it commits (so a
// reference never names bytes that are not on disk). Pebble keeps the
// entry with a reference (segment, offset, length, CRC-32C) instead of the
// data.
//
// Segments are append-only files named by a sequence number. A store
// appends to one segment (a new one after each Open, so a torn tail of an
// earlier run is never appended to) until it exceeds segmentSize. A
// segment is deleted once every entry it holds lies below the log's first
// index (log compaction); bytes of entries overwritten by a suffix
// truncation stay until then.
const (
	// blobThreshold is the smallest Data kept in a segment.
	blobThreshold = 64 << 10
	// defaultSegmentSize is the size after which writes go to a new
	// segment (Config.SegmentBytes).
	defaultSegmentSize = 64 << 20
	// blobDirName is the segments' directory inside Config.Dir.
	blobDirName = "blobs"
	segSuffix   = ".seg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blobs is a store's set of segments.
type blobs struct {
	dir     string
	sync    bool
	segSize int64

	mu       sync.Mutex
	files    map[uint64]*os.File // open segments, by number
	maxIndex map[uint64]uint64   // segment -> highest log index stored in it
	active   uint64              // segment written to; 0: none yet
	size     int64               // bytes in the active segment
	next     uint64              // number of the next segment
}

func segName(n uint64) string { return fmt.Sprintf("%016x%s", n, segSuffix) }

// openBlobs opens the segment directory dir, creating it if needed.
func openBlobs(dir string, sync bool, segSize int64) (*blobs, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if segSize <= 0 {
		segSize = defaultSegmentSize
	}
	b := &blobs{dir: dir, sync: sync, segSize: segSize, files: map[uint64]*os.File{}, maxIndex: map[uint64]uint64{}, next: 1}
	segs, err := b.list()
	if err != nil {
		return nil, err
	}
	for _, n := range segs {
		b.next = max(b.next, n+1)
	}
	return b, nil
}

// list returns the numbers of the segments on disk.
func (b *blobs) list() ([]uint64, error) {
	ents, err := os.ReadDir(b.dir)
	if err != nil {
		return nil, err
	}
	var segs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		segs = append(segs, n)
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i] < segs[j] })
	return segs, nil
}

// noteRef records that entry index lies in segment ref.seg (Open's scan).
func (b *blobs) noteRef(ref *blobRef, index uint64) {
	b.mu.Lock()
	b.maxIndex[ref.seg] = max(b.maxIndex[ref.seg], index)
	b.mu.Unlock()
}

// removeUnreferenced deletes the segments no entry refers to (left by a
// crash between a segment write and its Pebble commit, or by entries
// deleted before a crash).
func (b *blobs) removeUnreferenced() error {
	segs, err := b.list()
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range segs {
		if _, ok := b.maxIndex[n]; !ok {
			if err := os.Remove(filepath.Join(b.dir, segName(n))); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// write appends the Data of every entry of logs at or above blobThreshold
// to the active segment, fdatasync'd unless sync is off, and returns
// their references (nil for entries that stay inline). Callers serialise
// writes.
func (b *blobs) write(logs []*raft.Log) ([]*blobRef, error) {
	var refs []*blobRef
	var dirty []*os.File
	for i, l := range logs {
		if len(l.Data) < blobThreshold {
			continue
		}
		if refs == nil {
			refs = make([]*blobRef, len(logs))
		}
		f, seg, off, err := b.reserve(int64(len(l.Data)))
		if err != nil {
			return nil, err
		}
		if _, err := f.WriteAt(l.Data, off); err != nil {
			return nil, fmt.Errorf("write blob segment %d: %w", seg, err)
		}
		refs[i] = &blobRef{seg: seg, off: uint64(off), length: uint64(len(l.Data)), crc: crc32.Checksum(l.Data, castagnoli)}
		b.mu.Lock()
		b.maxIndex[seg] = max(b.maxIndex[seg], l.Index)
		b.mu.Unlock()
		if len(dirty) == 0 || dirty[len(dirty)-1] != f {
			dirty = append(dirty, f)
		}
	}
	if b.sync {
		for _, f := range dirty {
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				return nil, fmt.Errorf("sync blob segment %s: %w", f.Name(), err)
			}
		}
	}
	return refs, nil
}

// reserve returns the active segment (a new one when there is none or it
// is full) and the offset at which n bytes go.
func (b *blobs) reserve(n int64) (*os.File, uint64, int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.active == 0 || b.size >= b.segSize {
		seg := b.next
		f, err := os.OpenFile(filepath.Join(b.dir, segName(seg)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("create blob segment: %w", err)
		}
		if b.sync {
			// The segment's name must be durable before an entry names it.
			if err := syncDir(b.dir); err != nil {
				f.Close()
				return nil, 0, 0, err
			}
		}
		b.next++
		b.files[seg] = f
		b.active, b.size = seg, 0
	}
	off := b.size
	b.size += n
	return b.files[b.active], b.active, off, nil
}

// read returns the data ref points to, checked against its CRC.
func (b *blobs) read(ref *blobRef) ([]byte, error) {
	f, err := b.file(ref.seg)
	if err != nil {
		return nil, err
	}
	data := make([]byte, ref.length)
	if _, err := f.ReadAt(data, int64(ref.off)); err != nil {
		return nil, fmt.Errorf("read blob segment %d at %d: %w", ref.seg, ref.off, err)
	}
	if crc32.Checksum(data, castagnoli) != ref.crc {
		return nil, fmt.Errorf("%w: blob segment %d at %d: checksum mismatch", ErrCorrupt, ref.seg, ref.off)
	}
	return data, nil
}

// file returns the open segment seg, opening it for reading if needed.
func (b *blobs) file(seg uint64) (*os.File, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, ok := b.files[seg]; ok {
		return f, nil
	}
	f, err := os.Open(filepath.Join(b.dir, segName(seg)))
	if err != nil {
		return nil, err
	}
	b.files[seg] = f
	return f, nil
}

// dropBelow deletes the segments whose entries all lie below first
// (first 0: the log is empty, so all of them); the next write after the
// active one goes starts a new segment. Callers serialise it with write.
func (b *blobs) dropBelow(first uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for seg, hi := range b.maxIndex {
		if first != 0 && hi >= first {
			continue
		}
		if seg == b.active {
			b.active, b.size = 0, 0
		}
		if f, ok := b.files[seg]; ok {
			f.Close()
			delete(b.files, seg)
		}
		delete(b.maxIndex, seg)
		if err := os.Remove(filepath.Join(b.dir, segName(seg))); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// close closes every open segment.
func (b *blobs) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for seg, f := range b.files {
		errs = append(errs, f.Close())
		delete(b.files, seg)
	}
	return errors.Join(errs...)
}

// syncDir fsyncs a directory, making the names in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// bytes returns the size of every segment on disk.
func (b *blobs) bytes() int64 {
	segs, err := b.list()
	if err != nil {
		return 0
	}
	var n int64
	for _, seg := range segs {
		if fi, err := os.Stat(filepath.Join(b.dir, segName(seg))); err == nil {
			n += fi.Size()
		}
	}
	return n
}
