package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Node names an inode of the volume: its id, its locator (the directory
// whose subvolume holds the inode record; a directory's locator is its own
// id) and its type. Nodes are values; the same inode always has the same
// Node (an inode never moves).
type Node struct {
	ID      layout.ID
	Locator layout.ID
	Type    dfspb.FileType
}

// IsDir reports whether n is a directory.
func (n Node) IsDir() bool { return n.Type == dfspb.FileType_FILE_TYPE_DIR }

// Root returns the root directory of the volume.
func (v *Volume) Root() Node {
	return Node{ID: layout.RootID, Locator: layout.RootID, Type: dfspb.FileType_FILE_TYPE_DIR}
}

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name string
	Node Node
	Type dfspb.FileType
	// Attr is the child's attributes when its inode record lives with the
	// directory's entries (files created in the directory); nil otherwise
	// (subdirectories, files renamed in from elsewhere).
	Attr *dfspb.Attr
}

// SetAttrMask selects the fields of SetAttrIn to apply.
type SetAttrMask uint32

// SetAttrIn fields.
const (
	SetMode SetAttrMask = 1 << iota
	SetUID
	SetGID
	SetSize
	SetAtime
	SetMtime
	// SetAtimeNow and SetMtimeNow set the time to the leader's clock
	// (UTIME_NOW); they override SetAtime and SetMtime.
	SetAtimeNow
	SetMtimeNow
)

// SetAttrIn is what SetAttr changes.
type SetAttrIn struct {
	Mask         SetAttrMask
	Mode         uint32 // permission bits, 07777
	UID, GID     uint32
	Size         uint64
	Atime, Mtime time.Time
}

// checkName validates a directory entry name before any RPC.
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

// parseID converts a 16-byte id field.
func parseID(b []byte) (layout.ID, error) {
	var id layout.ID
	if len(b) != len(id) {
		return id, fmt.Errorf("%w: id of %d bytes from brick", ErrIO, len(b))
	}
	copy(id[:], b)
	return id, nil
}

// nodeOf converts a dirent.
func nodeOf(d *dfspb.Dirent) (Node, error) {
	id, err := parseID(d.GetId())
	if err != nil {
		return Node{}, err
	}
	loc, err := parseID(d.GetLocator())
	if err != nil {
		return Node{}, err
	}
	return Node{ID: id, Locator: loc, Type: d.GetType()}, nil
}

// lookupEntry reads the entry name of dir: the child's node and its
// attributes when they live with the entry (nil otherwise).
func (v *Volume) lookupEntry(ctx context.Context, dir Node, name string) (Node, *dfspb.Attr, error) {
	if err := checkName(name); err != nil {
		return Node{}, nil, err
	}
	var res *dfspb.StoreResult
	_, err := v.call(ctx, v.subOfDir(dir.ID), "lookup", func(ctx context.Context, c dfspb.BrickServiceClient, o callOpts) error {
		r, err := c.Lookup(ctx, &dfspb.LookupRequest{Parent: dir.ID[:], Name: name}, o...)
		res = r
		return err
	})
	if err != nil {
		return Node{}, nil, err
	}
	if err := codeError(res.GetCode(), res.GetMessage()); err != nil {
		return Node{}, nil, fmt.Errorf("lookup %q: %w", name, err)
	}
	n, err := nodeOf(res.GetDirent())
	if err != nil {
		return Node{}, nil, err
	}
	return n, res.GetDirent().GetAttr(), nil
}

// Lookup finds name in dir and returns the child and its attributes (one
// RPC when the child's inode lives with the entry, two otherwise).
func (v *Volume) Lookup(ctx context.Context, dir Node, name string) (Node, *dfspb.Attr, error) {
	n, attr, err := v.lookupEntry(ctx, dir, name)
	if err != nil {
		return Node{}, nil, err
	}
	if attr == nil {
		attr, err = v.getAttr(ctx, n)
		if errors.Is(err, ErrNotFound) {
			// The entry names an inode that is gone (removed under
			// us, or an orphan entry): report the entry as gone.
			return Node{}, nil, fmt.Errorf("lookup %q: inode %s: %w", name, n.ID, err)
		}
		if err != nil {
			return Node{}, nil, err
		}
	}
	return n, v.overlayOpen(attr), nil
}

// GetAttr returns the attributes of n, as committed on its subvolume and
// overlaid with the size and mtime of data this Volume has written to it
// but not yet flushed.
//
// A file removed while this Volume has it open is kept until its last
// Release and reports nlink 0, as fstat(2) does (see the package
// documentation); if it went anyway (removed by another client), GetAttr
// reports its last known attributes with nlink 0.
func (v *Volume) GetAttr(ctx context.Context, n Node) (*dfspb.Attr, error) {
	a, err := v.getAttr(ctx, n)
	if errors.Is(err, ErrNotFound) {
		if last := v.lastAttr(n.ID); last != nil {
			return last, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return v.overlayOpen(a), nil
}

func (v *Volume) getAttr(ctx context.Context, n Node) (*dfspb.Attr, error) {
	res, err := v.getAttrRPC(ctx, n, false)
	if err != nil {
		return nil, err
	}
	return res.GetAttr(), nil
}

// getAttrRPC asks n's subvolume for its attributes (and, with withData, an
// inline file's data: opendata.go); the answer carries attributes.
func (v *Volume) getAttrRPC(ctx context.Context, n Node, withData bool) (*dfspb.StoreResult, error) {
	var res *dfspb.StoreResult
	_, err := v.call(ctx, v.subOfDir(n.Locator), "getattr", func(ctx context.Context, c dfspb.BrickServiceClient, o callOpts) error {
		r, err := c.GetAttr(ctx, &dfspb.GetAttrRequest{Id: n.ID[:], WithData: withData}, o...)
		res = r
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := codeError(res.GetCode(), res.GetMessage()); err != nil {
		if errors.Is(err, ErrNotFound) {
			// An entry a page of lookups holds may name it
			// (lookupbatch.go).
			v.postOps.batches.drop()
		}
		return nil, fmt.Errorf("getattr: %w", err)
	}
	if res.GetAttr() == nil {
		return nil, fmt.Errorf("%w: getattr answer without attributes", ErrIO)
	}
	return res, nil
}

// SetAttr changes the attributes selected by in.Mask and returns the new
// attributes. A size change truncates or extends the file's data (flushing
// what this Volume buffered for it first); it runs before the other
// changes.
func (v *Volume) SetAttr(ctx context.Context, n Node, in SetAttrIn) (*dfspb.Attr, error) {
	if v.cfg.ReadOnly {
		return nil, fmt.Errorf("%w: setattr", ErrReadOnly)
	}
	var attr *dfspb.Attr
	if in.Mask&SetSize != 0 {
		var err error
		if attr, err = v.truncate(ctx, n, in.Size); err != nil {
			return nil, err
		}
	}
	cmd := &dfspb.SetAttrCmd{Id: n.ID[:]}
	set := func(m SetAttrMask, bit dfspb.SetAttrMask) {
		if in.Mask&m != 0 {
			cmd.Mask |= uint32(bit)
		}
	}
	set(SetMode, dfspb.SetAttrMask_SET_ATTR_MASK_MODE)
	set(SetUID, dfspb.SetAttrMask_SET_ATTR_MASK_UID)
	set(SetGID, dfspb.SetAttrMask_SET_ATTR_MASK_GID)
	set(SetAtimeNow, dfspb.SetAttrMask_SET_ATTR_MASK_ATIME_NOW)
	set(SetMtimeNow, dfspb.SetAttrMask_SET_ATTR_MASK_MTIME_NOW)
	if in.Mask&(SetAtime|SetAtimeNow) == SetAtime {
		cmd.Mask |= uint32(dfspb.SetAttrMask_SET_ATTR_MASK_ATIME)
		cmd.AtimeNs = in.Atime.UnixNano()
	}
	if in.Mask&(SetMtime|SetMtimeNow) == SetMtime {
		cmd.Mask |= uint32(dfspb.SetAttrMask_SET_ATTR_MASK_MTIME)
		cmd.MtimeNs = in.Mtime.UnixNano()
	}
	cmd.Mode, cmd.Uid, cmd.Gid = in.Mode&0o7777, in.UID, in.GID
	if cmd.Mask == 0 {
		if attr == nil {
			return v.GetAttr(ctx, n)
		}
		return v.overlayOpen(attr), nil
	}
	if in.Mask&SetSize == 0 {
		if a := v.deferAttr(n.ID, cmd); a != nil {
			return a, nil
		}
	}
	if in.Mask&SetMtime != 0 {
		// An explicit mtime must not be overwritten by the commit of
		// data written before it.
		if err := v.flushOpen(ctx, n.ID); err != nil {
			return nil, err
		}
	}
	res, _, err := v.mutate(ctx, v.subOfDir(n.Locator), "setattr", &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SetAttr{SetAttr: cmd}})
	if err != nil {
		return nil, err
	}
	return v.overlayOpen(res.GetAttr()), nil
}

// createEntry commits a CreateEntry of a non-directory in dir. A retry
// with the same id succeeds in the store, so it is safe after an ambiguous
// failure.
func (v *Volume) createEntry(ctx context.Context, dir Node, name string, attr *dfspb.Attr, exclusive bool) (Node, *dfspb.Attr, error) {
	if err := checkName(name); err != nil {
		return Node{}, nil, err
	}
	id := layout.NewID()
	attr.Id = id[:]
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_CreateEntry{CreateEntry: &dfspb.CreateEntryCmd{
		Parent: dir.ID[:], Name: name, Attr: attr, Exclusive: exclusive,
	}}}
	res, _, err := v.mutate(ctx, v.subOfDir(dir.ID), "create", cmd)
	if err != nil {
		return Node{}, nil, err
	}
	n, err := nodeOf(res.GetDirent())
	if err != nil {
		return Node{}, nil, err
	}
	a := res.GetAttr()
	if a == nil {
		// An existing entry whose inode lives elsewhere.
		if a, err = v.getAttr(ctx, n); err != nil {
			return Node{}, nil, err
		}
	}
	return n, v.overlayOpen(a), nil
}

// Create creates a regular file in dir, or with exclusive false opens the
// existing entry of that name (which may be of another type: the caller
// checks). One Raft round.
func (v *Volume) Create(ctx context.Context, dir Node, name string, mode, uid, gid uint32, exclusive bool) (Node, *dfspb.Attr, error) {
	return v.createEntry(ctx, dir, name, &dfspb.Attr{Type: dfspb.FileType_FILE_TYPE_FILE, Mode: mode & 0o7777, Uid: uid, Gid: gid}, exclusive)
}

// Mknod creates a special file (FIFO, socket, character or block device;
// rdev for devices) in dir. It fails with ErrExists if name exists.
func (v *Volume) Mknod(ctx context.Context, dir Node, name string, typ dfspb.FileType, mode uint32, rdev uint64, uid, gid uint32) (Node, *dfspb.Attr, error) {
	switch typ {
	case dfspb.FileType_FILE_TYPE_FILE, dfspb.FileType_FILE_TYPE_FIFO, dfspb.FileType_FILE_TYPE_SOCKET,
		dfspb.FileType_FILE_TYPE_CHAR, dfspb.FileType_FILE_TYPE_BLOCK:
	default:
		return Node{}, nil, fmt.Errorf("%w: mknod of a %v", ErrInvalid, typ)
	}
	return v.createEntry(ctx, dir, name, &dfspb.Attr{Type: typ, Mode: mode & 0o7777, Uid: uid, Gid: gid, Rdev: rdev}, true)
}

// Symlink creates a symbolic link to target in dir.
func (v *Volume) Symlink(ctx context.Context, dir Node, name, target string, uid, gid uint32) (Node, *dfspb.Attr, error) {
	if target == "" {
		return Node{}, nil, fmt.Errorf("%w: empty symlink target", ErrInvalid)
	}
	return v.createEntry(ctx, dir, name, &dfspb.Attr{Type: dfspb.FileType_FILE_TYPE_SYMLINK, Mode: 0o777, Uid: uid, Gid: gid, Target: target}, true)
}

// Readlink returns the target of a symbolic link.
func (v *Volume) Readlink(ctx context.Context, n Node) (string, error) {
	a, err := v.getAttr(ctx, n)
	if err != nil {
		return "", err
	}
	if a.Type != dfspb.FileType_FILE_TYPE_SYMLINK {
		return "", fmt.Errorf("%w: readlink of a %v", ErrInvalid, a.Type)
	}
	return a.Target, nil
}

// modeSetgid is S_ISGID.
const modeSetgid = 0o2000

// Mkdir creates a directory in dir: its inode on its own subvolume, then
// its entry in dir's. If the entry cannot be made the inode is dropped. In
// a setgid directory the new one takes dir's group and the setgid bit
// (files created there take dir's group in the store).
func (v *Volume) Mkdir(ctx context.Context, dir Node, name string, mode, uid, gid uint32) (Node, *dfspb.Attr, error) {
	if err := checkName(name); err != nil {
		return Node{}, nil, err
	}
	// The new directory's inode lives on its own subvolume, which does
	// not hold dir: the setgid rule (the group and the setgid bit of a
	// setgid parent pass to a new subdirectory) is applied here.
	pa, err := v.getAttr(ctx, dir)
	if err != nil {
		return Node{}, nil, err
	}
	if pa.Mode&modeSetgid != 0 {
		gid = pa.Gid
		mode |= modeSetgid
	}
	id := layout.NewID()
	n := Node{ID: id, Locator: id, Type: dfspb.FileType_FILE_TYPE_DIR}
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_CreateInode{CreateInode: &dfspb.CreateInodeCmd{
		Attr: &dfspb.Attr{Id: id[:], Type: dfspb.FileType_FILE_TYPE_DIR, Mode: mode & 0o7777, Uid: uid, Gid: gid},
	}}}
	res, _, err := v.mutate(ctx, v.subOfDir(id), "mkdir", cmd)
	if err != nil {
		return Node{}, nil, err
	}
	attr := res.GetAttr()
	// From here on, finish (or undo) whatever the caller's context does.
	ctx = context.WithoutCancel(ctx)
	link := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Link{Link: &dfspb.LinkCmd{
		Parent: dir.ID[:], Name: name, Child: id[:], ChildType: dfspb.FileType_FILE_TYPE_DIR, Locator: id[:], Exclusive: true,
	}}}
	if _, _, err := v.mutate(ctx, v.subOfDir(dir.ID), "mkdir", link); err != nil {
		// A Link retried after an ambiguous failure finds its own
		// entry and succeeds, so err is a real failure.
		v.dropInode(ctx, n)
		return Node{}, nil, err
	}
	return n, attr, nil
}

// dropInode deletes an inode record (undo of mkdir, end of rmdir); a
// failure leaves an orphan for fsck and is only logged.
func (v *Volume) dropInode(ctx context.Context, n Node) {
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_DropInode{DropInode: &dfspb.DropInodeCmd{Id: n.ID[:]}}}
	if _, _, err := v.mutate(ctx, v.subOfDir(n.Locator), "drop inode", cmd); err != nil && !errors.Is(err, ErrNotFound) {
		v.logger.Warn("could not drop inode; it is an orphan", "id", n.ID, "err", err)
	}
}

// Unlink removes the non-directory name from dir. When that removes the
// last link, the file's chunks are deleted from every subvolume, unless
// this Volume has the file open: then it stays readable and writable
// through its Files (an orphan with nlink 0) until the last Release.
func (v *Volume) Unlink(ctx context.Context, dir Node, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	all, ids := v.keepOpen()
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Unlink{Unlink: &dfspb.UnlinkCmd{Parent: dir.ID[:], Name: name, KeepOpen: all, KeepIds: ids}}}
	res, amb, err := v.mutate(ctx, v.subOfDir(dir.ID), "unlink", cmd)
	if amb && errors.Is(err, ErrNotFound) {
		// The attempt whose answer was lost removed it.
		v.logger.Debug("unlink: entry gone after an ambiguous attempt; chunks of the file may be left for fsck", "name", name)
		return nil
	}
	if err != nil {
		return err
	}
	v.finishRemoved(context.WithoutCancel(ctx), res.GetRemoved())
	return nil
}

// deleteChunks deletes the chunks of file from index from on every
// subvolume, in parallel.
func (v *Volume) deleteChunks(ctx context.Context, file layout.ID, from uint64) error {
	n := v.subvolumes()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for sub := range n {
		wg.Go(func() {
			cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_DeleteChunks{DeleteChunks: &dfspb.DeleteChunksCmd{File: file[:], FromIndex: from}}}
			_, _, errs[sub] = v.mutate(ctx, sub, "delete chunks", cmd)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Rmdir removes the empty directory name from dir. When the directory's
// inode lives on another subvolume than dir's entries, this is a
// transaction coordinated by dir's subvolume: the directory is sealed on
// its own (no entry can be added to it any more; ErrNotEmpty if it has
// any), unlinked, then dropped; all or nothing, also across a crash of
// either leader.
func (v *Volume) Rmdir(ctx context.Context, dir Node, name string) error {
	child, _, err := v.lookupEntry(ctx, dir, name)
	if err != nil {
		return err
	}
	if !child.IsDir() {
		return fmt.Errorf("rmdir %q: %w", name, ErrNotDir)
	}
	subP, subD := v.subOfDir(dir.ID), v.subOfDir(child.ID)
	unlink := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Unlink{Unlink: &dfspb.UnlinkCmd{Parent: dir.ID[:], Name: name, ExpectDir: true}}}
	if subP == subD {
		// One store: it checks emptiness and deletes the inode.
		_, amb, err := v.mutate(ctx, subP, "rmdir", unlink)
		if amb && errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	// A transaction coordinated by dir's subvolume: the entry is held
	// there while the directory is sealed on its own subvolume (which
	// checks that it is empty), then the entry goes and the inode is
	// dropped; if it is not empty, nothing changes.
	in := &dfspb.TxnIntent{
		Op:      dfspb.TxnOp_TXN_OP_RMDIR,
		Summary: fmt.Sprintf("rmdir %s/%q", dir.ID, name),
		Locks:   []*dfspb.TxnEntryLock{{Parent: dir.ID[:], Name: name, ExpectChild: child.ID[:], ExpectDir: true}},
		Prepare: []*dfspb.TxnStep{v.txnStep(subD, true,
			&dfspb.StoreCommand{Op: &dfspb.StoreCommand_SealDir{SealDir: &dfspb.SealDirCmd{Dir: child.ID[:]}}},
			&dfspb.StoreCommand{Op: &dfspb.StoreCommand_UnsealDir{UnsealDir: &dfspb.UnsealDirCmd{Dir: child.ID[:]}}})},
		Commit: &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Unlink{Unlink: &dfspb.UnlinkCmd{
			Parent: dir.ID[:], Name: name, ExpectDir: true, ExpectChild: child.ID[:],
		}}},
		AfterCommit: []*dfspb.TxnStep{v.txnStep(subD, true,
			&dfspb.StoreCommand{Op: &dfspb.StoreCommand_DropInode{DropInode: &dfspb.DropInodeCmd{Id: child.ID[:]}}}, nil)},
	}
	_, err = v.runTxn(ctx, subP, "rmdir", in)
	return err
}

// unseal undoes a SealDir; a failure leaves the directory refusing new
// entries (ESTALE) and is logged.
func (v *Volume) unseal(ctx context.Context, n Node) {
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_UnsealDir{UnsealDir: &dfspb.UnsealDirCmd{Dir: n.ID[:]}}}
	if _, _, err := v.mutate(ctx, v.subOfDir(n.ID), "unseal", cmd); err != nil && !errors.Is(err, ErrNotFound) {
		v.logger.Error("could not unseal a directory; new entries in it will fail with ESTALE", "id", n.ID, "err", err)
	}
}
