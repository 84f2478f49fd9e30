package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Link makes newDir/newName a new name of the non-directory n (link(2))
// and returns n's attributes with the new link count. It fails with
// ErrExists if newName exists (even as a name of n), ErrNotFound if n has
// no links left.
//
// When n's inode lives on the subvolume of newDir's entries this is one
// atomic Link{new_link}. Otherwise it is a transaction coordinated by
// newDir's subvolume: n's link count grows on its own subvolume, then the
// entry is made (or the count taken back); a crash of either leader leaves
// both done or neither.
func (v *Volume) Link(ctx context.Context, n Node, newDir Node, newName string) (*dfspb.Attr, error) {
	if err := checkName(newName); err != nil {
		return nil, err
	}
	if v.cfg.ReadOnly {
		return nil, fmt.Errorf("%w: link", ErrReadOnly)
	}
	if n.IsDir() {
		return nil, fmt.Errorf("link: %w", ErrNotPermitted)
	}
	link := &dfspb.LinkCmd{
		Parent: newDir.ID[:], Name: newName, Child: n.ID[:], ChildType: n.Type, Locator: n.Locator[:], Exclusive: true,
	}
	subD, subI := v.subOfDir(newDir.ID), v.subOfDir(n.Locator)
	if subD == subI {
		link.NewLink = true
		res, amb, err := v.mutate(ctx, subD, "link", &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Link{Link: link}})
		if err != nil {
			return nil, err
		}
		if res.GetExisted() && !amb {
			// Not our retry: newName was already a link to n.
			return nil, fmt.Errorf("link %q: %w", newName, ErrExists)
		}
		attr := res.GetDirent().GetAttr()
		if attr == nil {
			return v.GetAttr(ctx, n)
		}
		return v.overlayOpen(attr), nil
	}
	// A transaction coordinated by newDir's subvolume: the new name is
	// held (and checked absent) there while n's link count grows on its
	// own subvolume, then the entry is made; if it cannot be, the count is
	// taken back.
	up, down := layout.NewID(), layout.NewID()
	in := &dfspb.TxnIntent{
		Op:      dfspb.TxnOp_TXN_OP_LINK,
		Summary: fmt.Sprintf("link %s as %s/%q", n.ID, newDir.ID, newName),
		Locks:   []*dfspb.TxnEntryLock{{Parent: newDir.ID[:], Name: newName, ExpectAbsent: true}},
		Prepare: []*dfspb.TxnStep{v.txnStep(subI, false,
			&dfspb.StoreCommand{Op: &dfspb.StoreCommand_AdjustLink{AdjustLink: &dfspb.AdjustLinkCmd{Id: n.ID[:], Delta: 1, OpId: up[:]}}},
			&dfspb.StoreCommand{Op: &dfspb.StoreCommand_AdjustLink{AdjustLink: &dfspb.AdjustLinkCmd{Id: n.ID[:], Delta: -1, OpId: down[:]}}})},
		Commit: &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Link{Link: link}},
	}
	out, err := v.runTxn(ctx, subD, "link", in)
	if err != nil {
		return nil, err
	}
	var attr *dfspb.Attr
	if rs := out.GetResults(); len(rs) > 0 {
		attr = rs[0].GetAttr()
	}
	if attr == nil {
		return v.GetAttr(ctx, n)
	}
	return v.overlayOpen(attr), nil
}

// adjustLink adds delta to the link count of n on n's subvolume. It
// carries a fresh op id, so it is retried like any command: the store
// applies it once. keepOpen keeps n as an orphan if that removes its last
// link.
func (v *Volume) adjustLink(ctx context.Context, n Node, delta int32, keepOpen bool) (*dfspb.StoreResult, error) {
	op := layout.NewID()
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_AdjustLink{AdjustLink: &dfspb.AdjustLinkCmd{
		Id: n.ID[:], Delta: delta, OpId: op[:], KeepOpen: keepOpen,
	}}}
	res, amb, err := v.mutate(ctx, v.subOfDir(n.Locator), "adjust link", cmd)
	if amb && delta < 0 && errors.Is(err, ErrNotFound) {
		// The attempt whose answer was lost removed the last link and
		// the inode with it (its op id with it). Its answer, whether
		// the file had chunks, is lost: say so, and the caller deletes
		// chunks that may not exist.
		return &dfspb.StoreResult{Removed: &dfspb.RemovedInode{
			Id: n.ID[:], Type: n.Type, Locator: n.Locator[:], Local: true, Chunked: true,
		}}, nil
	}
	return res, err
}

// maxKeepIDs is how many open files a removal names in keep_ids; with
// more open, it asks to keep any file that loses its last link
// (keep_open), and files that are not open here are dropped right after.
const maxKeepIDs = 32

// keepOpen returns what a removal asks the store to keep if it loses its
// last link: the files open through this Volume (keep_ids), or all of them
// (keep_open) when there are too many to name.
func (v *Volume) keepOpen() (all bool, ids [][]byte) {
	v.openMu.Lock()
	defer v.openMu.Unlock()
	if len(v.open) > maxKeepIDs {
		return true, nil
	}
	for id := range v.open {
		ids = append(ids, append([]byte(nil), id[:]...))
	}
	return false, ids
}

// isOpen reports whether a File of id is open through this Volume.
func (v *Volume) isOpen(id layout.ID) bool {
	v.openMu.Lock()
	defer v.openMu.Unlock()
	return v.open[id] != nil
}

// finishRemoved completes the removal of an entry elsewhere: it drops a
// link in the inode's own store when the inode was not local to the
// entry's, and deletes a file's chunks on every subvolume once no link is
// left. A file kept as an orphan (keep_open, keep_ids) because this
// Volume has it open is dropped at its last Release; one this Volume does
// not have open (any more) is dropped at once. Failures leave orphans for
// fsck and are logged.
func (v *Volume) finishRemoved(ctx context.Context, rm *dfspb.RemovedInode) {
	if rm == nil || rm.Type == dfspb.FileType_FILE_TYPE_DIR {
		return
	}
	id, err := parseID(rm.Id)
	if err != nil {
		return
	}
	loc, err := parseID(rm.Locator)
	if err != nil {
		return
	}
	n := Node{ID: id, Locator: loc, Type: rm.Type}
	if !rm.Local {
		res, err := v.adjustLink(ctx, n, -1, v.isOpen(id))
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				v.logger.Warn("could not drop a link of a removed file; fsck will find it", "id", id, "err", err)
			}
			return
		}
		if rm = res.GetRemoved(); rm == nil {
			return // links remain
		}
	}
	if rm.Nlink != 0 {
		return
	}
	if rm.Orphan {
		if v.markOrphan(id) {
			return // dropped at the last Release
		}
		v.dropOrphan(ctx, n)
		return
	}
	if rm.Chunked {
		v.forgetOpen(id)
		if err := v.deleteChunks(ctx, id, 0); err != nil {
			v.logger.Warn("could not delete the chunks of a removed file; fsck will find them", "id", id, "err", err)
		}
	}
}

// markOrphan records that the open file id has lost its last link, so
// that its last Release drops it. It reports false if id is not open (any
// more).
func (v *Volume) markOrphan(id layout.ID) bool {
	v.openMu.Lock()
	defer v.openMu.Unlock()
	st := v.open[id]
	if st == nil {
		return false
	}
	st.orphan = true
	return true
}

// dropOrphan deletes a file kept after its last link went (DropInode),
// and its chunks. Failures leave it for fsck and are logged.
func (v *Volume) dropOrphan(ctx context.Context, n Node) {
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_DropInode{DropInode: &dfspb.DropInodeCmd{Id: n.ID[:]}}}
	res, amb, err := v.mutate(ctx, v.subOfDir(n.Locator), "drop orphan", cmd)
	chunked := res.GetRemoved().GetChunked()
	switch {
	case amb && errors.Is(err, ErrNotFound):
		chunked = true // the lost answer said whether; delete to be sure
	case errors.Is(err, ErrNotFound):
		return
	case err != nil:
		v.logger.Warn("could not drop a removed file at its last close; it is an orphan for fsck", "id", n.ID, "err", err)
		return
	}
	if chunked {
		if err := v.deleteChunks(ctx, n.ID, 0); err != nil {
			v.logger.Warn("could not delete the chunks of a removed file; fsck will find them", "id", n.ID, "err", err)
		}
	}
}
