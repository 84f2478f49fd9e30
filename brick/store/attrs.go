package store

import (
	"fmt"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// SetAttr mask bits.
const (
	maskMode     = uint32(dfspb.SetAttrMask_SET_ATTR_MASK_MODE)
	maskUID      = uint32(dfspb.SetAttrMask_SET_ATTR_MASK_UID)
	maskGID      = uint32(dfspb.SetAttrMask_SET_ATTR_MASK_GID)
	maskSize     = uint32(dfspb.SetAttrMask_SET_ATTR_MASK_SIZE)
	maskAtime    = uint32(dfspb.SetAttrMask_SET_ATTR_MASK_ATIME)
	maskMtime    = uint32(dfspb.SetAttrMask_SET_ATTR_MASK_MTIME)
	maskAtimeNow = uint32(dfspb.SetAttrMask_SET_ATTR_MASK_ATIME_NOW)
	maskMtimeNow = uint32(dfspb.SetAttrMask_SET_ATTR_MASK_MTIME_NOW)
	maskCtime    = uint32(dfspb.SetAttrMask_SET_ATTR_MASK_CTIME)
	maskAll      = maskMode | maskUID | maskGID | maskSize | maskAtime | maskMtime | maskAtimeNow | maskMtimeNow | maskCtime
)

// fileInode loads an inode whose data is being changed: it must be a
// regular file.
func (t *txn) fileInode(idBytes []byte) (layout.ID, *dfspb.InodeRecord, error) {
	id, err := parseID("id", idBytes)
	if err != nil {
		return id, nil, err
	}
	rec, err := t.inode(id)
	if err != nil {
		return id, nil, err
	}
	switch rec.Attr.Type {
	case dfspb.FileType_FILE_TYPE_FILE:
		return id, rec, nil
	case dfspb.FileType_FILE_TYPE_DIR:
		return id, nil, fmt.Errorf("%w: %s", ErrIsDir, id)
	default:
		return id, nil, fmt.Errorf("%w: %s is not a regular file", ErrInvalid, id)
	}
}

// resizeInline computes the inline data of a file resized to size and
// whether the file becomes chunked. An inline file with data cannot grow
// past InlineMax (ErrTooBig: the client moves the data to chunk 0 first); a
// chunked file truncated to 0 becomes inline again.
func (t *txn) resizeInline(id layout.ID, a *dfspb.Attr, size uint64) (data []byte, chunked bool, err error) {
	if a.Chunked {
		return nil, size != 0, nil
	}
	data, err = t.inline(id)
	if err != nil {
		return nil, false, err
	}
	if size > uint64(t.s.cfg.InlineMax) {
		if len(data) > 0 {
			return nil, false, fmt.Errorf("%w: inline file %s cannot grow to %d bytes; move its data to chunks", ErrTooBig, id, size)
		}
		return nil, true, nil
	}
	if uint64(len(data)) > size {
		data = data[:size]
	}
	return data, false, nil
}

func (t *txn) setAttr(c *dfspb.SetAttrCmd) (*dfspb.StoreResult, error) {
	id, err := parseID("id", c.Id)
	if err != nil {
		return nil, err
	}
	if c.Mask&^maskAll != 0 {
		return nil, fmt.Errorf("%w: setattr mask %#x", ErrInvalid, c.Mask)
	}
	rec, err := t.inode(id)
	if err != nil {
		return nil, err
	}
	a := rec.Attr
	var data []byte
	if c.Mask&maskSize != 0 {
		switch a.Type {
		case dfspb.FileType_FILE_TYPE_FILE:
		case dfspb.FileType_FILE_TYPE_DIR:
			return nil, fmt.Errorf("%w: %s", ErrIsDir, id)
		default:
			return nil, fmt.Errorf("%w: size of a %v", ErrInvalid, a.Type)
		}
		var chunked bool
		if data, chunked, err = t.resizeInline(id, a, c.Size); err != nil {
			return nil, err
		}
		if err := t.putInline(id, data); err != nil {
			return nil, err
		}
		a.Size, a.Chunked = c.Size, chunked
		a.MtimeNs = t.now
	}
	if c.Mask&maskMode != 0 {
		a.Mode = c.Mode & 0o7777
	}
	if c.Mask&maskUID != 0 {
		a.Uid = c.Uid
	}
	if c.Mask&maskGID != 0 {
		a.Gid = c.Gid
	}
	switch {
	case c.Mask&maskAtimeNow != 0:
		a.AtimeNs = t.now
	case c.Mask&maskAtime != 0:
		a.AtimeNs = c.AtimeNs
	}
	switch {
	case c.Mask&maskMtimeNow != 0:
		a.MtimeNs = t.now
	case c.Mask&maskMtime != 0:
		a.MtimeNs = c.MtimeNs
	}
	a.CtimeNs = t.now
	if c.Mask&maskCtime != 0 {
		a.CtimeNs = c.CtimeNs
	}
	a.Version = t.index
	if err := t.putInode(rec); err != nil {
		return nil, err
	}
	return &dfspb.StoreResult{Attr: a}, nil
}

func (t *txn) writeInline(c *dfspb.WriteInlineCmd) (*dfspb.StoreResult, error) {
	id, rec, err := t.fileInode(c.Id)
	if err != nil {
		return nil, err
	}
	a := rec.Attr
	if c.Append {
		off, seen, err := t.checkOpID(id, c.OpId)
		if err != nil || seen {
			return &dfspb.StoreResult{Attr: a, Repeated: seen, Offset: off}, err
		}
		c.Offset = a.Size
	}
	end := c.Offset + uint64(len(c.Data))
	if a.Chunked || end > uint64(t.s.cfg.InlineMax) || end < c.Offset {
		return nil, fmt.Errorf("%w: inline write [%d, %d) to %s (inline max %d, chunked %v)", ErrTooBig, c.Offset, end, id, t.s.cfg.InlineMax, a.Chunked)
	}
	data, err := t.inline(id)
	if err != nil {
		return nil, err
	}
	if uint64(len(data)) < end {
		data = append(data, make([]byte, end-uint64(len(data)))...)
	}
	copy(data[c.Offset:], c.Data)
	if err := t.putInline(id, data); err != nil {
		return nil, err
	}
	a.Size = max(a.Size, end)
	t.touch(a, true)
	if c.MtimeNs != 0 {
		a.MtimeNs = c.MtimeNs
	}
	if err := t.putInode(rec); err != nil {
		return nil, err
	}
	if c.Append {
		if err := t.rememberOp(id, c.OpId, c.Offset); err != nil {
			return nil, err
		}
	}
	return &dfspb.StoreResult{Attr: a, Offset: c.Offset}, nil
}

// checkOpID validates the op id an append requires and reports whether
// it was applied before, with the offset it was given.
func (t *txn) checkOpID(id layout.ID, opID []byte) (uint64, bool, error) {
	if len(opID) != idLen {
		return 0, false, fmt.Errorf("%w: an append needs an op_id of %d bytes, not %d", ErrInvalid, idLen, len(opID))
	}
	return t.seenOp(id, opID)
}

// maxFileSize is the largest file an append may make (1 PiB, as the
// client's MaxFileSize).
const maxFileSize = 1 << 50

func (t *txn) appendReserve(c *dfspb.AppendReserveCmd) (*dfspb.StoreResult, error) {
	id, rec, err := t.fileInode(c.Id)
	if err != nil {
		return nil, err
	}
	a := rec.Attr
	off, seen, err := t.checkOpID(id, c.OpId)
	if err != nil || seen {
		return &dfspb.StoreResult{Attr: a, Repeated: seen, Offset: off}, err
	}
	end := a.Size + c.Length
	switch {
	case !a.Chunked:
		return nil, fmt.Errorf("%w: append reserve on inline file %s", ErrTooBig, id)
	case end < a.Size || end > maxFileSize:
		return nil, fmt.Errorf("%w: append of %d bytes to %s at %d", ErrTooBig, c.Length, id, a.Size)
	}
	off = a.Size
	a.Size = end
	t.touch(a, true)
	if c.MtimeNs != 0 {
		a.MtimeNs = c.MtimeNs
	}
	if err := t.putInode(rec); err != nil {
		return nil, err
	}
	if err := t.rememberOp(id, c.OpId, off); err != nil {
		return nil, err
	}
	return &dfspb.StoreResult{Attr: a, Offset: off}, nil
}

func (t *txn) commitSize(c *dfspb.CommitSizeCmd) (*dfspb.StoreResult, error) {
	id, rec, err := t.fileInode(c.Id)
	if err != nil {
		return nil, err
	}
	a := rec.Attr
	if c.ExpectVersion != 0 && a.Version != c.ExpectVersion {
		return nil, fmt.Errorf("%w: %s changed (version %d, expected %d)", ErrStale, id, a.Version, c.ExpectVersion)
	}
	size := c.Size
	if !c.Exact {
		size = max(size, a.Size)
	}
	switch {
	case c.Chunked:
		if err := t.putInline(id, nil); err != nil {
			return nil, err
		}
		a.Chunked = true
	case size != a.Size:
		data, chunked, err := t.resizeInline(id, a, size)
		if err != nil {
			return nil, err
		}
		if err := t.putInline(id, data); err != nil {
			return nil, err
		}
		a.Chunked = chunked
	}
	a.Size = size
	t.touch(a, true)
	if c.MtimeNs != 0 {
		a.MtimeNs = c.MtimeNs
	}
	if err := t.putInode(rec); err != nil {
		return nil, err
	}
	return &dfspb.StoreResult{Attr: a}, nil
}

// Xattr flag bits.
const (
	xattrCreate  = uint32(dfspb.XattrFlag_XATTR_FLAG_CREATE)
	xattrReplace = uint32(dfspb.XattrFlag_XATTR_FLAG_REPLACE)
)

func (t *txn) setXattr(c *dfspb.SetXattrCmd) (*dfspb.StoreResult, error) {
	id, err := parseID("id", c.Id)
	if err != nil {
		return nil, err
	}
	if err := checkXattrName(c.Name); err != nil {
		return nil, err
	}
	if len(c.Value) > maxXattrLen {
		return nil, fmt.Errorf("%w: xattr value of %d bytes", ErrTooBig, len(c.Value))
	}
	if c.Flags&^(xattrCreate|xattrReplace) != 0 || c.Flags == xattrCreate|xattrReplace {
		return nil, fmt.Errorf("%w: xattr flags %#x", ErrInvalid, c.Flags)
	}
	rec, err := t.inode(id)
	if err != nil {
		return nil, err
	}
	key := xattrKey(id, c.Name)
	_, exists, err := getValue(t.b, key)
	if err != nil {
		return nil, ioErr(err)
	}
	switch {
	case exists && c.Flags&xattrCreate != 0:
		return nil, fmt.Errorf("%w: xattr %q", ErrExists, c.Name)
	case !exists && c.Flags&xattrReplace != 0:
		return nil, fmt.Errorf("%w: %q", ErrNoAttr, c.Name)
	}
	if err := t.b.Set(key, c.Value, nil); err != nil {
		return nil, ioErr(err)
	}
	t.touch(rec.Attr, false)
	if err := t.putInode(rec); err != nil {
		return nil, err
	}
	return &dfspb.StoreResult{Attr: rec.Attr}, nil
}

func (t *txn) removeXattr(c *dfspb.RemoveXattrCmd) (*dfspb.StoreResult, error) {
	id, err := parseID("id", c.Id)
	if err != nil {
		return nil, err
	}
	if err := checkXattrName(c.Name); err != nil {
		return nil, err
	}
	rec, err := t.inode(id)
	if err != nil {
		return nil, err
	}
	key := xattrKey(id, c.Name)
	_, exists, err := getValue(t.b, key)
	if err != nil {
		return nil, ioErr(err)
	}
	if !exists {
		return nil, fmt.Errorf("%w: %q", ErrNoAttr, c.Name)
	}
	if err := t.b.Delete(key, nil); err != nil {
		return nil, ioErr(err)
	}
	t.touch(rec.Attr, false)
	if err := t.putInode(rec); err != nil {
		return nil, err
	}
	return &dfspb.StoreResult{Attr: rec.Attr}, nil
}
