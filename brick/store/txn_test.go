package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

func txnCmd(op any) *dfspb.StoreCommand {
	c := &dfspb.StoreCommand{}
	switch o := op.(type) {
	case *dfspb.TxnBeginCmd:
		c.Op = &dfspb.StoreCommand_TxnBegin{TxnBegin: o}
	case *dfspb.TxnDecideCmd:
		c.Op = &dfspb.StoreCommand_TxnDecide{TxnDecide: o}
	case *dfspb.TxnEndCmd:
		c.Op = &dfspb.StoreCommand_TxnEnd{TxnEnd: o}
	case *dfspb.TxnStepCmd:
		c.Op = &dfspb.StoreCommand_TxnStep{TxnStep: o}
	case *dfspb.TxnForgetCmd:
		c.Op = &dfspb.StoreCommand_TxnForget{TxnForget: o}
	default:
		return cmd(op)
	}
	return c
}

// renameIntent is the intent of moving root/name (child) to another
// subvolume's directory: the entry held, the old name removed at commit.
func renameIntent(name string, child layout.ID) *dfspb.TxnIntent {
	id := layout.NewID()
	return &dfspb.TxnIntent{
		TxnId: id[:], Op: dfspb.TxnOp_TXN_OP_RENAME, Summary: "rename " + name,
		Locks: []*dfspb.TxnEntryLock{{Parent: b(root), Name: name, ExpectChild: b(child)}},
		Prepare: []*dfspb.TxnStep{{Subvolume: 1, Bricks: []string{"x:1"},
			Cmd: linkCmd(layout.NewID(), "new", child, dfspb.FileType_FILE_TYPE_FILE, root, false)}},
		Commit: cmd(&dfspb.UnlinkCmd{Parent: b(root), Name: name, KeepInode: true, ExpectChild: b(child)}),
	}
}

func TestTxnBeginDecideEnd(t *testing.T) {
	h := newHarness(t).withRoot()
	f := h.create(root, "f")
	in := renameIntent("f", f)

	r := mustOK(t, h.apply(txnCmd(&dfspb.TxnBeginCmd{Intent: in})))
	if r.Txn.GetState() != dfspb.TxnState_TXN_STATE_PREPARING || r.Txn.StartedNs == 0 || r.Repeated {
		t.Fatalf("begin: %v", r.Txn)
	}
	// A repeat answers the record.
	r = mustOK(t, h.apply(txnCmd(&dfspb.TxnBeginCmd{Intent: in})))
	if !r.Repeated || r.Txn.GetState() != dfspb.TxnState_TXN_STATE_PREPARING {
		t.Fatalf("repeated begin: %v", r)
	}
	// The held entry refuses namespace commands; others pass.
	wantCode(t, h.apply(unlinkCmd(root, "f", false)), CodeStale)
	wantCode(t, h.apply(renameCmd(root, "f", root, "g", 0)), CodeStale)
	wantCode(t, h.apply(createCmd(root, "f", layout.NewID(), dfspb.FileType_FILE_TYPE_FILE, false)), CodeStale)
	wantCode(t, h.apply(renameCmd(root, "x", root, "f", 0)), CodeStale)
	h.create(root, "other")
	holder, err := h.s.TxnHolder(context.Background(), unlinkCmd(root, "f", false))
	if err != nil || !bytes.Equal(holder, in.TxnId) {
		t.Fatalf("TxnHolder = %x, %v; want %x", holder, err, in.TxnId)
	}
	// Another transaction cannot take it.
	other := renameIntent("f", f)
	wantCode(t, h.apply(txnCmd(&dfspb.TxnBeginCmd{Intent: other})), CodeStale)

	// Decide commit: the local commit runs, the lock goes.
	stepRes := &dfspb.StoreResult{Dirent: &dfspb.Dirent{Name: "new"}}
	r = mustOK(t, h.apply(txnCmd(&dfspb.TxnDecideCmd{TxnId: in.TxnId, Commit: true, Results: []*dfspb.StoreResult{stepRes}})))
	if r.Txn.State != dfspb.TxnState_TXN_STATE_COMMITTED || !r.Txn.Committed || len(r.Txn.Results) != 1 {
		t.Fatalf("decide: %v", r.Txn)
	}
	if names := h.names(root); len(names) != 1 || names[0] != "other" {
		t.Fatalf("root holds %v after the commit, want [other]", names)
	}
	if a := h.attr(f); a.Nlink != 1 {
		t.Fatalf("nlink %d after a keep-inode commit, want 1", a.Nlink)
	}
	holder, _ = h.s.TxnHolder(context.Background(), unlinkCmd(root, "f", false))
	if holder != nil {
		t.Fatalf("entry still held after the decision")
	}
	// A repeated decision (even the other way) changes nothing.
	r = mustOK(t, h.apply(txnCmd(&dfspb.TxnDecideCmd{TxnId: in.TxnId, Failure: &dfspb.StoreResult{Code: 2}})))
	if !r.Repeated || !r.Txn.Committed {
		t.Fatalf("repeated decide: %v", r)
	}
	wantCode(t, h.apply(txnCmd(&dfspb.TxnEndCmd{TxnId: in.TxnId, Purge: true})), CodeInvalid)
	r = mustOK(t, h.apply(txnCmd(&dfspb.TxnEndCmd{TxnId: in.TxnId})))
	if r.Txn.State != dfspb.TxnState_TXN_STATE_DONE {
		t.Fatalf("end: %v", r.Txn)
	}
	// A client's retry of the whole transaction gets the outcome.
	r = mustOK(t, h.apply(txnCmd(&dfspb.TxnBeginCmd{Intent: in})))
	if !r.Repeated || r.Txn.State != dfspb.TxnState_TXN_STATE_DONE || !r.Txn.Committed {
		t.Fatalf("begin after the end: %v", r)
	}
	// DONE records are no longer pending, but answer by id.
	if txns, err := h.s.Txns(context.Background()); err != nil || len(txns) != 0 {
		t.Fatalf("Txns after the end = %v, %v; want none pending", txns, err)
	}
	if got := mustTxn(t, h.s, in.TxnId); got.State != dfspb.TxnState_TXN_STATE_DONE {
		t.Fatalf("Txn after the end: %v", got)
	}
	mustOK(t, h.apply(txnCmd(&dfspb.TxnEndCmd{TxnId: in.TxnId, Purge: true})))
	if _, err := h.s.Txn(context.Background(), in.TxnId); Code(err) != CodeNotFound {
		t.Fatalf("Txn after purge: %v", err)
	}
}

// TestTxnPurgeBefore: one command purges the DONE records decided before
// a time, and keeps the younger ones and the pending ones.
func TestTxnPurgeBefore(t *testing.T) {
	h := newHarness(t).withRoot()
	var ids [][]byte
	for i := range 3 {
		f := h.create(root, fmt.Sprintf("f%d", i))
		in := renameIntent(fmt.Sprintf("f%d", i), f)
		mustOK(t, h.apply(txnCmd(&dfspb.TxnBeginCmd{Intent: in})))
		ids = append(ids, in.TxnId)
		if i < 2 {
			mustOK(t, h.apply(txnCmd(&dfspb.TxnDecideCmd{TxnId: in.TxnId, Commit: true})))
			mustOK(t, h.apply(txnCmd(&dfspb.TxnEndCmd{TxnId: in.TxnId})))
		}
	}
	first := mustTxn(t, h.s, ids[0]).DecidedNs
	r := mustOK(t, h.apply(txnCmd(&dfspb.TxnEndCmd{Purge: true, PurgeBeforeNs: first + 1})))
	if r.Deleted != 1 {
		t.Fatalf("purged %d records, want 1", r.Deleted)
	}
	if _, err := h.s.Txn(context.Background(), ids[0]); Code(err) != CodeNotFound {
		t.Fatalf("old DONE record: %v", err)
	}
	for _, id := range ids[1:] {
		mustTxn(t, h.s, id)
	}
}

func TestTxnBeginChecksLocks(t *testing.T) {
	h := newHarness(t).withRoot()
	f := h.create(root, "f")
	d := h.mkdir(root, "d")
	id := func() []byte { x := layout.NewID(); return x[:] }
	base := func(l *dfspb.TxnEntryLock) *dfspb.TxnIntent {
		return &dfspb.TxnIntent{TxnId: id(), Locks: []*dfspb.TxnEntryLock{l}, Commit: unlinkCmd(root, l.Name, false)}
	}
	for _, tc := range []struct {
		name string
		lock *dfspb.TxnEntryLock
		want ErrorCode
	}{
		{"absent but exists", &dfspb.TxnEntryLock{Parent: b(root), Name: "f", ExpectAbsent: true}, CodeExists},
		{"missing", &dfspb.TxnEntryLock{Parent: b(root), Name: "nope"}, CodeNotFound},
		{"replaced", &dfspb.TxnEntryLock{Parent: b(root), Name: "f", ExpectChild: b(d)}, CodeNotFound},
		{"not a dir", &dfspb.TxnEntryLock{Parent: b(root), Name: "f", ExpectChild: b(f), ExpectDir: true}, CodeNotDir},
		{"bad name", &dfspb.TxnEntryLock{Parent: b(root), Name: "a/b"}, CodeInvalid},
		{"ok absent", &dfspb.TxnEntryLock{Parent: b(root), Name: "new", ExpectAbsent: true}, CodeOK},
		{"ok dir", &dfspb.TxnEntryLock{Parent: b(root), Name: "d", ExpectChild: b(d), ExpectDir: true}, CodeOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, h.apply(txnCmd(&dfspb.TxnBeginCmd{Intent: base(tc.lock)})), tc.want)
		})
	}
	// Malformed intents.
	wantCode(t, h.apply(txnCmd(&dfspb.TxnBeginCmd{})), CodeInvalid)
	wantCode(t, h.apply(txnCmd(&dfspb.TxnBeginCmd{Intent: &dfspb.TxnIntent{TxnId: []byte{1}}})), CodeInvalid)
	wantCode(t, h.apply(txnCmd(&dfspb.TxnBeginCmd{Intent: &dfspb.TxnIntent{TxnId: id()}})), CodeInvalid)
	nested := &dfspb.TxnIntent{TxnId: id(), Commit: txnCmd(&dfspb.TxnForgetCmd{TxnId: id()})}
	wantCode(t, h.apply(txnCmd(&dfspb.TxnBeginCmd{Intent: nested})), CodeInvalid)
	// Unknown transactions.
	wantCode(t, h.apply(txnCmd(&dfspb.TxnDecideCmd{TxnId: id(), Commit: true})), CodeNotFound)
	wantCode(t, h.apply(txnCmd(&dfspb.TxnEndCmd{TxnId: id()})), CodeNotFound)
}

// TestTxnAbortAndFailedCommit: an abort keeps the local state and records
// the failing step; a commit command that fails turns into an abort.
func TestTxnAbortAndFailedCommit(t *testing.T) {
	h := newHarness(t).withRoot()
	f := h.create(root, "f")
	in := renameIntent("f", f)
	mustOK(t, h.apply(txnCmd(&dfspb.TxnBeginCmd{Intent: in})))
	wantCode(t, h.apply(txnCmd(&dfspb.TxnDecideCmd{TxnId: in.TxnId})), CodeInvalid) // an abort names its failure
	fail := &dfspb.StoreResult{Code: dfspb.StoreErrorCode_STORE_ERROR_CODE_EXISTS, Message: "target exists"}
	r := mustOK(t, h.apply(txnCmd(&dfspb.TxnDecideCmd{TxnId: in.TxnId, FailedStep: 0, Failure: fail})))
	if r.Txn.State != dfspb.TxnState_TXN_STATE_ABORTED || r.Txn.Committed || r.Txn.Failure.GetCode() != fail.Code {
		t.Fatalf("abort: %v", r.Txn)
	}
	if names := h.names(root); len(names) != 1 || names[0] != "f" {
		t.Fatalf("root holds %v after an abort, want [f]", names)
	}
	// The lock went with the decision.
	mustOK(t, h.apply(renameCmd(root, "f", root, "f2", 0)))

	// A commit whose command fails: the entry it removes is not there.
	in2 := renameIntent("f2", f)
	in2.Commit = cmd(&dfspb.UnlinkCmd{Parent: b(root), Name: "f2", ExpectDir: true})
	mustOK(t, h.apply(txnCmd(&dfspb.TxnBeginCmd{Intent: in2})))
	r = mustOK(t, h.apply(txnCmd(&dfspb.TxnDecideCmd{TxnId: in2.TxnId, Commit: true})))
	if r.Txn.State != dfspb.TxnState_TXN_STATE_ABORTED || r.Txn.FailedStep != 1 || r.Txn.Failure.GetCode() != dfspb.StoreErrorCode_STORE_ERROR_CODE_NOT_DIR {
		t.Fatalf("failed commit: %v", r.Txn)
	}
	mustOK(t, h.apply(txnCmd(&dfspb.TxnEndCmd{TxnId: in2.TxnId})))
}

// TestTxnStep: a step applies once per (txn, step), even when it failed,
// and answers its recorded result until forgotten.
func TestTxnStep(t *testing.T) {
	h := newHarness(t).withRoot()
	f := h.create(root, "f")
	tx := layout.NewID()
	up := txnCmd(&dfspb.TxnStepCmd{TxnId: tx[:], Step: 0, Cmd: cmd(&dfspb.AdjustLinkCmd{Id: b(f), Delta: 1})})
	r := mustOK(t, h.apply(up))
	if r.Repeated || r.Attr.GetNlink() != 2 {
		t.Fatalf("step: %v", r)
	}
	for range 2 {
		r = mustOK(t, h.apply(proto.Clone(up).(*dfspb.StoreCommand)))
		if !r.Repeated || r.Attr.GetNlink() != 2 {
			t.Fatalf("repeated step: %v", r)
		}
	}
	if a := h.attr(f); a.Nlink != 2 {
		t.Fatalf("nlink %d after repeats, want 2", a.Nlink)
	}
	// A failing step is recorded too: a repeat fails the same way even
	// once the command would succeed.
	ex := txnCmd(&dfspb.TxnStepCmd{TxnId: tx[:], Step: 1, Cmd: createCmd(root, "g", layout.NewID(), dfspb.FileType_FILE_TYPE_FILE, true)})
	h.create(root, "g")
	wantCode(t, h.apply(ex), CodeExists)
	mustOK(t, h.apply(unlinkCmd(root, "g", false)))
	r = h.apply(proto.Clone(ex).(*dfspb.StoreCommand))
	wantCode(t, r, CodeExists)
	if !r.Repeated {
		t.Fatal("repeat of a failed step not marked repeated")
	}
	// Steps may not nest transaction commands.
	wantCode(t, h.apply(txnCmd(&dfspb.TxnStepCmd{TxnId: tx[:], Step: 2, Cmd: txnCmd(&dfspb.TxnForgetCmd{TxnId: tx[:]})})), CodeInvalid)
	old, err := h.s.TxnStepsBefore(context.Background(), h.now+1)
	if err != nil || len(old) != 1 || !bytes.Equal(old[0], tx[:]) {
		t.Fatalf("TxnStepsBefore = %x, %v", old, err)
	}
	// Forget: a step that comes later (from a deposed coordinator) is
	// refused; once purged, it would run again.
	r = mustOK(t, h.apply(txnCmd(&dfspb.TxnForgetCmd{TxnId: tx[:]})))
	if r.Deleted != 2 {
		t.Fatalf("forget deleted %d records, want 2", r.Deleted)
	}
	if n, forgotten, err := h.s.TxnStepRecords(context.Background(), tx[:]); n != 0 || !forgotten || err != nil {
		t.Fatalf("after forget: %d records, tombstone %v, %v", n, forgotten, err)
	}
	wantCode(t, h.apply(proto.Clone(up).(*dfspb.StoreCommand)), CodeStale)
	if a := h.attr(f); a.Nlink != 2 {
		t.Fatalf("nlink %d after a late step, want 2", a.Nlink)
	}
	wantCode(t, h.apply(txnCmd(&dfspb.TxnStepCmd{TxnId: tx[:], Step: ^uint32(0), Cmd: up.GetTxnStep().Cmd})), CodeInvalid)
	if old, _ := h.s.TxnStepsBefore(context.Background(), h.now+1); len(old) != 1 {
		t.Fatalf("TxnStepsBefore after forget = %x, want the tombstone's transaction", old)
	}
	mustOK(t, h.apply(txnCmd(&dfspb.TxnForgetCmd{TxnId: tx[:], Purge: true})))
	if old, _ := h.s.TxnStepsBefore(context.Background(), h.now+1); len(old) != 0 {
		t.Fatalf("TxnStepsBefore after purge = %x", old)
	}
	mustOK(t, h.apply(proto.Clone(ex).(*dfspb.StoreCommand)))
}

// TestTxnSurvivesSnapshotAndReopen: intents, held entries and step
// results are store state like any other.
func TestTxnSurvivesSnapshotAndReopen(t *testing.T) {
	src := newHarness(t).withRoot()
	f := src.create(root, "f")
	in := renameIntent("f", f)
	mustOK(t, src.apply(txnCmd(&dfspb.TxnBeginCmd{Intent: in})))
	tx := layout.NewID()
	mustOK(t, src.apply(txnCmd(&dfspb.TxnStepCmd{TxnId: tx[:], Step: 0, Cmd: cmd(&dfspb.AdjustLinkCmd{Id: b(f), Delta: 1})})))
	data := snapshotOf(t, src.s)

	dst := newHarness(t).withRoot()
	if err := dst.s.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	dst.reopen()
	dst.idx = src.idx
	txns, err := dst.s.Txns(context.Background())
	if err != nil || len(txns) != 1 || !proto.Equal(txns[0], mustTxn(t, src.s, in.TxnId)) {
		t.Fatalf("restored Txns = %v, %v", txns, err)
	}
	wantCode(t, dst.apply(unlinkCmd(root, "f", false)), CodeStale)
	r := mustOK(t, dst.apply(txnCmd(&dfspb.TxnStepCmd{TxnId: tx[:], Step: 0, Cmd: cmd(&dfspb.AdjustLinkCmd{Id: b(f), Delta: 1})})))
	if !r.Repeated || dst.attr(f).Nlink != 2 {
		t.Fatalf("restored step record: %v, nlink %d", r, dst.attr(f).Nlink)
	}
	// Walk (fsck) reports the intent.
	var walked []*dfspb.TxnIntent
	if err := dst.s.Walk(context.Background(), 1000, func(page *dfspb.WalkStoreResponse) error {
		walked = append(walked, page.Txns...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(walked) != 1 || !bytes.Equal(walked[0].TxnId, in.TxnId) {
		t.Fatalf("walk found transactions %v", walked)
	}
}

func mustTxn(t *testing.T, s *Store, id []byte) *dfspb.TxnIntent {
	t.Helper()
	in, err := s.Txn(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestFsckTxns: an unfinished transaction is a note while young, a
// problem (stuck) once older than TxnStuckAfter; DONE ones are silent.
func TestFsckTxns(t *testing.T) {
	l, err := layout.New("v", 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	c := NewChecker(l)
	now := time.Now().UnixNano()
	id := func() []byte { x := layout.NewID(); return x[:] }
	c.Add(0, &dfspb.WalkStoreResponse{Txns: []*dfspb.TxnIntent{
		{TxnId: id(), Op: dfspb.TxnOp_TXN_OP_RENAME, StartedNs: now},
		{TxnId: id(), Op: dfspb.TxnOp_TXN_OP_LINK, State: dfspb.TxnState_TXN_STATE_COMMITTED, StartedNs: now - int64(2*TxnStuckAfter)},
		{TxnId: id(), Op: dfspb.TxnOp_TXN_OP_RMDIR, State: dfspb.TxnState_TXN_STATE_DONE, StartedNs: now - int64(2*TxnStuckAfter)},
	}})
	r := c.Result()
	if len(r.Problems) != 1 || r.Problems[0].Kind != FsckStuckTxn {
		t.Fatalf("problems %v, want one %s", r.Problems, FsckStuckTxn)
	}
	if len(r.Notes) != 1 || r.Notes[0].Kind != FsckTxn {
		t.Fatalf("notes %v, want one %s", r.Notes, FsckTxn)
	}
}

// TestSwapEntry: one half of an exchange across subvolumes.
func TestSwapEntry(t *testing.T) {
	h := newHarness(t).withRoot()
	f := h.create(root, "f")
	other, d := layout.NewID(), layout.NewID()
	swap := func(name string, from, to layout.ID, typ dfspb.FileType) *dfspb.StoreCommand {
		return &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SwapEntry{SwapEntry: &dfspb.SwapEntryCmd{
			Parent: b(root), Name: name, ExpectChild: b(from), Child: b(to), ChildType: typ, Locator: b(to),
		}}}
	}
	nl := h.attr(root).Nlink
	// f's name now names a directory of another subvolume: the root
	// gains a subdirectory; f keeps its link count.
	r := mustOK(t, h.apply(swap("f", f, d, dfspb.FileType_FILE_TYPE_DIR)))
	if r.Existed || h.attr(root).Nlink != nl+1 || h.attr(f).Nlink != 1 {
		t.Fatalf("swap: %v, root nlink %d (was %d), f nlink %d", r, h.attr(root).Nlink, nl, h.attr(f).Nlink)
	}
	if r := mustOK(t, h.apply(swap("f", f, d, dfspb.FileType_FILE_TYPE_DIR))); !r.Existed {
		t.Fatal("repeat not recognized")
	}
	wantCode(t, h.apply(swap("f", other, f, dfspb.FileType_FILE_TYPE_FILE)), CodeNotFound)
	wantCode(t, h.apply(swap("nope", f, d, dfspb.FileType_FILE_TYPE_DIR)), CodeNotFound)
	mustOK(t, h.apply(swap("f", d, f, dfspb.FileType_FILE_TYPE_FILE)))
	if h.attr(root).Nlink != nl {
		t.Fatalf("root nlink %d after swapping back, want %d", h.attr(root).Nlink, nl)
	}
}
