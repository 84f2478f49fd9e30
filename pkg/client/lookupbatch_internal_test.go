package client

import (
	"fmt"
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// startRun counts a run of lookups of dir and returns the fetch it
// plans (planFetch, gen and size), failing if it plans none.
func startRun(t *testing.T, b *lookupBatches, dir layout.ID, now time.Time) (uint64, int) {
	t.Helper()
	for i := range lookupRun {
		b.hit(dir, fmt.Sprint(i), time.Second, now)
	}
	_, _, plan, gen, size := b.plan(dir, "a", time.Second, now)
	if plan != planFetch {
		t.Fatalf("after a run: plan %d, want a fetch", plan)
	}
	return gen, size
}

func page(names ...string) []DirEntry {
	var out []DirEntry
	for _, n := range names {
		out = append(out, DirEntry{Name: n, Node: Node{ID: layout.NewID()}, Attr: &dfspb.Attr{}})
	}
	return out
}

// TestLookupBatchesBounded: the directories counted and the pages held
// stay within their bounds.
func TestLookupBatchesBounded(t *testing.T) {
	var b lookupBatches
	now := time.Now()
	for range 3 * lookupRunDirs {
		b.hit(layout.NewID(), "a", time.Second, now)
	}
	if len(b.dirs) > lookupRunDirs {
		t.Fatalf("%d directories counted, bound %d", len(b.dirs), lookupRunDirs)
	}
	clear(b.dirs)

	// The same name looked up again and again is no run.
	d := layout.NewID()
	for range 2 * lookupRun {
		b.hit(d, "same", time.Second, now)
	}
	if _, _, got, _, _ := b.plan(d, "other", time.Second, now); got != planRPC {
		t.Fatalf("lookups of one name: plan %d, want an RPC", got)
	}
	clear(b.dirs)
	for range 2 * lookupBatchDirs {
		d := layout.NewID()
		gen, size := startRun(t, &b, d, now)
		if size != lookupBatchMin {
			t.Fatalf("first page of %d entries, want %d", size, lookupBatchMin)
		}
		b.install(d, gen, "", page("a", "b"), true, now)
	}
	held := 0
	for _, d := range b.dirs {
		if !d.at.IsZero() {
			held++
		}
	}
	if held > lookupBatchDirs {
		t.Fatalf("%d pages held, bound %d", held, lookupBatchDirs)
	}
}

// TestLookupBatchesPlan: answers within a page's range and age, pages
// growing while used, and a drop during a read keeps its page out.
func TestLookupBatchesPlan(t *testing.T) {
	var b lookupBatches
	d := layout.NewID()
	now := time.Now()
	gen, _ := startRun(t, &b, d, now)
	b.install(d, gen, "b", page("b1", "b2", "b4"), false, now)
	for _, c := range []struct {
		name string
		at   time.Time
		want lookupPlan
	}{
		{"b1", now, planAnswered},
		{"b4", now.Add(999 * time.Millisecond), planAnswered},
		{"b3", now, planAbsent}, // within the page's range
		{"b", now, planAbsent},  // just before it (a prefix of its start): RPC, the page stays
		{"c", now, planFetch},   // past it: the run goes on, and 2 of 3 were used
		{"b2", now, planRPC},    // the page went; a read is under way
		{"b2", now, planRPC},
	} {
		_, _, got, _, _ := b.plan(d, c.name, time.Second, c.at)
		if got != c.want {
			t.Fatalf("plan %s at +%v: %d, want %d", c.name, c.at.Sub(now), got, c.want)
		}
	}
	if s := b.dirs[d].size; s != 2*lookupBatchMin {
		t.Fatalf("next page %d entries after a used one, want %d", s, 2*lookupBatchMin)
	}
	b.install(d, gen, "b", page("b1", "b2", "b4", "c"), true, now)
	if _, _, got, _, _ := b.plan(d, "zzz", time.Second, now.Add(time.Second)); got == planAnswered || got == planAbsent {
		t.Fatalf("a page as old as maxAge answered: %d", got)
	}

	// A page little used: the next one must be earned by a new run.
	b.drop()
	gen, _ = startRun(t, &b, d, now)
	b.install(d, gen, "", page(fmtNames(100)...), false, now)
	b.plan(d, "n000", time.Second, now)
	if _, _, got, _, _ := b.plan(d, "zzz", time.Second, now); got != planRPC {
		t.Fatalf("after a page of 100 used once: plan %d, want an RPC", got)
	}
	if s := b.dirs[d].size; s != lookupBatchMin {
		t.Fatalf("next page %d entries after an unused one, want %d", s, lookupBatchMin)
	}

	// ... twice as long as the first.
	for i := range lookupRun {
		b.hit(d, fmt.Sprint(i), time.Second, now)
	}
	if _, _, got, _, _ := b.plan(d, "zzz", time.Second, now); got != planRPC {
		t.Fatalf("a run of %d after a page little used: plan %d, want an RPC", lookupRun, got)
	}
	gen, _ = startRun(t, &b, d, now)
	b.install(d, gen, "", page("a"), true, now)

	// A drop while a page is being read keeps it out.
	b.drop()
	gen, _ = startRun(t, &b, d, now)
	b.drop()
	b.install(d, gen, "", page("a", "b"), true, now)
	if _, _, got, _, _ := b.plan(d, "a", time.Second, now); got != planRPC {
		t.Fatalf("a page read across a drop answered: plan %d", got)
	}
}

func fmtNames(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("n%03d", i))
	}
	return out
}
