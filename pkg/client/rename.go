package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/dfsproject/dfs/pkg/layout"
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
// Raft command. Otherwise it is a transaction over the two subvolumes'
// Raft groups (renameAcross): done entirely or not at all, also when a
// leader crashes mid-way; a target is replaced atomically, and once
// Rename returns only the new name exists. RenameExchange across
// subvolumes is a transaction too (exchangeAcross).
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
		return v.exchangeAcross(ctx, oldDir, oldName, newDir, newName)
	}
	return v.renameAcross(ctx, oldDir, oldName, newDir, newName, flags)
}

// renameLocal renames within one subvolume's store: one Raft command,
// whose apply resolves both names. Nothing is looked up first: the store
// checks the source, the target, their types and a local directory
// target's emptiness itself. The one case it cannot decide is a plain
// rename over a directory whose inode lives on another subvolume (only
// that subvolume can check that it is empty): the store refuses it
// (ErrNotEmpty, the target "not sealed"), and only then is the target
// looked up, sealed on its own subvolume and the rename sent again
// (renameSealed). A rename that fails for any other reason costs the one
// command too.
func (v *Volume) renameLocal(ctx context.Context, oldDir Node, oldName string, newDir Node, newName string, flags uint32) error {
	err := v.renameCmd(ctx, oldDir, oldName, newDir, newName, flags, nil)
	if flags != 0 || !errors.Is(err, ErrNotEmpty) {
		return err
	}
	return v.renameSealed(ctx, oldDir, oldName, newDir, newName, err)
}

// renameSealed is renameLocal after the store refused a directory
// target as not empty (first). Only when the target is a directory whose
// inode is on another subvolume is it sealed there (which fails if it is
// not empty) and the rename sent again, saying so; the sealed directory
// is dropped once replaced, unsealed if the rename fails. A local target
// directory gets first. A target that is gone or no longer a directory
// (changed by another client since) gets one plain attempt more.
func (v *Volume) renameSealed(ctx context.Context, oldDir Node, oldName string, newDir Node, newName string, first error) error {
	tgt, _, err := v.lookupEntry(ctx, newDir, newName)
	switch {
	case errors.Is(err, ErrNotFound) || err == nil && !tgt.IsDir():
		return v.renameCmd(ctx, oldDir, oldName, newDir, newName, 0, nil)
	case err != nil:
		return err
	case v.subOfDir(tgt.ID) == v.subOfDir(newDir.ID):
		return first
	}
	src, _, err := v.lookupEntry(ctx, oldDir, oldName)
	switch {
	case err != nil:
		return err
	case src.ID == tgt.ID:
		return nil // two names of one directory: rename(2) does nothing
	case !src.IsDir():
		return fmt.Errorf("rename: target %q: %w", newName, ErrIsDir)
	}
	seal := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SealDir{SealDir: &dfspb.SealDirCmd{Dir: tgt.ID[:]}}}
	if _, _, err := v.mutate(ctx, v.subOfDir(tgt.ID), "rename", seal); err != nil {
		if errors.Is(err, ErrNotFound) {
			// The inode went, and the name may hold another directory
			// by now: nothing was sealed, the store checks the target.
			return v.renameCmd(ctx, oldDir, oldName, newDir, newName, 0, nil)
		}
		return err
	}
	// Sealed: finish whatever the caller does.
	ctx = context.WithoutCancel(ctx)
	if err := v.renameCmd(ctx, oldDir, oldName, newDir, newName, 0, tgt.ID[:]); err != nil {
		v.unseal(ctx, tgt)
		return err
	}
	v.dropInode(ctx, tgt)
	return nil
}

// renameCmd sends the Rename command to the store of oldDir's entries
// (which holds newDir's too) and finishes what it removed (a replaced
// target). sealed is the id of the directory target this client sealed on
// its own subvolume (nil: none); the store refuses the rename if the name
// leads to another directory by then.
func (v *Volume) renameCmd(ctx context.Context, oldDir Node, oldName string, newDir Node, newName string, flags uint32, sealed []byte) error {
	all, ids := v.keepOpen()
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Rename{Rename: &dfspb.RenameCmd{
		OldParent: oldDir.ID[:], OldName: oldName, NewParent: newDir.ID[:], NewName: newName,
		Flags: flags, TargetSealed: sealed != nil, SealedTarget: sealed, KeepOpen: all, KeepIds: ids,
	}}}
	res, amb, err := v.mutate(ctx, v.subOfDir(oldDir.ID), "rename", cmd)
	if amb && errors.Is(err, ErrNotFound) {
		// The attempt whose answer was lost moved it.
		v.logger.Debug("rename: source gone after an ambiguous attempt", "name", oldName)
		err, res = nil, nil
	}
	if err != nil {
		return err
	}
	v.finishRemoved(context.WithoutCancel(ctx), res.GetRemoved())
	return nil
}

// renameAcross moves an entry between directories whose entries live on
// different subvolumes, as one transaction coordinated by the leader of
// the source's subvolume (see the package documentation): it links the
// inode under the new name on newDir's subvolume (replacing a target
// atomically there), then removes the old name. A directory target whose
// inode lives on a third subvolume is sealed first (its emptiness is
// checked there) and dropped at the end. The inode never moves.
func (v *Volume) renameAcross(ctx context.Context, oldDir Node, oldName string, newDir Node, newName string, flags uint32) error {
	src, _, err := v.lookupEntry(ctx, oldDir, oldName)
	if err != nil {
		return err
	}
	subA, subB := v.subOfDir(oldDir.ID), v.subOfDir(newDir.ID)
	all, ids := v.keepOpen()
	link := &dfspb.LinkCmd{
		Parent: newDir.ID[:], Name: newName, Child: src.ID[:], ChildType: src.Type, Locator: src.Locator[:],
		Exclusive: flags&RenameNoReplace != 0, KeepOpen: all, KeepIds: ids,
	}
	in := &dfspb.TxnIntent{
		Op:      dfspb.TxnOp_TXN_OP_RENAME,
		Summary: fmt.Sprintf("rename %s/%q -> %s/%q", oldDir.ID, oldName, newDir.ID, newName),
		Locks:   []*dfspb.TxnEntryLock{{Parent: oldDir.ID[:], Name: oldName, ExpectChild: src.ID[:]}},
		Commit: &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Unlink{Unlink: &dfspb.UnlinkCmd{
			Parent: oldDir.ID[:], Name: oldName, ExpectDir: src.IsDir(), KeepInode: true, ExpectChild: src.ID[:],
		}}},
	}
	dropStep := -1 // the after-commit step dropping a replaced file's link, if planned
	if flags&RenameNoReplace == 0 {
		tgt, _, err := v.lookupEntry(ctx, newDir, newName)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		case tgt.ID == src.ID:
			return nil // two names of one file: rename(2) does nothing
		case tgt.IsDir() && !src.IsDir():
			return fmt.Errorf("rename: target %q: %w", newName, ErrIsDir)
		case !tgt.IsDir() && src.IsDir():
			return fmt.Errorf("rename: target %q: %w", newName, ErrNotDir)
		case tgt.IsDir() && v.subOfDir(tgt.ID) != subB:
			// newDir's store cannot check the target's emptiness: seal
			// it on its own subvolume first, drop it once replaced.
			subT := v.subOfDir(tgt.ID)
			in.Prepare = append(in.Prepare, v.txnStep(subT, true,
				&dfspb.StoreCommand{Op: &dfspb.StoreCommand_SealDir{SealDir: &dfspb.SealDirCmd{Dir: tgt.ID[:]}}},
				&dfspb.StoreCommand{Op: &dfspb.StoreCommand_UnsealDir{UnsealDir: &dfspb.UnsealDirCmd{Dir: tgt.ID[:]}}}))
			in.AfterCommit = append(in.AfterCommit, v.txnStep(subT, true,
				&dfspb.StoreCommand{Op: &dfspb.StoreCommand_DropInode{DropInode: &dfspb.DropInodeCmd{Id: tgt.ID[:]}}}, nil))
			link.TargetSealed = true
		case !tgt.IsDir() && v.subOfDir(tgt.Locator) != subB:
			// A file whose record lives on another subvolume than the
			// entry it loses: its link count drops there, in the
			// transaction, if the Link did replace it.
			op := layout.NewID()
			drop := v.txnStep(v.subOfDir(tgt.Locator), true, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_AdjustLink{AdjustLink: &dfspb.AdjustLinkCmd{
				Id: tgt.ID[:], Delta: -1, OpId: op[:], KeepOpen: all || v.isOpen(tgt.ID),
			}}}, nil)
			drop.OnlyIfRemoved = tgt.ID[:]
			in.AfterCommit = append(in.AfterCommit, drop)
			dropStep = len(in.AfterCommit) - 1
		}
	}
	in.Prepare = append(in.Prepare, v.txnStep(subB, false, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Link{Link: link}}, nil))
	out, err := v.runTxn(ctx, subA, "rename", in)
	if err != nil {
		return err
	}
	rs := out.GetResults()
	if len(rs) == 0 {
		return nil
	}
	rm := rs[len(rs)-1].GetRemoved()
	if after := out.GetAfterResults(); dropStep >= 0 && dropStep < len(after) && rm != nil && !rm.Local && bytes.Equal(rm.Id, in.AfterCommit[dropStep].OnlyIfRemoved) {
		// The transaction dropped the link: finish from its answer
		// (chunks, an orphan kept open), if it has one.
		res := after[dropStep]
		if res.GetCode() != dfspb.StoreErrorCode_STORE_ERROR_CODE_OK {
			return nil // dropped by an earlier driver whose answer is lost; fsck finds chunks left
		}
		loc := rm.Locator
		if rm = res.GetRemoved(); rm == nil {
			return nil // links remain
		}
		rm.Locator = loc // AdjustLink does not say
	}
	v.finishRemoved(context.WithoutCancel(ctx), rm)
	return nil
}

// exchangeAcross swaps two entries of directories whose entries live on
// different subvolumes (RENAME_EXCHANGE), as one transaction coordinated
// by oldDir's subvolume: newName is made to name the source on newDir's
// subvolume (SwapEntry, undone if the transaction aborts), then oldName
// the former target. Neither name is ever missing; both inodes stay where
// they are, with their link counts.
func (v *Volume) exchangeAcross(ctx context.Context, oldDir Node, oldName string, newDir Node, newName string) error {
	src, _, err := v.lookupEntry(ctx, oldDir, oldName)
	if err != nil {
		return err
	}
	dst, _, err := v.lookupEntry(ctx, newDir, newName)
	if err != nil {
		return err
	}
	if src.ID == dst.ID {
		return nil
	}
	swap := func(dir Node, name string, from, to Node) *dfspb.StoreCommand {
		return &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SwapEntry{SwapEntry: &dfspb.SwapEntryCmd{
			Parent: dir.ID[:], Name: name, ExpectChild: from.ID[:], Child: to.ID[:], ChildType: to.Type, Locator: to.Locator[:],
		}}}
	}
	in := &dfspb.TxnIntent{
		Op:      dfspb.TxnOp_TXN_OP_EXCHANGE,
		Summary: fmt.Sprintf("exchange %s/%q <-> %s/%q", oldDir.ID, oldName, newDir.ID, newName),
		Locks:   []*dfspb.TxnEntryLock{{Parent: oldDir.ID[:], Name: oldName, ExpectChild: src.ID[:]}},
		Prepare: []*dfspb.TxnStep{v.txnStep(v.subOfDir(newDir.ID), false,
			swap(newDir, newName, dst, src), swap(newDir, newName, src, dst))},
		Commit: swap(oldDir, oldName, src, dst),
	}
	_, err = v.runTxn(ctx, v.subOfDir(oldDir.ID), "rename", in)
	return err
}

// txnStep plans a step of a transaction on subvolume sub: cmd, and undo
// to revert it if the transaction aborts after cmd succeeded.
// notFoundOK counts a NOT_FOUND answer as success.
func (v *Volume) txnStep(sub int, notFoundOK bool, cmd, undo *dfspb.StoreCommand) *dfspb.TxnStep {
	var bricks []string
	if top := v.topo.Load(); sub < len(top.bricks) {
		bricks = top.bricks[sub]
	}
	return &dfspb.TxnStep{Subvolume: uint32(sub), Bricks: bricks, Cmd: cmd, Undo: undo, NotFoundOk: notFoundOK}
}

// runTxn runs the transaction in with subvolume coord as coordinator: one
// RunTxn to its leader, which answers once the transaction is done. A
// retry after an ambiguous failure carries the same transaction id and
// gets the first attempt's outcome. It returns the finished record, or
// the error that aborted the transaction (nothing of it was done).
func (v *Volume) runTxn(ctx context.Context, coord int, what string, in *dfspb.TxnIntent) (*dfspb.TxnIntent, error) {
	id := layout.NewID()
	in.TxnId, in.Subvolume = id[:], uint32(coord)
	req := &dfspb.RunTxnRequest{Intent: in}
	var resp *dfspb.RunTxnResponse
	// Once sent, the transaction finishes whatever the caller does: wait
	// for its outcome rather than report an interrupt for an operation
	// that may be done.
	_, err := v.call(context.WithoutCancel(ctx), coord, what, func(ctx context.Context, c dfspb.BrickServiceClient, o callOpts) error {
		r, err := c.RunTxn(ctx, req, o...)
		resp = r
		return err
	})
	v.postOps.forget() // the transaction changed directories on several subvolumes
	if err != nil {
		return nil, err
	}
	if err := codeError(resp.GetCode(), resp.GetMessage()); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return resp.GetIntent(), nil
}
