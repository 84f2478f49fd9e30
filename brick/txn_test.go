package brick

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/brick/store"
	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// txnEnv is two real replica sets of three bricks: subvolume 0 holds the
// root directory and file f in it; subvolume 1 holds directory d (named
// "d" in the root), into which f is renamed.
type txnEnv struct {
	t    *testing.T
	a, b *replicaSet
	d, f layout.ID
}

func newTxnEnv(t *testing.T) *txnEnv {
	e := &txnEnv{t: t, a: newReplicaSet(t, 3), b: newReplicaSet(t, 3), d: layout.NewID()}
	_, ac := e.a.leader()
	_, bc := e.b.leader()
	makeRoot(t, ac)
	mustMutate(t, bc, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_CreateInode{CreateInode: &dfspb.CreateInodeCmd{
		Attr: &dfspb.Attr{Id: e.d[:], Type: dfspb.FileType_FILE_TYPE_DIR, Mode: 0o755},
	}}})
	mustMutate(t, ac, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Link{Link: &dfspb.LinkCmd{
		Parent: layout.RootID[:], Name: "d", Child: e.d[:], ChildType: dfspb.FileType_FILE_TYPE_DIR, Locator: e.d[:], Exclusive: true,
	}}})
	r, err := create(t.Context(), ac, "f")
	if err != nil || r.Code != 0 {
		t.Fatalf("create f: %v %v", r, err)
	}
	copy(e.f[:], r.Dirent.Id)
	return e
}

func mustMutate(t *testing.T, c dfspb.BrickServiceClient, cmd *dfspb.StoreCommand) *dfspb.StoreResult {
	t.Helper()
	r, err := c.Mutate(t.Context(), cmd)
	if err != nil || r.Code != 0 {
		t.Fatalf("%T: %v %v", cmd.Op, r, err)
	}
	return r
}

func (rs *replicaSet) addrs() []string {
	var out []string
	for _, c := range rs.cfgs {
		out = append(out, c.Address)
	}
	return out
}

// renameIntent plans root/f -> d/name as a client does (rename.go).
func (e *txnEnv) renameIntent(name string, exclusive bool) *dfspb.TxnIntent {
	id := layout.NewID()
	return &dfspb.TxnIntent{
		TxnId: id[:], Op: dfspb.TxnOp_TXN_OP_RENAME, Subvolume: 0, Summary: "rename f -> d/" + name,
		Locks: []*dfspb.TxnEntryLock{{Parent: layout.RootID[:], Name: "f", ExpectChild: e.f[:]}},
		Prepare: []*dfspb.TxnStep{{Subvolume: 1, Bricks: e.b.addrs(), Cmd: &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Link{Link: &dfspb.LinkCmd{
			Parent: e.d[:], Name: name, Child: e.f[:], ChildType: dfspb.FileType_FILE_TYPE_FILE, Locator: layout.RootID[:], Exclusive: exclusive,
		}}}}},
		Commit: &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Unlink{Unlink: &dfspb.UnlinkCmd{
			Parent: layout.RootID[:], Name: "f", KeepInode: true, ExpectChild: e.f[:],
		}}},
	}
}

// names returns which of root/f and d/name exist, as the leaders see them.
func (e *txnEnv) names(name string) (old, new bool) {
	e.t.Helper()
	_, ac := e.a.leader()
	_, bc := e.b.leader()
	r, err := ac.Lookup(e.t.Context(), &dfspb.LookupRequest{Parent: layout.RootID[:], Name: "f"})
	if err != nil {
		e.t.Fatal(err)
	}
	old = r.Code == 0
	r, err = bc.Lookup(e.t.Context(), &dfspb.LookupRequest{Parent: e.d[:], Name: name})
	if err != nil {
		e.t.Fatal(err)
	}
	return old, r.Code == 0
}

// finished waits until subvolume 0's leader has taken transaction id to
// DONE and subvolume 1 has forgotten its steps.
func (e *txnEnv) finished(id []byte) *dfspb.TxnIntent {
	e.t.Helper()
	var in *dfspb.TxnIntent
	eventually(e.t, func() error {
		li, _ := e.a.leader()
		var err error
		if in, err = e.a.bricks[li].store.Txn(e.t.Context(), id); err != nil {
			return err
		}
		if in.State != dfspb.TxnState_TXN_STATE_DONE {
			return fmt.Errorf("transaction is %v", in.State)
		}
		bi, _ := e.b.leader()
		if n, forgotten, err := e.b.bricks[bi].store.TxnStepRecords(e.t.Context(), id); err != nil || n != 0 || !forgotten {
			return fmt.Errorf("subvolume 1 records %d steps of the transaction, forgotten %v (%v)", n, forgotten, err)
		}
		return nil
	})
	return in
}

func TestTxnRenameAcrossReplicaSets(t *testing.T) {
	e := newTxnEnv(t)
	_, ac := e.a.leader()
	in := e.renameIntent("g", false)
	resp, err := ac.RunTxn(t.Context(), &dfspb.RunTxnRequest{Intent: in})
	if err != nil || resp.Code != 0 || !resp.Intent.GetCommitted() || resp.Intent.State != dfspb.TxnState_TXN_STATE_DONE {
		t.Fatalf("RunTxn: %v %v", resp, err)
	}
	if old, nw := e.names("g"); old || !nw {
		t.Fatalf("after the rename: old name %v, new name %v", old, nw)
	}
	e.finished(in.TxnId)
	// A retry answers the same outcome and changes nothing.
	resp, err = ac.RunTxn(t.Context(), &dfspb.RunTxnRequest{Intent: in})
	if err != nil || resp.Code != 0 || !resp.Intent.GetCommitted() {
		t.Fatalf("retried RunTxn: %v %v", resp, err)
	}
	// Another transaction on the moved entry is refused before anything
	// happens (the entry is gone).
	resp, err = ac.RunTxn(t.Context(), &dfspb.RunTxnRequest{Intent: e.renameIntent("h", false)})
	if err != nil || resp.Code != dfspb.StoreErrorCode_STORE_ERROR_CODE_NOT_FOUND {
		t.Fatalf("RunTxn of a gone entry: %v %v", resp, err)
	}
}

// TestTxnAbortUndoes: the remote step fails (NOREPLACE over an existing
// name): the answer is its error and nothing changed; the entry is free.
func TestTxnAbortUndoes(t *testing.T) {
	e := newTxnEnv(t)
	_, ac := e.a.leader()
	_, bc := e.b.leader()
	other := layout.NewID()
	mustMutate(t, bc, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_CreateEntry{CreateEntry: &dfspb.CreateEntryCmd{
		Parent: e.d[:], Name: "taken", Attr: &dfspb.Attr{Id: other[:], Type: dfspb.FileType_FILE_TYPE_FILE, Mode: 0o644},
	}}})
	in := e.renameIntent("taken", true)
	resp, err := ac.RunTxn(t.Context(), &dfspb.RunTxnRequest{Intent: in})
	if err != nil || resp.Code != dfspb.StoreErrorCode_STORE_ERROR_CODE_EXISTS || resp.Intent.GetCommitted() {
		t.Fatalf("RunTxn over an existing name: %v %v", resp, err)
	}
	if old, _ := e.names("taken"); !old {
		t.Fatal("aborted rename removed the old name")
	}
	e.finished(in.TxnId)
	// The entry is free again.
	mustMutate(t, ac, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Rename{Rename: &dfspb.RenameCmd{
		OldParent: layout.RootID[:], OldName: "f", NewParent: layout.RootID[:], NewName: "f"}}})
}

// TestTxnRecoveryAfterCoordinatorCrash: the coordinator's leader stops
// (a test hook, then the brick is closed) after each point of the
// protocol; the next leader finishes the transaction, exactly once.
func TestTxnRecoveryAfterCoordinatorCrash(t *testing.T) {
	for _, point := range []string{"begun", "prepared", "decided"} {
		t.Run(point, func(t *testing.T) {
			e := newTxnEnv(t)
			li, ac := e.a.leader()
			e.a.bricks[li].Txns().SetHook(func(p string, _ *dfspb.TxnIntent) bool { return p == point })
			in := e.renameIntent("g", false)
			_, err := ac.RunTxn(t.Context(), &dfspb.RunTxnRequest{Intent: in})
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("RunTxn stopped at %s answered %v, want UNAVAILABLE", point, err)
			}
			e.a.stop(li)
			if ni, _ := e.a.leader(); ni == li {
				t.Fatal("stopped brick still leads")
			}
			out := e.finished(in.TxnId)
			if !out.Committed {
				t.Fatalf("recovered transaction aborted: %v", out.Failure)
			}
			if old, nw := e.names("g"); old || !nw {
				t.Fatalf("after recovery: old name %v, new name %v", old, nw)
			}
			bi, _ := e.b.leader()
			if a, err := e.a.bricks[e.aLive()].store.GetAttr(t.Context(), e.f); err != nil || a.Nlink != 1 {
				t.Fatalf("nlink of the moved file: %v %v", a, err)
			}
			if d, err := e.b.bricks[bi].store.GetAttr(t.Context(), e.d); err != nil || d.Nlink != 2 {
				t.Fatalf("nlink of d: %v %v", d, err)
			}
			// The old leader comes back as a follower and agrees.
			e.a.start(li)
			eventually(t, func() error {
				in, err := e.a.bricks[li].store.Txn(t.Context(), in.TxnId)
				if err != nil || in.State != dfspb.TxnState_TXN_STATE_DONE {
					return fmt.Errorf("restarted brick: %v %v", in.GetState(), err)
				}
				return nil
			})
		})
	}
}

// aLive returns a running member of subvolume 0.
func (e *txnEnv) aLive() int {
	for i, b := range e.a.bricks {
		if b != nil {
			return i
		}
	}
	e.t.Fatal("no member of subvolume 0 runs")
	return -1
}

// TestTxnRemoteLeaderLoss: the other subvolume's leader is gone when the
// step is sent; the coordinator finds the new one.
func TestTxnRemoteLeaderLoss(t *testing.T) {
	e := newTxnEnv(t)
	_, ac := e.a.leader()
	bi, _ := e.b.leader()
	e.b.stop(bi)
	in := e.renameIntent("g", false)
	resp, err := ac.RunTxn(t.Context(), &dfspb.RunTxnRequest{Intent: in})
	if err != nil || resp.Code != 0 || !resp.Intent.GetCommitted() {
		t.Fatalf("RunTxn with the remote leader gone: %v %v", resp, err)
	}
	if old, nw := e.names("g"); old || !nw {
		t.Fatalf("old name %v, new name %v", old, nw)
	}
	e.b.start(bi)
}

// TestTxnHeldEntryWaits: a command on an entry held by a transaction
// waits for its decision rather than failing.
func TestTxnHeldEntryWaits(t *testing.T) {
	e := newTxnEnv(t)
	li, ac := e.a.leader()
	co := e.a.bricks[li].Txns()
	co.SetHook(func(p string, _ *dfspb.TxnIntent) bool { return p == "begun" })
	in := e.renameIntent("g", false)
	if _, err := ac.RunTxn(t.Context(), &dfspb.RunTxnRequest{Intent: in}); status.Code(err) != codes.Unavailable {
		t.Fatalf("RunTxn: %v", err)
	}
	co.SetHook(nil)
	done := make(chan *dfspb.StoreResult, 1)
	go func() {
		r, _ := ac.Mutate(context.Background(), &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Unlink{Unlink: &dfspb.UnlinkCmd{Parent: layout.RootID[:], Name: "f"}}})
		done <- r
	}()
	// The recovery loop (or this Drive) finishes it; the unlink then
	// finds the name gone.
	if _, err := co.Drive(t.Context(), in.TxnId); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Drive: %v", err)
	}
	r := <-done
	if r.GetCode() != dfspb.StoreErrorCode_STORE_ERROR_CODE_NOT_FOUND {
		t.Fatalf("unlink of the held name answered %v, want NOT_FOUND after the rename", r)
	}
	if _, nw := e.names("g"); !nw {
		t.Fatal("new name missing")
	}
}

// TestTxnUnreachableHoldsUpNoOther: a transaction whose other subvolume
// cannot be reached stays PREPARING (fsck shows it), and does not keep a
// new leader from finishing the others.
func TestTxnUnreachableHoldsUpNoOther(t *testing.T) {
	e := newTxnEnv(t)
	li, ac := e.a.leader()
	// Clients cannot begin, decide or end transactions with Mutate.
	if _, err := ac.Mutate(t.Context(), &dfspb.StoreCommand{Op: &dfspb.StoreCommand_TxnBegin{TxnBegin: &dfspb.TxnBeginCmd{Intent: e.renameIntent("g", false)}}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("TxnBegin through Mutate: %v, want INVALID_ARGUMENT", err)
	}
	r, err := create(t.Context(), ac, "h")
	if err != nil || r.Code != 0 {
		t.Fatalf("create h: %v %v", r, err)
	}
	var h layout.ID
	copy(h[:], r.Dirent.Id)
	stuck := e.renameIntent("x", false)
	stuck.Locks[0].Name, stuck.Locks[0].ExpectChild = "h", h[:]
	stuck.Prepare[0].Bricks = []string{freeAddr(t, "127.0.5.9")} // nobody listens
	stuck.Commit.GetUnlink().Name, stuck.Commit.GetUnlink().ExpectChild = "h", h[:]
	co := e.a.bricks[li].Txns()
	co.SetHook(func(p string, _ *dfspb.TxnIntent) bool { return p == "begun" })
	good := e.renameIntent("g", false)
	for _, in := range []*dfspb.TxnIntent{stuck, good} {
		if _, err := ac.RunTxn(t.Context(), &dfspb.RunTxnRequest{Intent: in}); status.Code(err) != codes.Unavailable {
			t.Fatalf("RunTxn: %v", err)
		}
	}
	e.a.stop(li)
	start := time.Now()
	e.finished(good.TxnId)
	t.Logf("the new leader finished the reachable transaction in %v", time.Since(start).Round(time.Millisecond))
	ni, _ := e.a.leader()
	in, err := e.a.bricks[ni].store.Txn(t.Context(), stuck.TxnId)
	if err != nil || in.State != dfspb.TxnState_TXN_STATE_PREPARING {
		t.Fatalf("unreachable transaction: %v %v, want PREPARING", in, err)
	}
	c := store.NewChecker(mustLayout(t))
	if err := e.a.bricks[ni].store.Walk(t.Context(), 100, func(p *dfspb.WalkStoreResponse) error { c.Add(0, p); return nil }); err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, n := range c.Result().Notes {
		notes = append(notes, n.Kind)
	}
	if len(notes) != 1 || notes[0] != store.FsckTxn {
		t.Fatalf("fsck notes %v, want one %s", notes, store.FsckTxn)
	}
	e.a.start(li)
}

func mustLayout(t *testing.T) *layout.Layout {
	l, err := layout.New("vol-1", 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestTxnWaitsForAnother: a transaction on an entry another one holds
// waits for its decision, then sees the entry as it left it.
func TestTxnWaitsForAnother(t *testing.T) {
	e := newTxnEnv(t)
	li, ac := e.a.leader()
	co := e.a.bricks[li].Txns()
	co.SetHook(func(p string, _ *dfspb.TxnIntent) bool { return p == "begun" })
	first := e.renameIntent("g", false)
	if _, err := ac.RunTxn(t.Context(), &dfspb.RunTxnRequest{Intent: first}); status.Code(err) != codes.Unavailable {
		t.Fatalf("RunTxn: %v", err)
	}
	co.SetHook(nil)
	done := make(chan *dfspb.RunTxnResponse, 1)
	go func() {
		r, _ := ac.RunTxn(context.Background(), &dfspb.RunTxnRequest{Intent: e.renameIntent("h", false)})
		done <- r
	}()
	// The client's retry of the first one does not wait for itself.
	resp, err := ac.RunTxn(t.Context(), &dfspb.RunTxnRequest{Intent: first})
	if err != nil || !resp.Intent.GetCommitted() {
		t.Fatalf("retry of the first: %v %v", resp, err)
	}
	if r := <-done; r.GetCode() != dfspb.StoreErrorCode_STORE_ERROR_CODE_NOT_FOUND {
		t.Fatalf("second transaction on the moved name: %v, want NOT_FOUND", r)
	}
	if old, nw := e.names("g"); old || !nw {
		t.Fatalf("old name %v, new name %v", old, nw)
	}
	if _, nh := e.names("h"); nh {
		t.Fatal("second rename happened too")
	}
}
