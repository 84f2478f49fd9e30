package store

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// maxSymlinkLen is PATH_MAX, the longest symlink target.
const maxSymlinkLen = 4096

// Every handler checks everything before its first write to the batch, so
// that a command that fails leaves no trace.

// dirForAdd loads a directory that an entry is being added to.
func (t *txn) dirForAdd(id layout.ID) (*dfspb.InodeRecord, error) {
	rec, err := t.inode(id)
	if err != nil {
		return nil, err
	}
	if rec.Attr.Type != dfspb.FileType_FILE_TYPE_DIR {
		return nil, fmt.Errorf("%w: %s", ErrNotDir, id)
	}
	if rec.Sealed {
		return nil, fmt.Errorf("%w: %s", ErrStale, id)
	}
	return rec, nil
}

// dirOf loads a directory whose entries are read or removed.
func (t *txn) dirOf(id layout.ID) (*dfspb.InodeRecord, error) {
	rec, err := t.inode(id)
	if err != nil {
		return nil, err
	}
	if rec.Attr.Type != dfspb.FileType_FILE_TYPE_DIR {
		return nil, fmt.Errorf("%w: %s", ErrNotDir, id)
	}
	return rec, nil
}

func validType(typ dfspb.FileType) bool {
	return typ >= dfspb.FileType_FILE_TYPE_FILE && typ <= dfspb.FileType_FILE_TYPE_BLOCK
}

// newAttr builds the attributes of a new inode from the client's.
func (t *txn) newAttr(in *dfspb.Attr) (*dfspb.Attr, layout.ID, error) {
	if in == nil {
		return nil, layout.ID{}, fmt.Errorf("%w: attr missing", ErrInvalid)
	}
	id, err := parseID("attr.id", in.Id)
	if err != nil {
		return nil, id, err
	}
	if !validType(in.Type) {
		return nil, id, fmt.Errorf("%w: type %v", ErrInvalid, in.Type)
	}
	if len(in.Target) > maxSymlinkLen {
		return nil, id, fmt.Errorf("%w: symlink target of %d bytes", ErrNameTooLong, len(in.Target))
	}
	a := &dfspb.Attr{
		Id: id[:], Type: in.Type, Mode: in.Mode & 0o7777, Uid: in.Uid, Gid: in.Gid,
		Nlink: 1, Rdev: in.Rdev, AtimeNs: t.now, MtimeNs: t.now, CtimeNs: t.now,
		Version: t.index,
	}
	switch in.Type {
	case dfspb.FileType_FILE_TYPE_DIR:
		a.Nlink = 2
	case dfspb.FileType_FILE_TYPE_SYMLINK:
		a.Target = in.Target
		a.Size = uint64(len(in.Target))
	}
	return a, id, nil
}

// localAttr returns the attributes of id if its inode is in this store.
func (t *txn) localAttr(id layout.ID) (*dfspb.Attr, error) {
	rec, err := t.inodeOrNil(id)
	if rec == nil || err != nil {
		return nil, err
	}
	return rec.Attr, nil
}

func (t *txn) createEntry(c *dfspb.CreateEntryCmd) (*dfspb.StoreResult, error) {
	parent, err := parseID("parent", c.Parent)
	if err != nil {
		return nil, err
	}
	if err := checkName(c.Name); err != nil {
		return nil, err
	}
	a, id, err := t.newAttr(c.Attr)
	if err != nil {
		return nil, err
	}
	if a.Type == dfspb.FileType_FILE_TYPE_DIR {
		return nil, fmt.Errorf("%w: directories are made with CreateInode and Link", ErrInvalid)
	}
	prec, err := t.dirForAdd(parent)
	if err != nil {
		return nil, err
	}
	if prec.Attr.Mode&modeSetgid != 0 {
		// A setgid directory gives its group to what is created in it.
		a.Gid = prec.Attr.Gid
	}
	d, found, err := t.dirent(parent, c.Name)
	if err != nil {
		return nil, err
	}
	if found {
		if d.child != id && c.Exclusive {
			return nil, fmt.Errorf("%w: %q in %s", ErrExists, c.Name, parent)
		}
		// A retry of this very create (same id) succeeds as the first
		// attempt did; otherwise open-or-create finds the existing file.
		attr, err := t.localAttr(d.child)
		if err != nil {
			return nil, err
		}
		de := d.proto(c.Name)
		de.Attr = attr
		return &dfspb.StoreResult{Attr: attr, Dirent: de, Existed: d.child != id, Parent: prec.Attr}, nil
	}
	if old, err := t.inodeOrNil(id); err != nil {
		return nil, err
	} else if old != nil {
		return nil, fmt.Errorf("%w: inode id %s is in use", ErrExists, id)
	}

	if err := t.putInode(&dfspb.InodeRecord{Attr: a}); err != nil {
		return nil, err
	}
	t.counts.Inodes++
	nd := dirent{typ: a.Type, child: id, locator: parent}
	if err := t.putDirent(parent, c.Name, nd); err != nil {
		return nil, err
	}
	t.touch(prec.Attr, true)
	if err := t.putInode(prec); err != nil {
		return nil, err
	}
	de := nd.proto(c.Name)
	de.Attr = a
	return &dfspb.StoreResult{Attr: a, Dirent: de, Parent: prec.Attr}, nil
}

func (t *txn) createInode(c *dfspb.CreateInodeCmd) (*dfspb.StoreResult, error) {
	a, id, err := t.newAttr(c.Attr)
	if err != nil {
		return nil, err
	}
	old, err := t.inodeOrNil(id)
	if err != nil {
		return nil, err
	}
	if old != nil {
		if old.Attr.Type != a.Type {
			return nil, fmt.Errorf("%w: inode id %s is in use", ErrExists, id)
		}
		return &dfspb.StoreResult{Attr: old.Attr, Existed: true}, nil // a retry
	}
	if err := t.putInode(&dfspb.InodeRecord{Attr: a}); err != nil {
		return nil, err
	}
	t.counts.Inodes++
	return &dfspb.StoreResult{Attr: a}, nil
}

// checkReplace checks whether entry d may be replaced by an entry of a
// directory (srcDir) or not. A directory target must be empty: checked here
// when its inode is local, otherwise the client must have sealed it.
func (t *txn) checkReplace(d dirent, srcDir, targetSealed bool, sealed []byte) error {
	dstDir := d.typ == dfspb.FileType_FILE_TYPE_DIR
	switch {
	case srcDir && !dstDir:
		return fmt.Errorf("%w: target %s", ErrNotDir, d.child)
	case !srcDir && dstDir:
		return fmt.Errorf("%w: target %s", ErrIsDir, d.child)
	case !dstDir:
		return nil
	}
	rec, err := t.inodeOrNil(d.child)
	if err != nil {
		return err
	}
	if rec == nil {
		if !targetSealed {
			return fmt.Errorf("%w: target directory %s is in another store and not sealed", ErrNotEmpty, d.child)
		}
		if len(sealed) > 0 && !bytes.Equal(sealed, d.child[:]) {
			return fmt.Errorf("%w: target directory %s is not the one sealed (%x)", ErrNotEmpty, d.child, sealed)
		}
		return nil
	}
	empty, err := dirEmpty(t.b, d.child)
	if err != nil {
		return err
	}
	if !empty {
		return fmt.Errorf("%w: %s", ErrNotEmpty, d.child)
	}
	return nil
}

// keepSet says whether a removed inode that loses its last link is kept
// as an orphan (keep_open, keep_ids).
type keepSet struct {
	all bool
	ids [][]byte
}

func (k keepSet) has(id layout.ID) bool {
	if k.all {
		return true
	}
	for _, b := range k.ids {
		if string(b) == string(id[:]) {
			return true
		}
	}
	return false
}

// modeSetgid is S_ISGID in Attr.mode.
const modeSetgid = 0o2000

// dropEntry removes entry name (d) of parent prec and the link it holds:
// the parent loses a link for a directory; a local inode loses a link and
// is deleted at nlink 0 (a local directory is deleted outright: its
// emptiness was checked), or a non-directory in keep is kept as an
// orphan. It reports what was removed. The caller writes prec.
func (t *txn) dropEntry(prec *dfspb.InodeRecord, parent layout.ID, name string, d dirent, keep keepSet) (*dfspb.RemovedInode, error) {
	if err := t.deleteDirent(parent, name); err != nil {
		return nil, err
	}
	isDir := d.typ == dfspb.FileType_FILE_TYPE_DIR
	if isDir && prec.Attr.Nlink > 2 {
		prec.Attr.Nlink--
	}
	rm := &dfspb.RemovedInode{Id: d.child[:], Type: d.typ, Locator: d.locator[:]}
	rec, err := t.inodeOrNil(d.child)
	if err != nil || rec == nil {
		return rm, err
	}
	rm.Local, rm.Size, rm.Chunked = true, rec.Attr.Size, rec.Attr.Chunked
	if !isDir && rec.Attr.Nlink > 1 {
		rec.Attr.Nlink--
		rm.Nlink = rec.Attr.Nlink
		t.touch(rec.Attr, false)
		return rm, t.putInode(rec)
	}
	if !isDir && keep.has(d.child) {
		t.orphan(rec)
		rm.Orphan = true
		return rm, t.putInode(rec)
	}
	return rm, t.deleteInode(d.child)
}

// orphan turns a non-directory that lost its last link into an orphan
// (nlink 0, kept until DropInode). The caller writes rec.
func (t *txn) orphan(rec *dfspb.InodeRecord) {
	rec.Attr.Nlink = 0
	rec.Orphan = true
	t.touch(rec.Attr, false)
}

// linkTarget loads the local inode that LinkCmd.new_link adds a link to.
func (t *txn) linkTarget(child layout.ID, typ dfspb.FileType) (*dfspb.InodeRecord, error) {
	if typ == dfspb.FileType_FILE_TYPE_DIR {
		return nil, fmt.Errorf("%w: hard link to directory %s", ErrInvalid, child)
	}
	rec, err := t.inode(child)
	if err != nil {
		return nil, err
	}
	switch {
	case rec.Orphan:
		return nil, fmt.Errorf("%w: inode %s has no links left", ErrNotFound, child)
	case rec.Attr.Type != typ:
		return nil, fmt.Errorf("%w: inode %s is a %v, not a %v", ErrInvalid, child, rec.Attr.Type, typ)
	}
	return rec, nil
}

// entryArgs checks the fields that name an entry to make under parent
// (Link, SwapEntry): ids, name, type, and that the child is not parent.
func entryArgs(parentB []byte, name string, childB, locatorB []byte, typ dfspb.FileType) (parent, child, locator layout.ID, err error) {
	if parent, err = parseID("parent", parentB); err != nil {
		return
	}
	if err = checkName(name); err != nil {
		return
	}
	if child, err = parseID("child", childB); err != nil {
		return
	}
	if locator, err = parseID("locator", locatorB); err != nil {
		return
	}
	switch {
	case !validType(typ):
		err = fmt.Errorf("%w: type %v", ErrInvalid, typ)
	case child == parent:
		err = fmt.Errorf("%w: %s under itself", ErrInvalid, child)
	}
	return
}

func (t *txn) link(c *dfspb.LinkCmd) (*dfspb.StoreResult, error) {
	parent, child, locator, err := entryArgs(c.Parent, c.Name, c.Child, c.Locator, c.ChildType)
	if err != nil {
		return nil, err
	}
	prec, err := t.dirForAdd(parent)
	if err != nil {
		return nil, err
	}
	nd := dirent{typ: c.ChildType, child: child, locator: locator}
	isDir := c.ChildType == dfspb.FileType_FILE_TYPE_DIR
	old, found, err := t.dirent(parent, c.Name)
	if err != nil {
		return nil, err
	}
	if found && old.child == child {
		de := old.proto(c.Name) // a retry
		de.Attr, err = t.localAttr(child)
		return &dfspb.StoreResult{Dirent: de, Parent: prec.Attr, Existed: true}, err
	}
	var crec *dfspb.InodeRecord
	if c.NewLink {
		if crec, err = t.linkTarget(child, c.ChildType); err != nil {
			return nil, err
		}
	}
	if found {
		if c.Exclusive {
			return nil, fmt.Errorf("%w: %q in %s", ErrExists, c.Name, parent)
		}
		if err := t.checkReplace(old, isDir, c.TargetSealed, nil); err != nil {
			return nil, err
		}
	}

	res := &dfspb.StoreResult{}
	if found {
		if res.Removed, err = t.dropEntry(prec, parent, c.Name, old, keepSet{c.KeepOpen, c.KeepIds}); err != nil {
			return nil, err
		}
	}
	if err := t.putDirent(parent, c.Name, nd); err != nil {
		return nil, err
	}
	if crec != nil {
		crec.Attr.Nlink++
		t.touch(crec.Attr, false)
		if err := t.putInode(crec); err != nil {
			return nil, err
		}
	}
	if isDir {
		prec.Attr.Nlink++
	}
	t.touch(prec.Attr, true)
	if err := t.putInode(prec); err != nil {
		return nil, err
	}
	res.Dirent = nd.proto(c.Name)
	res.Dirent.Attr, err = t.localAttr(child)
	res.Parent = prec.Attr
	return res, err
}

func (t *txn) unlink(c *dfspb.UnlinkCmd) (*dfspb.StoreResult, error) {
	parent, err := parseID("parent", c.Parent)
	if err != nil {
		return nil, err
	}
	if err := checkName(c.Name); err != nil {
		return nil, err
	}
	prec, err := t.dirOf(parent)
	if err != nil {
		return nil, err
	}
	d, found, err := t.dirent(parent, c.Name)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: %q in %s", ErrNotFound, c.Name, parent)
	}
	if len(c.ExpectChild) > 0 {
		want, err := parseID("expect_child", c.ExpectChild)
		if err != nil {
			return nil, err
		}
		if d.child != want {
			return nil, fmt.Errorf("%w: %q in %s names %s now, not %s", ErrNotFound, c.Name, parent, d.child, want)
		}
	}
	isDir := d.typ == dfspb.FileType_FILE_TYPE_DIR
	switch {
	case isDir && !c.ExpectDir:
		return nil, fmt.Errorf("%w: %q", ErrIsDir, c.Name)
	case !isDir && c.ExpectDir:
		return nil, fmt.Errorf("%w: %q", ErrNotDir, c.Name)
	case c.KeepInode:
		if err := t.deleteDirent(parent, c.Name); err != nil {
			return nil, err
		}
		if isDir && prec.Attr.Nlink > 2 {
			prec.Attr.Nlink--
		}
		t.touch(prec.Attr, true)
		if err := t.putInode(prec); err != nil {
			return nil, err
		}
		rm := &dfspb.RemovedInode{Id: d.child[:], Type: d.typ, Locator: d.locator[:]}
		return &dfspb.StoreResult{Removed: rm, Parent: prec.Attr}, nil
	case isDir:
		// The client sealed a remote directory before this; a local
		// one is checked here.
		if err := t.checkReplace(d, true, true, nil); err != nil {
			return nil, err
		}
	}
	rm, err := t.dropEntry(prec, parent, c.Name, d, keepSet{c.KeepOpen, c.KeepIds})
	if err != nil {
		return nil, err
	}
	t.touch(prec.Attr, true)
	if err := t.putInode(prec); err != nil {
		return nil, err
	}
	return &dfspb.StoreResult{Removed: rm, Parent: prec.Attr}, nil
}

func (t *txn) sealDir(idBytes []byte, seal bool) (*dfspb.StoreResult, error) {
	id, err := parseID("dir", idBytes)
	if err != nil {
		return nil, err
	}
	rec, err := t.dirOf(id)
	if err != nil {
		return nil, err
	}
	if seal {
		empty, err := dirEmpty(t.b, id)
		if err != nil {
			return nil, err
		}
		if !empty {
			return nil, fmt.Errorf("%w: %s", ErrNotEmpty, id)
		}
	}
	if rec.Sealed != seal {
		rec.Sealed = seal
		if err := t.putInode(rec); err != nil {
			return nil, err
		}
	}
	return &dfspb.StoreResult{Attr: rec.Attr}, nil
}

func (t *txn) dropInode(c *dfspb.DropInodeCmd) (*dfspb.StoreResult, error) {
	id, err := parseID("id", c.Id)
	if err != nil {
		return nil, err
	}
	rec, err := t.inode(id)
	if err != nil {
		return nil, err
	}
	if rec.Attr.Type == dfspb.FileType_FILE_TYPE_DIR {
		empty, err := dirEmpty(t.b, id)
		if err != nil {
			return nil, err
		}
		if !empty {
			return nil, fmt.Errorf("%w: %s", ErrNotEmpty, id)
		}
	}
	if err := t.deleteInode(id); err != nil {
		return nil, err
	}
	rm := &dfspb.RemovedInode{Id: id[:], Type: rec.Attr.Type, Locator: id[:], Local: true, Size: rec.Attr.Size, Chunked: rec.Attr.Chunked}
	return &dfspb.StoreResult{Removed: rm}, nil
}

func (t *txn) adjustLink(c *dfspb.AdjustLinkCmd) (*dfspb.StoreResult, error) {
	id, err := parseID("id", c.Id)
	if err != nil {
		return nil, err
	}
	if len(c.OpId) != 0 && len(c.OpId) != idLen {
		return nil, fmt.Errorf("%w: op_id has %d bytes, want %d", ErrInvalid, len(c.OpId), idLen)
	}
	rec, err := t.inode(id)
	if err != nil {
		return nil, err
	}
	if len(c.OpId) != 0 {
		_, seen, err := t.seenOp(id, c.OpId)
		if err != nil {
			return nil, err
		}
		if seen {
			return &dfspb.StoreResult{Attr: rec.Attr, Repeated: true}, nil
		}
	}
	if rec.Orphan && c.Delta > 0 {
		return nil, fmt.Errorf("%w: inode %s has no links left", ErrNotFound, id)
	}
	n := int64(rec.Attr.Nlink) + int64(c.Delta)
	if n < 0 || n > 1<<31 {
		return nil, fmt.Errorf("%w: nlink %d%+d", ErrInvalid, rec.Attr.Nlink, c.Delta)
	}
	rec.Attr.Nlink = uint32(n)
	if n == 0 && rec.Attr.Type != dfspb.FileType_FILE_TYPE_DIR {
		rm := &dfspb.RemovedInode{Id: id[:], Type: rec.Attr.Type, Local: true, Size: rec.Attr.Size, Chunked: rec.Attr.Chunked}
		if !c.KeepOpen {
			// The op ids go with the inode: a retry finds it gone.
			if err := t.deleteInode(id); err != nil {
				return nil, err
			}
			return &dfspb.StoreResult{Removed: rm}, nil
		}
		t.orphan(rec)
		rm.Orphan = true
		if err := t.putInode(rec); err != nil {
			return nil, err
		}
		return &dfspb.StoreResult{Removed: rm, Attr: rec.Attr}, t.rememberOpIf(id, c.OpId)
	}
	t.touch(rec.Attr, false)
	if err := t.putInode(rec); err != nil {
		return nil, err
	}
	return &dfspb.StoreResult{Attr: rec.Attr}, t.rememberOpIf(id, c.OpId)
}

// rememberOpIf is rememberOp for an optional op id.
func (t *txn) rememberOpIf(id layout.ID, opID []byte) error {
	if len(opID) == 0 {
		return nil
	}
	return t.rememberOp(id, opID, 0)
}

// Rename flag bits.
const (
	renameNoReplace = uint32(dfspb.RenameFlag_RENAME_FLAG_NOREPLACE)
	renameExchange  = uint32(dfspb.RenameFlag_RENAME_FLAG_EXCHANGE)
)

func (t *txn) rename(c *dfspb.RenameCmd) (*dfspb.StoreResult, error) {
	op, err := parseID("old_parent", c.OldParent)
	if err != nil {
		return nil, err
	}
	np, err := parseID("new_parent", c.NewParent)
	if err != nil {
		return nil, err
	}
	for _, n := range []string{c.OldName, c.NewName} {
		if err := checkName(n); err != nil {
			return nil, err
		}
	}
	if c.Flags&^(renameNoReplace|renameExchange) != 0 || c.Flags == renameNoReplace|renameExchange {
		return nil, fmt.Errorf("%w: rename flags %#x", ErrInvalid, c.Flags)
	}
	orec, err := t.dirOf(op)
	if err != nil {
		return nil, err
	}
	nrec := orec
	if np != op {
		if nrec, err = t.dirForAdd(np); err != nil {
			return nil, err
		}
	} else if orec.Sealed {
		return nil, fmt.Errorf("%w: %s", ErrStale, op)
	}
	src, found, err := t.dirent(op, c.OldName)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: %q in %s", ErrNotFound, c.OldName, op)
	}
	if src.child == np || src.child == op {
		return nil, fmt.Errorf("%w: renaming %s into itself", ErrInvalid, src.child)
	}
	if op == np && c.OldName == c.NewName {
		return &dfspb.StoreResult{Dirent: src.proto(c.NewName)}, nil
	}
	dst, exists, err := t.dirent(np, c.NewName)
	if err != nil {
		return nil, err
	}
	srcDir := src.typ == dfspb.FileType_FILE_TYPE_DIR
	exchange := c.Flags&renameExchange != 0
	switch {
	case exchange && !exists:
		return nil, fmt.Errorf("%w: %q in %s", ErrNotFound, c.NewName, np)
	case exchange:
		if dst.child == op || dst.child == np {
			return nil, fmt.Errorf("%w: exchanging %s with its parent", ErrInvalid, dst.child)
		}
	case exists && c.Flags&renameNoReplace != 0:
		return nil, fmt.Errorf("%w: %q in %s", ErrExists, c.NewName, np)
	case exists && dst.child == src.child:
		// Both names are links to the same inode: POSIX says do nothing.
		return &dfspb.StoreResult{Dirent: dst.proto(c.NewName)}, nil
	case exists:
		if err := t.checkReplace(dst, srcDir, c.TargetSealed, c.SealedTarget); err != nil {
			return nil, err
		}
	}

	res := &dfspb.StoreResult{}
	if exchange {
		if err := t.putDirent(op, c.OldName, dst); err != nil {
			return nil, err
		}
		dstDir := dst.typ == dfspb.FileType_FILE_TYPE_DIR
		if op != np && srcDir != dstDir {
			if srcDir {
				orec.Attr.Nlink--
				nrec.Attr.Nlink++
			} else {
				orec.Attr.Nlink++
				nrec.Attr.Nlink--
			}
		}
		if err := t.touchChild(dst.child); err != nil {
			return nil, err
		}
	} else {
		if exists {
			if res.Removed, err = t.dropEntry(nrec, np, c.NewName, dst, keepSet{c.KeepOpen, c.KeepIds}); err != nil {
				return nil, err
			}
		}
		if err := t.deleteDirent(op, c.OldName); err != nil {
			return nil, err
		}
		if srcDir && op != np {
			orec.Attr.Nlink--
			nrec.Attr.Nlink++
		}
	}
	if err := t.putDirent(np, c.NewName, src); err != nil {
		return nil, err
	}
	if err := t.touchChild(src.child); err != nil {
		return nil, err
	}
	t.touch(orec.Attr, true)
	if err := t.putInode(orec); err != nil {
		return nil, err
	}
	if np != op {
		t.touch(nrec.Attr, true)
		if err := t.putInode(nrec); err != nil {
			return nil, err
		}
	}
	res.Dirent = src.proto(c.NewName)
	if res.Dirent.Attr, err = t.localAttr(src.child); err != nil {
		return nil, err
	}
	res.Parent = proto.Clone(nrec.Attr).(*dfspb.Attr)
	return res, nil
}

// touchChild updates the ctime of a renamed inode if it is local.
func (t *txn) touchChild(id layout.ID) error {
	rec, err := t.inodeOrNil(id)
	if rec == nil || err != nil {
		return err
	}
	t.touch(rec.Attr, false)
	return t.putInode(rec)
}
