package client_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// TestRenameSealedTargetReplacedMeanwhile: a rename over a directory
// whose inode is on another subvolume looks the target up (D1) and seals
// it. If another client meanwhile removes D1 and moves a non-empty
// directory D2 to the same name, the seal of D1 fails with not-found; the
// rename must then not be sent as "target sealed", since the store would
// replace whatever directory the name holds by then (D2, not empty: its
// whole tree would become unreachable).
func TestRenameSealedTargetReplacedMeanwhile(t *testing.T) {
	r := newSealRace(t)
	e, dir, d1, d2, keep, target, d2Name, srcName := r.e, r.dir, r.d1, r.d2, r.keep, r.target, r.d2Name, r.srcName

	// Client A's seal of D1 first lets client B (e.v) remove D1 and move
	// D2 to its name.
	var once sync.Once
	intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if cmd, ok := req.(*dfspb.StoreCommand); ok && bytes.Equal(cmd.GetSealDir().GetDir(), d1.ID[:]) {
			once.Do(func() {
				mustOK(t, "rmdir D1 (client B)", e.v.Rmdir(e.ctx, dir, target))
				mustOK(t, "move D2 to D1's name (client B)", e.v.Rename(e.ctx, dir, d2Name, dir, target, 0))
			})
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	err := renameThrough(e, intercept, dir, srcName, target)

	n, _, lerr := e.v.Lookup(e.ctx, dir, target)
	mustOK(t, "lookup target", lerr)
	if n.ID != d2.ID {
		t.Fatalf("rename over %q returned %v and replaced the non-empty directory moved there meanwhile (file %v in it is now unreachable)", target, err, keep.ID)
	}
	wantErr(t, "rename over a non-empty directory", err, client.ErrNotEmpty)
	if got := e.readAll(e.v, keep); string(got) != "precious" {
		t.Fatalf("file in D2 reads %q", got)
	}
}

// TestRenameSealedTargetReplacedAfterSeal: the same race one step
// later: D1 is sealed, then another client removes it and moves non-empty
// D2 to its name before the rename is applied. The rename names the
// directory it sealed (sealed_target), so the store refuses to replace D2.
func TestRenameSealedTargetReplacedAfterSeal(t *testing.T) {
	r := newSealRace(t)
	e, dir, d1, d2, keep, target, d2Name, srcName := r.e, r.dir, r.d1, r.d2, r.keep, r.target, r.d2Name, r.srcName

	var once sync.Once
	intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if cmd, ok := req.(*dfspb.StoreCommand); ok && cmd.GetRename().GetTargetSealed() {
			once.Do(func() {
				if err := e.v.Rmdir(e.ctx, dir, target); err != nil {
					t.Logf("rmdir of the sealed D1 (client B): %v", err)
					return
				}
				mustOK(t, "move D2 to D1's name (client B)", e.v.Rename(e.ctx, dir, d2Name, dir, target, 0))
			})
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	err := renameThrough(e, intercept, dir, srcName, target)
	n, _, lerr := e.v.Lookup(e.ctx, dir, target)
	mustOK(t, "lookup target", lerr)
	if n.ID != d2.ID && n.ID != d1.ID {
		t.Fatalf("rename over %q returned %v and replaced the non-empty directory moved there meanwhile (file %v in it is now unreachable)", target, err, keep.ID)
	}
}

// sealRace is the stage of a rename over a directory on another
// subvolume (d1, named target in dir) that another client replaces by a
// non-empty one (d2, holding keep) while the rename runs.
type sealRace struct {
	e                       *env
	dir, d1, d2, keep       client.Node
	target, d2Name, srcName string
}

func newSealRace(t *testing.T) *sealRace {
	e := newEnv(t, clienttest.Options{})
	root := e.v.Root()
	r := &sealRace{e: e}
	r.dir = e.mkdirWhere(root, "d", func(n client.Node) bool { return e.subOf(n.ID) == e.subOf(root.ID) })
	remote := func(n client.Node) bool { return e.subOf(n.ID) != e.subOf(r.dir.ID) }
	r.d1 = e.mkdirWhere(r.dir, "t", remote)
	r.target = lookupName(t, e, r.dir, r.d1)
	r.d2 = e.mkdirWhere(r.dir, "u", remote)
	r.d2Name = lookupName(t, e, r.dir, r.d2)
	r.keep = e.writeFile(e.v, r.d2, "keep", []byte("precious"))
	src := e.mkdirWhere(r.dir, "s", func(client.Node) bool { return true })
	r.srcName = lookupName(t, e, r.dir, src)
	return r
}

// renameThrough renames srcName over target in dir through a client whose
// calls pass intercept.
func renameThrough(e *env, intercept grpc.UnaryClientInterceptor, dir client.Node, srcName, target string) error {
	a := e.open(func(c *client.Config) {
		c.DialOptions = append(c.DialOptions, grpc.WithChainUnaryInterceptor(intercept))
	})
	return a.Rename(e.ctx, dir, srcName, dir, target, 0)
}
