package store

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Key prefixes; see the package documentation for the full layout.
const (
	prefixInode  = 'i' // 'i' + id                 -> InodeRecord
	prefixInline = 'b' // 'b' + id                 -> inline file data
	prefixDirent = 'd' // 'd' + dir id + name      -> dirent value
	prefixXattr  = 'x' // 'x' + id + name          -> xattr value
	prefixChunk  = 'c' // 'c' + file id + be64 idx -> ChunkInfo
	prefixOp     = 'o' // 'o' + id + op id         -> be64 offset, be64 time (op ids)
	prefixOpTime = 'O' // 'O' + id + be64 time + op id -> empty (op ids by age)
	prefixMeta   = 'm' // 'm' + name               -> store metadata
)

// Metadata keys.
var (
	keyApplied = []byte("mapplied") // be64 last applied Raft index
	keyCounts  = []byte("mcounts")  // 3 x be64: inodes, chunks, chunk bytes
	keyFormat  = []byte("mformat")  // 3 x be64: chunk size, block size, inline max
)

const (
	idLen       = len(layout.ID{})
	chunkKeyLen = 1 + idLen + 8
	direntLen   = 1 + 2*idLen // type, child, locator
	maxNameLen  = 255         // NAME_MAX, also for xattr names
	maxXattrLen = 64 << 10    // XATTR_SIZE_MAX
)

func idKey(prefix byte, id layout.ID) []byte {
	k := make([]byte, 1+idLen)
	k[0] = prefix
	copy(k[1:], id[:])
	return k
}

func inodeKey(id layout.ID) []byte  { return idKey(prefixInode, id) }
func inlineKey(id layout.ID) []byte { return idKey(prefixInline, id) }

// idNameKey is prefix + id + name (dirents, xattrs).
func idNameKey(prefix byte, id layout.ID, name string) []byte {
	k := make([]byte, 1+idLen+len(name))
	k[0] = prefix
	copy(k[1:], id[:])
	copy(k[1+idLen:], name)
	return k
}

// opKey is the key remembering that AdjustLink op id opID was applied to
// inode id.
func opKey(id layout.ID, opID []byte) []byte {
	k := make([]byte, 1+idLen+len(opID))
	k[0] = prefixOp
	copy(k[1:], id[:])
	copy(k[1+idLen:], opID)
	return k
}

// opTimeKey orders the op ids of inode id by the time they were applied.
func opTimeKey(id layout.ID, now uint64, opID []byte) []byte {
	k := make([]byte, 1+idLen+8+len(opID))
	k[0] = prefixOpTime
	copy(k[1:], id[:])
	binary.BigEndian.PutUint64(k[1+idLen:], now)
	copy(k[1+idLen+8:], opID)
	return k
}

func direntKey(dir layout.ID, name string) []byte { return idNameKey(prefixDirent, dir, name) }
func xattrKey(id layout.ID, name string) []byte   { return idNameKey(prefixXattr, id, name) }

func chunkKey(file layout.ID, index uint64) []byte {
	k := make([]byte, chunkKeyLen)
	k[0] = prefixChunk
	copy(k[1:], file[:])
	binary.BigEndian.PutUint64(k[1+idLen:], index)
	return k
}

// parseChunkKey splits a chunk key into file id and index.
func parseChunkKey(k []byte) (layout.ID, uint64, bool) {
	if len(k) != chunkKeyLen || k[0] != prefixChunk {
		return layout.ID{}, 0, false
	}
	var id layout.ID
	copy(id[:], k[1:])
	return id, binary.BigEndian.Uint64(k[1+idLen:]), true
}

// prefixBounds returns [lower, upper) covering every key that starts with p.
func prefixBounds(p []byte) (lower, upper []byte) {
	lower = append([]byte(nil), p...)
	upper = append([]byte(nil), p...)
	for i := len(upper) - 1; i >= 0; i-- {
		if upper[i] != 0xff {
			upper[i]++
			return lower, upper[:i+1]
		}
	}
	return lower, nil // all 0xff: no upper bound
}

// encodeDirent encodes a dirent value: type byte, child id, locator.
func encodeDirent(typ dfspb.FileType, child, locator layout.ID) []byte {
	v := make([]byte, direntLen)
	v[0] = byte(typ)
	copy(v[1:], child[:])
	copy(v[1+idLen:], locator[:])
	return v
}

// dirent is a decoded directory entry.
type dirent struct {
	typ     dfspb.FileType
	child   layout.ID
	locator layout.ID
}

func decodeDirent(v []byte) (dirent, error) {
	if len(v) != direntLen {
		return dirent{}, fmt.Errorf("%w: dirent value of %d bytes", ErrIO, len(v))
	}
	var d dirent
	d.typ = dfspb.FileType(v[0])
	copy(d.child[:], v[1:])
	copy(d.locator[:], v[1+idLen:])
	return d, nil
}

func (d dirent) proto(name string) *dfspb.Dirent {
	return &dfspb.Dirent{Name: name, Id: d.child[:], Type: d.typ, Locator: d.locator[:]}
}

// parseID converts the bytes of a command field into an id.
func parseID(what string, b []byte) (layout.ID, error) {
	var id layout.ID
	if len(b) != idLen {
		return id, fmt.Errorf("%w: %s has %d bytes, want %d", ErrInvalid, what, len(b), idLen)
	}
	copy(id[:], b)
	if id.IsZero() {
		return id, fmt.Errorf("%w: %s is the zero id", ErrInvalid, what)
	}
	return id, nil
}

// checkName validates a directory entry name.
func checkName(name string) error {
	switch {
	case len(name) > maxNameLen:
		return fmt.Errorf("%w: %d bytes", ErrNameTooLong, len(name))
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%w: name %q", ErrInvalid, name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: name %q contains '/' or NUL", ErrInvalid, name)
	}
	return nil
}

// checkXattrName validates an xattr name.
func checkXattrName(name string) error {
	switch {
	case len(name) > maxNameLen:
		return fmt.Errorf("%w: xattr name of %d bytes", ErrNameTooLong, len(name))
	case name == "" || strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%w: xattr name %q", ErrInvalid, name)
	}
	return nil
}

// chunkRelPath is the path of a chunk file below the chunks directory:
// xx/<file id hex>.<index>, xx being the first byte of the id in hex.
func chunkRelPath(file layout.ID, index uint64) string {
	s := file.String()
	return s[:2] + "/" + s + "." + strconv.FormatUint(index, 10)
}

// parseChunkName parses "<file id hex>.<index>" (a chunk file's base name).
func parseChunkName(name string) (layout.ID, uint64, bool) {
	idPart, idxPart, ok := strings.Cut(name, ".")
	if !ok {
		return layout.ID{}, 0, false
	}
	id, err := layout.ParseID(idPart)
	if err != nil {
		return layout.ID{}, 0, false
	}
	idx, err := strconv.ParseUint(idxPart, 10, 64)
	if err != nil || strconv.FormatUint(idx, 10) != idxPart {
		return layout.ID{}, 0, false
	}
	return id, idx, true
}
