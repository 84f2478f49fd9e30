package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// Rename flags (renameat2(2)); the values are those of the kernel.
const (
	RenameNoReplace = uint32(dfspb.RenameFlag_RENAME_FLAG_NOREPLACE)
	RenameExchange  = uint32(dfspb.RenameFlag_RENAME_FLAG_EXCHANGE)
)

// Rename moves oldDir/oldName to newDir/newName, replacing a target as
// rename(2) does (a directory target must be empty), or as renameat2(2)
// with RenameNoReplace or RenameExchange.
//
// When both directories' entries live on one subvolume this is one atomic
// Raft command. Otherwise the entry is linked under the new name first and
// then unlinked under the old one (its inode stays where it is): a crash in
// between leaves both names, never none. RenameExchange across subvolumes
// is not supported (ErrNotSupported).
func (v *Volume) Rename(ctx context.Context, oldDir Node, oldName string, newDir Node, newName string, flags uint32) error {
	if err := checkName(oldName); err != nil {
		return err
	}
	if err := checkName(newName); err != nil {
		return err
	}
	if flags&^(RenameNoReplace|RenameExchange) != 0 || flags == RenameNoReplace|RenameExchange {
		return fmt.Errorf("%w: rename flags %#x", ErrInvalid, flags)
	}
	if v.cfg.ReadOnly {
		return fmt.Errorf("%w: rename", ErrReadOnly)
	}
	if v.subOfDir(oldDir.ID) == v.subOfDir(newDir.ID) {
		return v.renameLocal(ctx, oldDir, oldName, newDir, newName, flags)
	}
	if flags&RenameExchange != 0 {
		return fmt.Errorf("%w: exchange across subvolumes", ErrNotSupported)
	}
	return v.renameAcross(ctx, oldDir, oldName, newDir, newName, flags)
}

// sealTarget seals the directory target of a replacing rename when its
// inode is not in the store of newDir's entries (which cannot check its
// emptiness itself). It returns the sealed directory, or nil when nothing
// needed sealing. A source that cannot replace the target fails here
// (EISDIR, ENOTDIR) without sealing anything.
func (v *Volume) sealTarget(ctx context.Context, oldDir Node, oldName string, newDir Node, newName string) (*Node, error) {
	tgt, _, err := v.lookupEntry(ctx, newDir, newName)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !tgt.IsDir() || v.subOfDir(tgt.ID) == v.subOfDir(newDir.ID) {
		return nil, nil
	}
	src, _, err := v.lookupEntry(ctx, oldDir, oldName)
	if err != nil {
		return nil, err
	}
	switch {
	case src.ID == tgt.ID:
		return nil, nil
	case !src.IsDir():
		return nil, fmt.Errorf("rename: target %q: %w", newName, ErrIsDir)
	}
	seal := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SealDir{SealDir: &dfspb.SealDirCmd{Dir: tgt.ID[:]}}}
	if _, _, err := v.mutate(ctx, v.subOfDir(tgt.ID), "rename", seal); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil // inode already gone: nothing to check
		}
		return nil, err
	}
	return &tgt, nil
}

func (v *Volume) renameLocal(ctx context.Context, oldDir Node, oldName string, newDir Node, newName string, flags uint32) error {
	var sealed *Node
	if flags == 0 {
		var err error
		if sealed, err = v.sealTarget(ctx, oldDir, oldName, newDir, newName); err != nil {
			return err
		}
		if sealed != nil {
			ctx = context.WithoutCancel(ctx)
		}
	}
	all, ids := v.keepOpen()
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Rename{Rename: &dfspb.RenameCmd{
		OldParent: oldDir.ID[:], OldName: oldName, NewParent: newDir.ID[:], NewName: newName,
		Flags: flags, TargetSealed: sealed != nil, KeepOpen: all, KeepIds: ids,
	}}}
	res, amb, err := v.mutate(ctx, v.subOfDir(oldDir.ID), "rename", cmd)
	if amb && errors.Is(err, ErrNotFound) {
		// The attempt whose answer was lost moved it.
		v.logger.Debug("rename: source gone after an ambiguous attempt", "name", oldName)
		err, res = nil, nil
	}
	if err != nil {
		if sealed != nil {
			v.unseal(ctx, *sealed)
		}
		return err
	}
	ctx = context.WithoutCancel(ctx)
	if sealed != nil {
		v.dropInode(ctx, *sealed)
	}
	v.finishRemoved(ctx, res.GetRemoved())
	return nil
}

// renameAcross moves an entry between directories whose entries live on
// different subvolumes: Link under the new name (replacing a target), then
// Unlink the old name keeping the inode.
func (v *Volume) renameAcross(ctx context.Context, oldDir Node, oldName string, newDir Node, newName string, flags uint32) error {
	src, _, err := v.lookupEntry(ctx, oldDir, oldName)
	if err != nil {
		return err
	}
	// Remove the old entry only if it still names the inode just linked.
	unlink := &dfspb.UnlinkCmd{Parent: oldDir.ID[:], Name: oldName, ExpectDir: src.IsDir(), KeepInode: true, ExpectChild: src.ID[:]}
	var sealed *Node
	if flags&RenameNoReplace == 0 {
		if sealed, err = v.sealTarget(ctx, oldDir, oldName, newDir, newName); err != nil {
			return err
		}
	}
	ctx = context.WithoutCancel(ctx)
	all, ids := v.keepOpen()
	link := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Link{Link: &dfspb.LinkCmd{
		Parent: newDir.ID[:], Name: newName, Child: src.ID[:], ChildType: src.Type, Locator: src.Locator[:],
		Exclusive: flags&RenameNoReplace != 0, TargetSealed: sealed != nil, KeepOpen: all, KeepIds: ids,
	}}}
	// A Link retried after an ambiguous failure finds its own entry and
	// succeeds, so an error is a real failure.
	res, _, err := v.mutate(ctx, v.subOfDir(newDir.ID), "rename", link)
	if err != nil {
		if sealed != nil {
			v.unseal(ctx, *sealed)
		}
		return err
	}
	_, amb, err := v.mutate(ctx, v.subOfDir(oldDir.ID), "rename", &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Unlink{Unlink: unlink}})
	if err != nil && !(amb && errors.Is(err, ErrNotFound)) {
		// Both names now lead to the inode; fsck reconciles the link
		// count. Report the failure: the old name is still there.
		v.logger.Error("rename across subvolumes: linked under the new name but could not unlink the old one",
			"old", oldName, "new", newName, "id", src.ID, "err", err)
		return err
	}
	if sealed != nil {
		v.dropInode(ctx, *sealed)
	}
	v.finishRemoved(ctx, res.GetRemoved())
	return nil
}
