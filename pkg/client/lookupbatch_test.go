package client_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// batchDir makes directory name in the root with files f000.. (count of
// them, file i holding i bytes) and, every 50th name, a subdirectory
// fNNNd; it returns the directory and its children by name.
func (e *env) batchDir(name string, count int) (client.Node, map[string]client.Node) {
	e.t.Helper()
	dir, _, err := e.v.Mkdir(e.ctx, e.v.Root(), name, 0o755, 0, 0)
	mustOK(e.t, "mkdir", err)
	kids := map[string]client.Node{}
	for i := range count {
		n := fmt.Sprintf("f%04d", i)
		kids[n] = e.writeFile(e.v, dir, n, make([]byte, i))
		if i%50 == 0 {
			d, _, err := e.v.Mkdir(e.ctx, dir, n+"d", 0o700, 0, 0)
			mustOK(e.t, "mkdir", err)
			kids[n+"d"] = d
		}
	}
	return dir, kids
}

// TestLookupAtBatchesARun: a cold client looking up every name of a
// directory in name order needs a few RPCs, not one per name, and gets
// the same answers as Lookup.
func TestLookupAtBatchesARun(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	dir, kids := e.batchDir("d", 300)
	v := e.open()
	before := e.calls()
	for i := range 300 {
		name := fmt.Sprintf("f%04d", i)
		for _, name := range []string{name, name + "d"} {
			want, ok := kids[name]
			if !ok {
				continue
			}
			t0 := time.Now()
			n, a, asOf, err := v.LookupAt(e.ctx, dir, name, time.Second)
			mustOK(t, "lookup "+name, err)
			if n != want || a == nil || !asOf.Before(time.Now()) || t0.Sub(asOf) > time.Second {
				t.Fatalf("lookup %s: %v %v as of %v, want %v", name, n, a, asOf, want)
			}
			if n.IsDir() {
				if a.Type != dfspb.FileType_FILE_TYPE_DIR || a.Mode != 0o700 {
					t.Fatalf("lookup %s: attributes %v", name, a)
				}
			} else if a.Size != uint64(i) {
				t.Fatalf("lookup %s: size %d, want %d", name, a.Size, i)
			}
		}
	}
	rpcs := e.calls() - before
	answered, pages := v.LookupBatchStats()
	t.Logf("306 lookups: %d RPCs, %d pages, %d answered from pages", rpcs, pages, answered)
	// 4 lookups start the run; pages of 64, 128, 256 cover the rest; the
	// 6 subdirectories' attributes are one GetAttr each.
	if rpcs > 16 || answered < 290 {
		t.Fatalf("306 lookups in name order: %d RPCs, %d answered from %d pages", rpcs, answered, pages)
	}

	// Lookup (no maxAge) never answers from a page.
	before = e.calls()
	_, _, err := v.Lookup(e.ctx, dir, "f0100")
	mustOK(t, "lookup", err)
	if e.calls() == before {
		t.Fatal("Lookup answered without an RPC")
	}
}

// TestLookupAtNoRunNoPage: lookups that are not a run (too few, or
// further apart than maxAge) read no page, and names that do not exist
// are not answered from one.
func TestLookupAtNoRunNoPage(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	dir, _ := e.batchDir("d", 20)
	v := e.open()
	for _, name := range []string{"f0001", "f0002", "f0003"} {
		_, _, _, err := v.LookupAt(e.ctx, dir, name, time.Second)
		mustOK(t, "lookup", err)
	}
	for _, name := range []string{"f0004", "f0005", "f0006", "f0007", "f0008"} {
		time.Sleep(25 * time.Millisecond)
		_, _, _, err := v.LookupAt(e.ctx, dir, name, 20*time.Millisecond)
		mustOK(t, "lookup", err)
	}
	// Misses do not count toward a run.
	for i := range 10 {
		_, _, _, err := v.LookupAt(e.ctx, dir, fmt.Sprintf("x%d", i), time.Second)
		wantErr(t, "lookup of a missing name", err, client.ErrNotFound)
	}
	if _, pages := v.LookupBatchStats(); pages != 0 {
		t.Fatalf("%d pages read without a run", pages)
	}
	// A run, then a name the page does not hold: asked by RPC.
	for i := range 8 {
		_, _, _, err := v.LookupAt(e.ctx, dir, fmt.Sprintf("f%04d", i), time.Second)
		mustOK(t, "lookup", err)
	}
	if _, pages := v.LookupBatchStats(); pages != 1 {
		t.Fatalf("%d pages read for a run, want 1", pages)
	}
	mustOK(t, "create", func() error { _, _, err := e.v.Create(e.ctx, dir, "f0005x", 0o644, 0, 0, true); return err }())
	before := e.calls()
	_, _, _, err := v.LookupAt(e.ctx, dir, "f0005x", time.Second)
	mustOK(t, "lookup of a name created elsewhere after the page", err)
	if e.calls() == before {
		t.Fatal("a name the page does not hold was answered without an RPC")
	}
}

// TestLookupAtLocalChanges: a change made through the client edits its
// pages, so its own lookups see it at once, and answers from the page
// (no RPC) follow a chmod, a write, a rename and a create.
func TestLookupAtLocalChanges(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	dir, kids := e.batchDir("d", 40)
	v := e.v
	lookup := func(name string) (client.Node, *dfspb.Attr, error) {
		n, a, _, err := v.LookupAt(e.ctx, dir, name, time.Second)
		return n, a, err
	}
	run := func() {
		t.Helper()
		for i := range 8 {
			_, _, err := lookup(fmt.Sprintf("f%04d", i))
			mustOK(t, "lookup", err)
		}
		if _, _, err := lookup("f0030"); err != nil {
			t.Fatal(err)
		}
	}
	pages := func() uint64 { _, p := v.LookupBatchStats(); return p }
	// fromPage fails unless the lookups in f made no RPC (a page as old
	// as maxAge is read again: allowed, on a slow machine).
	fromPage := func(what string, f func()) {
		t.Helper()
		c, p := e.calls(), pages()
		f()
		if e.calls() != c && pages() == p {
			t.Fatalf("%s: %d RPCs, no page read", what, e.calls()-c)
		}
	}

	run()
	p0 := pages()
	mustOK(t, "unlink", v.Unlink(e.ctx, dir, "f0020"))
	_, _, err := lookup("f0020")
	wantErr(t, "lookup after unlink", err, client.ErrNotFound)

	run()
	_, err = v.SetAttr(e.ctx, kids["f0021"], client.SetAttrIn{Mask: client.SetMode, Mode: 0o600})
	mustOK(t, "chmod", err)
	fromPage("lookup after chmod", func() {
		if _, a, err := lookup("f0021"); err != nil || a.Mode != 0o600 {
			t.Fatalf("lookup after chmod: %v %v", a, err)
		}
	})

	run()
	e.writeFile(v, dir, "f0022", make([]byte, 5000))
	fromPage("lookup after a write", func() {
		if _, a, err := lookup("f0022"); err != nil || a.Size != 5000 {
			t.Fatalf("lookup after a write: %v %v", a, err)
		}
	})

	run()
	mustOK(t, "rename", v.Rename(e.ctx, dir, "f0023", dir, "f0023x", 0))
	_, _, err = lookup("f0023")
	wantErr(t, "lookup of a renamed name", err, client.ErrNotFound)
	fromPage("lookup of a rename's new name", func() {
		if n, a, err := lookup("f0023x"); err != nil || n != kids["f0023"] || a.Size != 23 {
			t.Fatalf("lookup of the new name: %v %v %v", n, a, err)
		}
	})

	run()
	created := e.create(dir, "f0024a")
	fromPage("lookup after create", func() {
		if n, _, err := lookup("f0024a"); err != nil || n != created {
			t.Fatalf("lookup after create: %v %v", n, err)
		}
	})
	if p0 == 0 {
		t.Fatal("the runs read no page")
	}
}

// TestLookupAtAge: a page answers only while younger than maxAge, and
// says how old its answer is; a change made by another client is seen
// once maxAge has passed.
func TestLookupAtAge(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	dir, kids := e.batchDir("d", 40)
	v := e.open()
	const maxAge = 200 * time.Millisecond
	for i := range 8 {
		_, _, _, err := v.LookupAt(e.ctx, dir, fmt.Sprintf("f%04d", i), maxAge)
		mustOK(t, "lookup", err)
	}
	_, err := e.v.SetAttr(e.ctx, kids["f0030"], client.SetAttrIn{Mask: client.SetMode, Mode: 0o600})
	mustOK(t, "chmod elsewhere", err)
	changed := time.Now()
	_, a, asOf, err := v.LookupAt(e.ctx, dir, "f0030", maxAge)
	mustOK(t, "lookup", err)
	if a.Mode != 0o600 && !asOf.Before(changed) {
		t.Fatalf("old mode %o answered as of %v, after the change at %v", a.Mode, asOf, changed)
	}
	time.Sleep(maxAge)
	_, a, _, err = v.LookupAt(e.ctx, dir, "f0030", maxAge)
	if err != nil || a.Mode != 0o600 {
		t.Fatalf("lookup %v after the change: %v %v", maxAge, a, err)
	}
}

// TestLookupAtRandomOrder: lookups in random order in a large directory
// read few pages (a page that was little used must be earned by a run
// twice as long).
func TestLookupAtRandomOrder(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	dir, _ := e.batchDir("d", 1000)
	v := e.open()
	before := e.calls()
	for range 200 {
		name := fmt.Sprintf("f%04d", rand.IntN(1000))
		_, _, _, err := v.LookupAt(e.ctx, dir, name, time.Second)
		if err != nil && !errors.Is(err, client.ErrNotFound) {
			t.Fatal(err)
		}
	}
	rpcs := e.calls() - before
	_, pages := v.LookupBatchStats()
	t.Logf("200 random lookups: %d RPCs, %d pages", rpcs, pages)
	// Runs of 4, 8, 16, 32, 64, 64 RPC lookups before each page.
	if pages > 8 || rpcs > 200+int64(pages) {
		t.Fatalf("200 random lookups: %d RPCs, %d pages", rpcs, pages)
	}
}

// TestLookupAtReplacedElsewhere: a page holding a name another client
// then replaced (rename over it) answers the old inode; once its
// attributes are found gone (the open's GetAttr: the kernel answers
// ESTALE and looks the name up again), the next lookup asks the brick.
func TestLookupAtReplacedElsewhere(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	dir, kids := e.batchDir("d", 20)
	v := e.open()
	for i := range 8 {
		_, _, _, err := v.LookupAt(e.ctx, dir, fmt.Sprintf("f%04d", i), time.Second)
		mustOK(t, "lookup", err)
	}
	fresh := e.writeFile(e.v, dir, "new", []byte("x"))
	mustOK(t, "rename over", e.v.Rename(e.ctx, dir, "new", dir, "f0010", 0))
	n, _, _, err := v.LookupAt(e.ctx, dir, "f0010", time.Second)
	mustOK(t, "lookup", err)
	if n != kids["f0010"] {
		t.Fatalf("lookup from the page: %v, want the old inode %v", n, kids["f0010"])
	}
	_, err = v.GetAttr(e.ctx, n)
	wantErr(t, "getattr of the replaced inode", err, client.ErrNotFound)
	n, _, _, err = v.LookupAt(e.ctx, dir, "f0010", time.Second)
	if err != nil || n != fresh {
		t.Fatalf("lookup after the old inode was found gone: %v %v, want %v", n, err, fresh)
	}
}
