package client_test

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// txnOps are the three operations across subvolumes, each run on fresh
// names, with a check that it is entirely done.
type txnOp struct {
	name  string
	coord func(e *env, a, b client.Node) int // the coordinating subvolume
	setup func(e *env, a, b client.Node, tag string)
	run   func(e *env, v *client.Volume, a, b client.Node, tag string) error
	done  func(e *env, a, b client.Node, tag string)
}

var txnOps = []txnOp{{
	name:  "rename",
	coord: func(e *env, a, b client.Node) int { return e.subOf(a.ID) },
	setup: func(e *env, a, b client.Node, tag string) { e.create(a, "r"+tag) },
	run: func(e *env, v *client.Volume, a, b client.Node, tag string) error {
		return v.Rename(e.ctx, a, "r"+tag, b, "r"+tag, 0)
	},
	done: func(e *env, a, b client.Node, tag string) {
		_, _, err := e.v.Lookup(e.ctx, a, "r"+tag)
		wantErr(e.t, "old name", err, client.ErrNotFound)
		n, _, err := e.v.Lookup(e.ctx, b, "r"+tag)
		mustOK(e.t, "new name", err)
		if nl := e.nlink(n); nl != 1 {
			e.t.Fatalf("nlink %d after rename, want 1", nl)
		}
	},
}, {
	name:  "link",
	coord: func(e *env, a, b client.Node) int { return e.subOf(b.ID) },
	setup: func(e *env, a, b client.Node, tag string) { e.create(a, "l"+tag) },
	run: func(e *env, v *client.Volume, a, b client.Node, tag string) error {
		n, _, err := v.Lookup(e.ctx, a, "l"+tag)
		if err != nil {
			return err
		}
		_, err = v.Link(e.ctx, n, b, "l"+tag)
		return err
	},
	done: func(e *env, a, b client.Node, tag string) {
		n, _, err := e.v.Lookup(e.ctx, a, "l"+tag)
		mustOK(e.t, "old name", err)
		m, _, err := e.v.Lookup(e.ctx, b, "l"+tag)
		mustOK(e.t, "new name", err)
		if n.ID != m.ID || e.nlink(n) != 2 {
			e.t.Fatalf("link: ids %v %v, nlink %d (want 2)", n.ID, m.ID, e.nlink(n))
		}
	},
}, {
	name:  "exchange",
	coord: func(e *env, a, b client.Node) int { return e.subOf(a.ID) },
	setup: func(e *env, a, b client.Node, tag string) { e.create(a, "x"+tag); e.create(b, "x"+tag) },
	run: func(e *env, v *client.Volume, a, b client.Node, tag string) error {
		return v.Rename(e.ctx, a, "x"+tag, b, "x"+tag, client.RenameExchange)
	},
	done: func(e *env, a, b client.Node, tag string) {
		// Files keep their locator (the directory they were made in).
		n, _, err := e.v.Lookup(e.ctx, a, "x"+tag)
		mustOK(e.t, "a's name", err)
		m, _, err := e.v.Lookup(e.ctx, b, "x"+tag)
		mustOK(e.t, "b's name", err)
		if n.Locator != b.ID || m.Locator != a.ID || e.nlink(n) != 1 || e.nlink(m) != 1 {
			e.t.Fatalf("exchange: a's name -> %v, b's name -> %v (nlink %d, %d)", n, m, e.nlink(n), e.nlink(m))
		}
	},
}, {
	name:  "rmdir",
	coord: func(e *env, a, b client.Node) int { return e.subOf(a.ID) },
	setup: func(e *env, a, b client.Node, tag string) {
		e.mkdirWhere(a, "d"+tag+"-", func(n client.Node) bool { return e.subOf(n.ID) != e.subOf(a.ID) })
	},
	run: func(e *env, v *client.Volume, a, b client.Node, tag string) error {
		ents, _, err := v.ReadDir(e.ctx, a, "", 0)
		if err != nil {
			return err
		}
		for _, d := range ents {
			if len(d.Name) > len(tag)+2 && d.Name[:len(tag)+2] == "d"+tag+"-" && e.subOf(d.Node.ID) != e.subOf(a.ID) {
				return v.Rmdir(e.ctx, a, d.Name)
			}
		}
		e.t.Fatal("directory to remove not found")
		return nil
	},
	done: func(e *env, a, b client.Node, tag string) {
		ents, _, err := e.v.ReadDir(e.ctx, a, "", 0)
		mustOK(e.t, "readdir", err)
		for _, d := range ents {
			if len(d.Name) > len(tag)+2 && d.Name[:len(tag)+2] == "d"+tag+"-" && e.subOf(d.Node.ID) != e.subOf(a.ID) {
				e.t.Fatalf("rmdir left %s", d.Name)
			}
		}
		for _, s := range e.c.Subvolumes {
			if txns, _ := s.Store().Txns(e.ctx); len(txns) > 0 {
				for _, in := range txns {
					if in.State != dfspb.TxnState_TXN_STATE_DONE {
						e.t.Fatalf("transaction left %v", in.State)
					}
				}
			}
		}
	},
}}

// TestTxnCoordinatorStopsMidway: the coordinator stops after each point
// of the protocol, once (as a crashed leader); the client's retry of the
// same transaction finishes it, exactly once.
func TestTxnCoordinatorStopsMidway(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	a, b := pairAcross(e)
	for _, op := range txnOps {
		for _, point := range []string{"begun", "prepared", "decided"} {
			tag := op.name + "-" + point
			t.Run(tag, func(t *testing.T) {
				op.setup(e, a, b, tag)
				var fired atomic.Bool
				co := e.c.Subvolumes[op.coord(e, a, b)].Txns()
				co.SetHook(func(p string, _ *dfspb.TxnIntent) bool { return p == point && fired.CompareAndSwap(false, true) })
				defer co.SetHook(nil)
				mustOK(t, op.name, op.run(e, e.v, a, b, tag))
				if !fired.Load() {
					t.Fatalf("hook at %s never fired", point)
				}
				op.done(e, a, b, tag)
			})
		}
	}
}

// TestTxnRecoveredByNewLeader: the client gives up while the coordinator
// is stuck after a point; the next leader (Recover) finishes it.
func TestTxnRecoveredByNewLeader(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	a, b := pairAcross(e)
	impatient := e.open(func(c *client.Config) { c.FailoverTimeout = 300 * time.Millisecond })
	for _, op := range txnOps {
		tag := op.name + "-recover"
		t.Run(tag, func(t *testing.T) {
			op.setup(e, a, b, tag)
			co := e.c.Subvolumes[op.coord(e, a, b)].Txns()
			co.SetHook(func(p string, _ *dfspb.TxnIntent) bool { return p == "prepared" })
			if err := op.run(e, impatient, a, b, tag); err == nil {
				t.Fatal("operation succeeded with its coordinator stuck")
			}
			co.SetHook(nil)
			mustOK(t, "recover", co.Recover(e.ctx, time.Now().UnixNano()))
			op.done(e, a, b, tag)
		})
	}
}

// TestTxnAborts: the remote step's failure is the answer, and nothing
// changed.
func TestTxnAborts(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	a, b := pairAcross(e)
	// rmdir of a non-empty directory on another subvolume.
	d := e.mkdirWhere(a, "full", func(n client.Node) bool { return e.subOf(n.ID) != e.subOf(a.ID) })
	e.create(d, "inside")
	ents, _, err := e.v.ReadDir(e.ctx, a, "", 0)
	mustOK(t, "readdir", err)
	var name string
	for _, x := range ents {
		if x.Node.ID == d.ID {
			name = x.Name
		}
	}
	wantErr(t, "rmdir of a full directory", e.v.Rmdir(e.ctx, a, name), client.ErrNotEmpty)
	e.create(d, "more") // not sealed
	// link over an existing name.
	f := e.create(a, "f")
	e.create(b, "taken")
	_, err = e.v.Link(e.ctx, f, b, "taken")
	wantErr(t, "link over a name", err, client.ErrExists)
	if n := e.nlink(f); n != 1 {
		t.Fatalf("nlink %d after a failed link, want 1", n)
	}
	// rename of a file onto a directory.
	e.mkdirWhere(b, "dir", func(client.Node) bool { return true })
	wantErr(t, "rename noreplace", e.v.Rename(e.ctx, a, "f", b, "taken", client.RenameNoReplace), client.ErrExists)
	if _, _, err := e.v.Lookup(e.ctx, a, "f"); err != nil {
		t.Fatalf("source gone after an aborted rename: %v", err)
	}
}

// TestTxnRenameOverFileFromElsewhere: a rename across subvolumes replaces
// a file whose inode lives on another subvolume than the entry (it was
// renamed there itself); the transaction drops its link there, and the
// client deletes its chunks. A coordinator that stops after the decision
// finishes it on the retry; one that a new leader recovers leaves only
// chunks (fsck's orphan chunks), never a wrong link count.
func TestTxnRenameOverFileFromElsewhere(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	a, b := pairAcross(e)
	big := bytes.Repeat([]byte("t"), 2<<20)
	for _, stop := range []string{"", "decided"} {
		t.Run("stop="+stop, func(t *testing.T) {
			tgt := e.writeFile(e.v, a, "tgt", big)
			mustOK(t, "move the target", e.v.Rename(e.ctx, a, "tgt", b, "target", 0))
			f := e.writeFile(e.v, a, "f", []byte("new"))
			co := e.c.Subvolumes[e.subOf(a.ID)].Txns()
			var fired atomic.Bool
			co.SetHook(func(p string, _ *dfspb.TxnIntent) bool { return p == stop && fired.CompareAndSwap(false, true) })
			defer co.SetHook(nil)
			mustOK(t, "rename over it", e.v.Rename(e.ctx, a, "f", b, "target", 0))
			if stop != "" && !fired.Load() {
				t.Fatal("hook never fired")
			}
			n, _, err := e.v.Lookup(e.ctx, b, "target")
			mustOK(t, "lookup", err)
			if n.ID != f.ID || e.nlink(n) != 1 {
				t.Fatalf("target is %v (nlink %d), want the renamed file", n.ID, e.nlink(n))
			}
			if !e.inodeGone(tgt) {
				t.Fatalf("replaced file's inode left (nlink %d)", e.nlink(tgt))
			}
			if c := e.chunks(); c != 0 {
				t.Fatalf("%d chunks left of the replaced file", c)
			}
			mustOK(t, "cleanup", e.v.Unlink(e.ctx, b, "target"))
		})
	}
	// Recovered by a new leader after the client gave up: the link count
	// is exact (the replaced file is gone), its chunks are fsck's.
	tgt := e.writeFile(e.v, a, "tgt", []byte("small"))
	mustOK(t, "move the target", e.v.Rename(e.ctx, a, "tgt", b, "target", 0))
	e.writeFile(e.v, a, "f", []byte("new"))
	impatient := e.open(func(c *client.Config) { c.FailoverTimeout = 300 * time.Millisecond })
	co := e.c.Subvolumes[e.subOf(a.ID)].Txns()
	co.SetHook(func(p string, _ *dfspb.TxnIntent) bool { return p == "prepared" })
	if err := impatient.Rename(e.ctx, a, "f", b, "target", 0); err == nil {
		t.Fatal("rename succeeded with its coordinator stuck")
	}
	co.SetHook(nil)
	mustOK(t, "recover", co.Recover(e.ctx, time.Now().UnixNano()))
	if !e.inodeGone(tgt) {
		t.Fatalf("replaced file's inode left after recovery (nlink %d)", e.nlink(tgt))
	}
}
