package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Transactions across subvolumes (see TxnIntent in proto/store.proto and
// brick/txn.go, which drives them). The store's part is the records:
//
//   - 'T' + txn id -> TxnIntent: a transaction this store coordinates,
//     from TxnBegin to TxnEnd;
//   - 'D' + txn id -> TxnIntent: one that is DONE, until purged
//     (TxnEnd{purge}), so that a client's retry gets its outcome.
//   - 'L' + parent id + name -> txn id: an entry held by a PREPARING
//     transaction; namespace commands touching it fail with ErrStale.
//   - 'X' + txn id + be32 step -> be64 time, StoreResult: the recorded
//     result of a step this store applied for a transaction (coordinated
//     here or elsewhere), until TxnForget.
const (
	prefixTxn     = 'T'
	prefixTxnDone = 'D'
	prefixTxnLock = 'L'
	prefixTxnStep = 'X'
)

func txnKey(id []byte) []byte     { return append([]byte{prefixTxn}, id...) }
func txnDoneKey(id []byte) []byte { return append([]byte{prefixTxnDone}, id...) }

func txnLockKey(parent layout.ID, name string) []byte { return idNameKey(prefixTxnLock, parent, name) }

// txnTombstone is the step number of the record TxnForget leaves.
const txnTombstone = ^uint32(0)

func txnStepKey(id []byte, step uint32) []byte {
	k := append([]byte{prefixTxnStep}, id...)
	return binary.BigEndian.AppendUint32(k, step)
}

// checkTxnID validates a transaction id (16 bytes).
func checkTxnID(id []byte) error {
	if len(id) != idLen {
		return fmt.Errorf("%w: transaction id of %d bytes; ids have %d", ErrInvalid, len(id), idLen)
	}
	return nil
}

// getTxn reads the record of transaction id, pending or DONE.
func getTxn(r pebble.Reader, id []byte) (*dfspb.TxnIntent, bool, error) {
	v, ok, err := getValue(r, txnKey(id))
	if err == nil && !ok {
		v, ok, err = getValue(r, txnDoneKey(id))
	}
	if err != nil || !ok {
		return nil, false, ioErrOrNil(err)
	}
	in := &dfspb.TxnIntent{}
	if err := proto.Unmarshal(v, in); err != nil {
		return nil, false, ioErr(fmt.Errorf("decode transaction %x: %w", id, err))
	}
	return in, true, nil
}

func ioErrOrNil(err error) error {
	if err == nil {
		return nil
	}
	return ioErr(err)
}

// putTxn writes the record of in where its state puts it.
func (t *txn) putTxn(in *dfspb.TxnIntent) error {
	v, err := proto.MarshalOptions{Deterministic: true}.Marshal(in)
	if err != nil {
		return ioErr(err)
	}
	if in.State == dfspb.TxnState_TXN_STATE_DONE {
		if err := t.b.Delete(txnKey(in.TxnId), nil); err != nil {
			return ioErr(err)
		}
		return ioErrOrNil(t.b.Set(txnDoneKey(in.TxnId), v, nil))
	}
	return ioErrOrNil(t.b.Set(txnKey(in.TxnId), v, nil))
}

// entriesOf lists the entries (parent, name) a namespace command creates,
// replaces, moves or removes; nil for other commands.
func entriesOf(cmd *dfspb.StoreCommand) (parents [][]byte, names []string) {
	switch op := cmd.GetOp().(type) {
	case *dfspb.StoreCommand_CreateEntry:
		return [][]byte{op.CreateEntry.GetParent()}, []string{op.CreateEntry.GetName()}
	case *dfspb.StoreCommand_Link:
		return [][]byte{op.Link.GetParent()}, []string{op.Link.GetName()}
	case *dfspb.StoreCommand_Unlink:
		return [][]byte{op.Unlink.GetParent()}, []string{op.Unlink.GetName()}
	case *dfspb.StoreCommand_Rename:
		r := op.Rename
		return [][]byte{r.GetOldParent(), r.GetNewParent()}, []string{r.GetOldName(), r.GetNewName()}
	case *dfspb.StoreCommand_SwapEntry:
		return [][]byte{op.SwapEntry.GetParent()}, []string{op.SwapEntry.GetName()}
	case *dfspb.StoreCommand_TxnStep:
		return entriesOf(op.TxnStep.GetCmd())
	}
	return nil, nil
}

// txnHolder returns the id of the transaction holding an entry cmd
// touches, or nil.
func txnHolder(r pebble.Reader, cmd *dfspb.StoreCommand) ([]byte, error) {
	parents, names := entriesOf(cmd)
	for i, p := range parents {
		if len(p) != idLen {
			continue // the command itself reports the bad id
		}
		v, ok, err := getValue(r, txnLockKey(layout.ID(p), names[i]))
		if err != nil {
			return nil, ioErr(err)
		}
		if ok {
			return v, nil
		}
	}
	return nil, nil
}

// txnGuard fails a command that touches an entry held by a transaction.
func (t *txn) txnGuard(cmd *dfspb.StoreCommand) error {
	if _, ok := cmd.GetOp().(*dfspb.StoreCommand_TxnStep); ok {
		return nil // a recorded step answers as recorded; a new one is guarded as its command
	}
	holder, err := txnHolder(t.b, cmd)
	if err != nil || holder == nil {
		return err
	}
	return fmt.Errorf("%w: the entry is held by transaction %x (a rename, link or rmdir across subvolumes); retry", ErrStale, holder)
}

// isTxnCmd reports whether cmd is one of the transaction commands (which
// a TxnStep may not wrap).
func isTxnCmd(cmd *dfspb.StoreCommand) bool {
	switch cmd.GetOp().(type) {
	case *dfspb.StoreCommand_TxnBegin, *dfspb.StoreCommand_TxnDecide, *dfspb.StoreCommand_TxnEnd,
		*dfspb.StoreCommand_TxnStep, *dfspb.StoreCommand_TxnForget:
		return true
	}
	return false
}

func (t *txn) txnBegin(c *dfspb.TxnBeginCmd) (*dfspb.StoreResult, error) {
	in := c.GetIntent()
	if in == nil {
		return nil, fmt.Errorf("%w: TxnBegin without an intent", ErrInvalid)
	}
	if err := checkTxnID(in.TxnId); err != nil {
		return nil, err
	}
	if in.Commit == nil || in.Commit.GetOp() == nil || isTxnCmd(in.Commit) {
		return nil, fmt.Errorf("%w: transaction %x: commit must be a namespace command", ErrInvalid, in.TxnId)
	}
	for _, s := range append(append([]*dfspb.TxnStep(nil), in.Prepare...), in.AfterCommit...) {
		if s.Cmd == nil || s.Cmd.GetOp() == nil || isTxnCmd(s.Cmd) || (s.Undo != nil && isTxnCmd(s.Undo)) {
			return nil, fmt.Errorf("%w: transaction %x: a step must be a plain command", ErrInvalid, in.TxnId)
		}
	}
	old, found, err := getTxn(t.b, in.TxnId)
	if err != nil {
		return nil, err
	}
	if found {
		return &dfspb.StoreResult{Txn: old, Repeated: true}, nil
	}
	var keys [][]byte
	for _, l := range in.Locks {
		parent, err := parseID("parent", l.Parent)
		if err != nil {
			return nil, err
		}
		if err := checkName(l.Name); err != nil {
			return nil, err
		}
		k := txnLockKey(parent, l.Name)
		holder, held, err := getValue(t.b, k)
		if err != nil {
			return nil, ioErr(err)
		}
		if held {
			return nil, fmt.Errorf("%w: entry %q is held by transaction %x; retry", ErrStale, l.Name, holder)
		}
		d, ok, err := getDirent(t.b, parent, l.Name)
		if err != nil {
			return nil, err
		}
		switch {
		case l.ExpectAbsent && ok:
			return nil, fmt.Errorf("%w: entry %q", ErrExists, l.Name)
		case l.ExpectAbsent:
		case !ok:
			return nil, fmt.Errorf("%w: entry %q", ErrNotFound, l.Name)
		case len(l.ExpectChild) == idLen && !bytes.Equal(d.child[:], l.ExpectChild):
			return nil, fmt.Errorf("%w: entry %q names another inode now", ErrNotFound, l.Name)
		case l.ExpectDir && d.typ != dfspb.FileType_FILE_TYPE_DIR:
			return nil, fmt.Errorf("%w: entry %q", ErrNotDir, l.Name)
		}
		keys = append(keys, k)
	}
	in = proto.Clone(in).(*dfspb.TxnIntent)
	in.State, in.StartedNs = dfspb.TxnState_TXN_STATE_PREPARING, t.now
	in.Results, in.CommitResult, in.Failure, in.FailedStep, in.Committed, in.DecidedNs = nil, nil, nil, 0, false, 0
	for _, k := range keys {
		if err := t.b.Set(k, in.TxnId, nil); err != nil {
			return nil, ioErr(err)
		}
	}
	if err := t.putTxn(in); err != nil {
		return nil, err
	}
	return &dfspb.StoreResult{Txn: in}, nil
}

// releaseLocks deletes the entry locks of in.
func (t *txn) releaseLocks(in *dfspb.TxnIntent) error {
	for _, l := range in.Locks {
		if len(l.Parent) != idLen {
			continue
		}
		k := txnLockKey(layout.ID(l.Parent), l.Name)
		v, ok, err := getValue(t.b, k)
		if err != nil {
			return ioErr(err)
		}
		if ok && bytes.Equal(v, in.TxnId) {
			if err := t.b.Delete(k, nil); err != nil {
				return ioErr(err)
			}
		}
	}
	return nil
}

func (t *txn) txnDecide(c *dfspb.TxnDecideCmd) (*dfspb.StoreResult, error) {
	if err := checkTxnID(c.TxnId); err != nil {
		return nil, err
	}
	in, found, err := getTxn(t.b, c.TxnId)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: transaction %x", ErrNotFound, c.TxnId)
	}
	if in.State != dfspb.TxnState_TXN_STATE_PREPARING {
		return &dfspb.StoreResult{Txn: in, Repeated: true}, nil
	}
	if err := t.releaseLocks(in); err != nil {
		return nil, err
	}
	in.Results, in.DecidedNs = c.Results, t.now
	if c.Commit {
		res, err := t.dispatch(in.Commit)
		switch {
		case err != nil && Code(err) == CodeIO:
			return nil, err
		case err != nil:
			in.State, in.FailedStep, in.Failure = dfspb.TxnState_TXN_STATE_ABORTED, uint32(len(in.Prepare)), errResult(err)
		default:
			in.State, in.Committed, in.CommitResult = dfspb.TxnState_TXN_STATE_COMMITTED, true, res
		}
	} else {
		if c.Failure == nil || c.FailedStep > uint32(len(in.Prepare)) {
			return nil, fmt.Errorf("%w: transaction %x: an abort names the failed step and its result", ErrInvalid, c.TxnId)
		}
		in.State, in.FailedStep, in.Failure = dfspb.TxnState_TXN_STATE_ABORTED, c.FailedStep, c.Failure
	}
	if err := t.putTxn(in); err != nil {
		return nil, err
	}
	return &dfspb.StoreResult{Txn: in}, nil
}

func (t *txn) txnEnd(c *dfspb.TxnEndCmd) (*dfspb.StoreResult, error) {
	if c.Purge && len(c.TxnId) == 0 {
		return t.txnPurge(c.PurgeBeforeNs)
	}
	if err := checkTxnID(c.TxnId); err != nil {
		return nil, err
	}
	in, found, err := getTxn(t.b, c.TxnId)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: transaction %x", ErrNotFound, c.TxnId)
	}
	switch {
	case c.Purge && in.State == dfspb.TxnState_TXN_STATE_DONE:
		if err := t.b.Delete(txnDoneKey(c.TxnId), nil); err != nil {
			return nil, ioErr(err)
		}
		return &dfspb.StoreResult{Txn: in}, nil
	case c.Purge || in.State == dfspb.TxnState_TXN_STATE_PREPARING:
		return nil, fmt.Errorf("%w: transaction %x is %v", ErrInvalid, c.TxnId, in.State)
	case in.State == dfspb.TxnState_TXN_STATE_DONE:
		return &dfspb.StoreResult{Txn: in, Repeated: true}, nil
	}
	in.State, in.AfterResults = dfspb.TxnState_TXN_STATE_DONE, c.AfterResults
	if err := t.putTxn(in); err != nil {
		return nil, err
	}
	return &dfspb.StoreResult{Txn: in}, nil
}

// txnPurge deletes the DONE records decided before beforeNs.
func (t *txn) txnPurge(beforeNs int64) (*dfspb.StoreResult, error) {
	lo, hi := prefixBounds([]byte{prefixTxnDone})
	it, err := t.b.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, ioErr(err)
	}
	var old [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		in := &dfspb.TxnIntent{}
		if err := proto.Unmarshal(it.Value(), in); err == nil && in.DecidedNs >= beforeNs {
			continue
		}
		old = append(old, bytes.Clone(it.Key()))
	}
	if err := it.Close(); err != nil {
		return nil, ioErr(err)
	}
	for _, k := range old {
		if err := t.b.Delete(k, nil); err != nil {
			return nil, ioErr(err)
		}
	}
	return &dfspb.StoreResult{Deleted: uint32(len(old))}, nil
}

func (t *txn) txnStep(c *dfspb.TxnStepCmd) (*dfspb.StoreResult, error) {
	if err := checkTxnID(c.TxnId); err != nil {
		return nil, err
	}
	if c.Cmd == nil || c.Cmd.GetOp() == nil || isTxnCmd(c.Cmd) {
		return nil, fmt.Errorf("%w: transaction %x step %d: a step must be a plain command", ErrInvalid, c.TxnId, c.Step)
	}
	if c.Step == txnTombstone {
		return nil, fmt.Errorf("%w: transaction %x: step %d is reserved", ErrInvalid, c.TxnId, c.Step)
	}
	_, forgotten, err := getValue(t.b, txnStepKey(c.TxnId, txnTombstone))
	if err != nil {
		return nil, ioErr(err)
	}
	if forgotten {
		return nil, fmt.Errorf("%w: transaction %x is finished; its step %d comes too late", ErrStale, c.TxnId, c.Step)
	}
	k := txnStepKey(c.TxnId, c.Step)
	v, ok, err := getValue(t.b, k)
	if err != nil {
		return nil, ioErr(err)
	}
	if ok && len(v) >= 8 {
		res := &dfspb.StoreResult{}
		if err := proto.Unmarshal(v[8:], res); err != nil {
			return nil, ioErr(fmt.Errorf("decode step %d of transaction %x: %w", c.Step, c.TxnId, err))
		}
		res.Repeated = true
		return res, nil
	}
	res, err := t.dispatch(c.Cmd)
	if err != nil {
		if Code(err) == CodeIO {
			return nil, err
		}
		res = errResult(err)
	}
	enc, err := proto.MarshalOptions{Deterministic: true}.Marshal(res)
	if err != nil {
		return nil, ioErr(err)
	}
	val := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(enc)), uint64(max(t.now, 0)))
	if err := t.b.Set(k, append(val, enc...), nil); err != nil {
		return nil, ioErr(err)
	}
	return res, nil
}

func (t *txn) txnForget(c *dfspb.TxnForgetCmd) (*dfspb.StoreResult, error) {
	if err := checkTxnID(c.TxnId); err != nil {
		return nil, err
	}
	keys, err := keysWithPrefix(t.b, append([]byte{prefixTxnStep}, c.TxnId...))
	if err != nil {
		return nil, err
	}
	deleted := 0
	for _, k := range keys {
		if binary.BigEndian.Uint32(k[len(k)-4:]) != txnTombstone {
			deleted++
		}
		if err := t.b.Delete(k, nil); err != nil {
			return nil, ioErr(err)
		}
	}
	if !c.Purge {
		v := binary.BigEndian.AppendUint64(nil, uint64(max(t.now, 0)))
		if err := t.b.Set(txnStepKey(c.TxnId, txnTombstone), v, nil); err != nil {
			return nil, ioErr(err)
		}
	}
	return &dfspb.StoreResult{Deleted: uint32(deleted)}, nil
}

// ---- reads -----------------------------------------------------------------

// Txns returns the unfinished transactions this store coordinates, in id
// order.
func (s *Store) Txns(ctx context.Context) ([]*dfspb.TxnIntent, error) {
	if err := s.readLock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	lo, hi := prefixBounds([]byte{prefixTxn})
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, ioErr(err)
	}
	defer it.Close()
	var out []*dfspb.TxnIntent
	for ok := it.First(); ok; ok = it.Next() {
		in := &dfspb.TxnIntent{}
		if err := proto.Unmarshal(it.Value(), in); err != nil {
			return nil, ioErr(fmt.Errorf("decode transaction %x: %w", it.Key()[1:], err))
		}
		out = append(out, in)
	}
	return out, ioErrOrNil(it.Error())
}

// Txn returns the record of transaction id coordinated here, unfinished
// or DONE; ErrNotFound if none.
func (s *Store) Txn(ctx context.Context, id []byte) (*dfspb.TxnIntent, error) {
	if err := s.readLock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	in, ok, err := getTxn(s.db, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: transaction %x", ErrNotFound, id)
	}
	return in, nil
}

// TxnHolder returns the id of the transaction that holds an entry cmd
// would create, replace, move or remove (nil if none), so that the leader
// can make cmd wait rather than fail.
func (s *Store) TxnHolder(ctx context.Context, cmd *dfspb.StoreCommand) ([]byte, error) {
	if err := s.readLock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	return txnHolder(s.db, cmd)
}

// TxnStepsBefore returns the ids of transactions with step results or a
// forget tombstone recorded here before cutoffNs (leader time): long
// finished (or their coordinator crashed between its TxnEnd and the
// forget), to be purged with TxnForget{purge}.
func (s *Store) TxnStepsBefore(ctx context.Context, cutoffNs int64) ([][]byte, error) {
	if err := s.readLock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	lo, hi := prefixBounds([]byte{prefixTxnStep})
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, ioErr(err)
	}
	defer it.Close()
	var out [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) < 1+idLen || len(v) < 8 || int64(binary.BigEndian.Uint64(v)) >= cutoffNs {
			continue
		}
		id := bytes.Clone(k[1 : 1+idLen])
		if len(out) == 0 || !bytes.Equal(out[len(out)-1], id) {
			out = append(out, id)
		}
	}
	return out, ioErrOrNil(it.Error())
}

// TxnDoneBefore reports whether a DONE record decided before beforeNs is
// left to purge (a purge command is proposed only then, so that a leader
// does not write to the log for nothing).
func (s *Store) TxnDoneBefore(ctx context.Context, beforeNs int64) (bool, error) {
	if err := s.readLock(ctx); err != nil {
		return false, err
	}
	defer s.mu.RUnlock()
	lo, hi := prefixBounds([]byte{prefixTxnDone})
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return false, ioErr(err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		in := &dfspb.TxnIntent{}
		if err := proto.Unmarshal(it.Value(), in); err != nil || in.DecidedNs < beforeNs {
			return true, nil
		}
	}
	return false, ioErrOrNil(it.Error())
}

// walkTxn adds a transaction record to a Walk page.
func walkTxn(v []byte, out *dfspb.WalkStoreResponse) bool {
	in := &dfspb.TxnIntent{}
	if err := proto.Unmarshal(v, in); err != nil {
		out.Strays = append(out.Strays, &dfspb.WalkStray{Kind: "bad-record", Detail: fmt.Sprintf("transaction record: %v", err)})
		return true
	}
	out.Txns = append(out.Txns, in)
	return true
}

// swapEntry applies a SwapEntryCmd (one half of RENAME_EXCHANGE across
// subvolumes).
func (t *txn) swapEntry(c *dfspb.SwapEntryCmd) (*dfspb.StoreResult, error) {
	parent, child, locator, err := entryArgs(c.Parent, c.Name, c.Child, c.Locator, c.ChildType)
	if err != nil {
		return nil, err
	}
	want, err := parseID("expect_child", c.ExpectChild)
	if err != nil {
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
	nd := dirent{typ: c.ChildType, child: child, locator: locator}
	switch {
	case found && d.child == child:
		return &dfspb.StoreResult{Dirent: d.proto(c.Name), Existed: true}, nil // a repeat
	case !found || d.child != want:
		return nil, fmt.Errorf("%w: %q in %s does not name %s", ErrNotFound, c.Name, parent, want)
	}
	if err := t.putDirent(parent, c.Name, nd); err != nil {
		return nil, err
	}
	wasDir, isDir := d.typ == dfspb.FileType_FILE_TYPE_DIR, c.ChildType == dfspb.FileType_FILE_TYPE_DIR
	switch {
	case isDir && !wasDir:
		prec.Attr.Nlink++
	case wasDir && !isDir:
		prec.Attr.Nlink--
	}
	if err := t.touchChild(child); err != nil {
		return nil, err
	}
	t.touch(prec.Attr, true)
	if err := t.putInode(prec); err != nil {
		return nil, err
	}
	res := &dfspb.StoreResult{Dirent: nd.proto(c.Name), Parent: prec.Attr}
	res.Dirent.Attr, err = t.localAttr(child)
	return res, err
}

// TxnStepRecords reports how many step results this store records for
// transaction id, and whether TxnForget left its tombstone.
func (s *Store) TxnStepRecords(ctx context.Context, id []byte) (n int, forgotten bool, err error) {
	if err := s.readLock(ctx); err != nil {
		return 0, false, err
	}
	defer s.mu.RUnlock()
	keys, err := keysWithPrefix(s.db, append([]byte{prefixTxnStep}, id...))
	if err != nil {
		return 0, false, err
	}
	for _, k := range keys {
		if binary.BigEndian.Uint32(k[len(k)-4:]) == txnTombstone {
			forgotten = true
		} else {
			n++
		}
	}
	return n, forgotten, nil
}
