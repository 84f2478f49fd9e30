package client_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

// TestLookupAtRenameRemoveLoops: a cold client renaming every file of a
// directory in name order, as the mount does it (stat of the target,
// lookup of the source, rename), and then removing them (lookup,
// unlink), keeps its page of the directory through its own changes: a
// rename costs the target's Lookup and the Rename, a remove the Unlink,
// plus a ReadDir now and then. Every answer is what Lookup gives.
func TestLookupAtRenameRemoveLoops(t *testing.T) {
	const files = 200
	e := newEnv(t, clienttest.Options{})
	dir, kids := e.batchDir("d", files)
	v := e.open()
	lookup := func(name string) (client.Node, error) {
		n, _, _, err := v.LookupAt(e.ctx, dir, name, time.Second)
		return n, err
	}
	var names []string
	for i := range files {
		names = append(names, fmt.Sprintf("f%04d", i))
	}
	before := e.calls()
	for i, name := range names {
		_, err := lookup(name + ".r")
		wantErr(t, "lookup of the target", err, client.ErrNotFound)
		n, a, _, err := v.LookupAt(e.ctx, dir, name, time.Second)
		mustOK(t, "lookup of the source", err)
		if n != kids[name] || a.Size != uint64(i) {
			t.Fatalf("lookup %s: %v size %d, want %v size %d", name, n, a.Size, kids[name], i)
		}
		mustOK(t, "rename", v.Rename(e.ctx, dir, name, dir, name+".r", 0))
	}
	renames := e.calls() - before
	before = e.calls()
	for i, name := range names {
		n, a, _, err := v.LookupAt(e.ctx, dir, name+".r", time.Second)
		mustOK(t, "lookup before remove", err)
		if n != kids[name] || a.Size != uint64(i) {
			t.Fatalf("lookup %s.r: %v size %d, want %v size %d", name, n, a.Size, kids[name], i)
		}
		mustOK(t, "unlink", v.Unlink(e.ctx, dir, name+".r"))
		_, err = lookup(name + ".r")
		wantErr(t, "lookup after unlink", err, client.ErrNotFound)
	}
	removes := e.calls() - before
	t.Logf("%d renames: %d RPCs; %d removes (each looked up again after): %d RPCs", files, renames, files, removes)
	// Without the pages: 3 RPCs a rename, 3 a remove (lookup, unlink,
	// lookup of the name gone).
	if renames > files*22/10 || removes > files*22/10 {
		t.Fatalf("%d renames: %d RPCs; %d removes: %d RPCs", files, renames, files, removes)
	}
}
