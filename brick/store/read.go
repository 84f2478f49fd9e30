package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// The reads below see applied state only (what the last committed batch
// left), are safe for concurrent use with each other and with Apply, and
// return errors wrapping the package sentinels (ErrClosed after Close).

// GetAttr returns the attributes of inode id. ErrNotFound if its record is
// not in this store.
func (s *Store) GetAttr(ctx context.Context, id layout.ID) (*dfspb.Attr, error) {
	if err := s.readLock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	rec, err := getInode(s.db, id)
	if err != nil {
		return nil, err
	}
	return rec.Attr, nil
}

// GetAttrData returns the attributes of inode id and, when it is an inline
// regular file, its whole data (Size bytes, zero-filled where sparse), both
// from one view of the store: the data is the data of exactly those
// attributes. hasData is false for chunked files and other types. ErrNotFound
// if its record is not in this store.
func (s *Store) GetAttrData(ctx context.Context, id layout.ID) (attr *dfspb.Attr, data []byte, hasData bool, err error) {
	if err := s.readLock(ctx); err != nil {
		return nil, nil, false, err
	}
	defer s.mu.RUnlock()
	snap := s.db.NewSnapshot()
	defer snap.Close()
	rec, err := getInode(snap, id)
	if err != nil {
		return nil, nil, false, err
	}
	a := rec.Attr
	if a.Type != dfspb.FileType_FILE_TYPE_FILE || a.Chunked || a.Size > uint64(s.cfg.InlineMax) {
		return a, nil, false, nil
	}
	v, _, err := getValue(snap, inlineKey(id))
	if err != nil {
		return nil, nil, false, ioErr(err)
	}
	data = make([]byte, a.Size)
	copy(data, v)
	return a, data, true, nil
}

// readLock checks ctx and takes the read side of mu.
func (s *Store) readLock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.rlock()
}

// localAttr returns the attributes of id if its record is in r, else nil.
func localAttr(r pebble.Reader, id layout.ID) (*dfspb.Attr, error) {
	v, ok, err := getValue(r, inodeKey(id))
	if err != nil || !ok {
		return nil, err
	}
	rec := &dfspb.InodeRecord{}
	if err := proto.Unmarshal(v, rec); err != nil {
		return nil, ioErr(fmt.Errorf("decode inode %s: %w", id, err))
	}
	return rec.Attr, nil
}

// Lookup returns the entry name of directory parent, with the child's
// attributes when its inode is in this store. ErrNotFound if there is no
// such entry.
func (s *Store) Lookup(ctx context.Context, parent layout.ID, name string) (*dfspb.Dirent, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := s.readLock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	d, found, err := getDirent(s.db, parent, name)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: %q in %s", ErrNotFound, name, parent)
	}
	de := d.proto(name)
	de.Attr, err = localAttr(s.db, d.child)
	return de, err
}

// ReadDir returns the entries of directory dir in name (byte) order,
// starting after the name after ("" for the beginning), at most limit of
// them (limit <= 0: all), and eof = true when no entries follow them.
// Entries whose inode is in this store carry its attributes (readdirplus).
// ErrNotFound if dir's inode is not here, ErrNotDir if it is not a
// directory. The entries come from one consistent view of the store.
func (s *Store) ReadDir(ctx context.Context, dir layout.ID, after string, limit int) (entries []*dfspb.Dirent, eof bool, err error) {
	if err := s.readLock(ctx); err != nil {
		return nil, false, err
	}
	defer s.mu.RUnlock()
	snap := s.db.NewSnapshot()
	defer snap.Close()
	rec, err := getInode(snap, dir)
	if err != nil {
		return nil, false, err
	}
	if rec.Attr.Type != dfspb.FileType_FILE_TYPE_DIR {
		return nil, false, fmt.Errorf("%w: %s", ErrNotDir, dir)
	}
	p := idKey(prefixDirent, dir)
	lower, upper := prefixBounds(p)
	if after != "" {
		lower = append(direntKey(dir, after), 0)
	}
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, false, ioErr(err)
	}
	ok := it.First()
	for ; ok && (limit <= 0 || len(entries) < limit); ok = it.Next() {
		if err = ctx.Err(); err != nil {
			break
		}
		var d dirent
		if d, err = decodeDirent(it.Value()); err != nil {
			break
		}
		de := d.proto(string(it.Key()[len(p):]))
		if de.Attr, err = localAttr(snap, d.child); err != nil {
			break
		}
		entries = append(entries, de)
	}
	if cerr := it.Close(); err == nil && cerr != nil {
		err = ioErr(cerr)
	}
	if err != nil {
		return nil, false, err
	}
	return entries, !ok, nil
}

// ReadInline reads up to n bytes at off of an inline file, zero-filled
// where the file is sparse, short at the end of the file. ErrIsDir for a
// directory, ErrInvalid for other non-files and for chunked files (read
// their chunks).
func (s *Store) ReadInline(ctx context.Context, id layout.ID, off int64, n int) ([]byte, error) {
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("%w: read at %d of %d bytes", ErrInvalid, off, n)
	}
	if err := s.readLock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	snap := s.db.NewSnapshot()
	defer snap.Close()
	rec, err := getInode(snap, id)
	if err != nil {
		return nil, err
	}
	a := rec.Attr
	switch {
	case a.Type == dfspb.FileType_FILE_TYPE_DIR:
		return nil, fmt.Errorf("%w: %s", ErrIsDir, id)
	case a.Type != dfspb.FileType_FILE_TYPE_FILE:
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInvalid, id)
	case a.Chunked:
		return nil, fmt.Errorf("%w: %s is chunked", ErrInvalid, id)
	}
	size := int64(a.Size)
	if off >= size {
		return []byte{}, nil
	}
	end := min(off+int64(n), size)
	data, _, err := getValue(snap, inlineKey(id))
	if err != nil {
		return nil, ioErr(err)
	}
	out := make([]byte, end-off)
	if off < int64(len(data)) {
		copy(out, data[off:min(end, int64(len(data)))])
	}
	return out, nil
}

// GetXattr returns the value of xattr name of inode id: ErrNoAttr if it is
// not set, ErrNotFound if the inode is not here.
func (s *Store) GetXattr(ctx context.Context, id layout.ID, name string) ([]byte, error) {
	if err := checkXattrName(name); err != nil {
		return nil, err
	}
	if err := s.readLock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	v, ok, err := getValue(s.db, xattrKey(id, name))
	if err != nil {
		return nil, ioErr(err)
	}
	if ok {
		if v == nil {
			v = []byte{}
		}
		return v, nil
	}
	if _, err := getInode(s.db, id); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %q", ErrNoAttr, name)
}

// ListXattr returns the xattr names of inode id, sorted. ErrNotFound if the
// inode is not here.
func (s *Store) ListXattr(ctx context.Context, id layout.ID) ([]string, error) {
	if err := s.readLock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	snap := s.db.NewSnapshot()
	defer snap.Close()
	if _, err := getInode(snap, id); err != nil {
		return nil, err
	}
	names, err := listXattrs(snap, id)
	slices.Sort(names)
	return names, err
}

// Statfs describes the brick's file system and the store's contents.
type Statfs struct {
	// Of the file system holding the store (statfs(2)).
	BlockSize  uint64 // fundamental block size in bytes
	TotalBytes uint64
	FreeBytes  uint64
	AvailBytes uint64 // free bytes available to unprivileged users
	TotalFiles uint64
	FreeFiles  uint64
	NameMax    uint64
	// Of the store.
	Inodes       uint64 // inode records
	Chunks       uint64 // chunks
	ChunkBytes   uint64 // bytes of chunk data (sum of chunk lengths)
	AppliedIndex uint64 // last applied Raft index
}

// Statfs reports the file system's space and the store's object counts.
func (s *Store) Statfs(ctx context.Context) (Statfs, error) {
	if err := s.readLock(ctx); err != nil {
		return Statfs{}, err
	}
	defer s.mu.RUnlock()
	var st unix.Statfs_t
	if err := unix.Statfs(s.cfg.Dir, &st); err != nil {
		return Statfs{}, ioErr(fmt.Errorf("statfs %s: %w", s.cfg.Dir, err))
	}
	s.countsMu.Lock()
	c := s.counts
	s.countsMu.Unlock()
	bsize := uint64(st.Bsize)
	return Statfs{
		BlockSize:    bsize,
		TotalBytes:   st.Blocks * bsize,
		FreeBytes:    st.Bfree * bsize,
		AvailBytes:   st.Bavail * bsize,
		TotalFiles:   st.Files,
		FreeFiles:    st.Ffree,
		NameMax:      uint64(st.Namelen),
		Inodes:       c.Inodes,
		Chunks:       c.Chunks,
		ChunkBytes:   c.ChunkBytes,
		AppliedIndex: s.applied.Load(),
	}, nil
}
