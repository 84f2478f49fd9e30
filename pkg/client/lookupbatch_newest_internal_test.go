package client

import (
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// TestChangeKeepsNewestAttrs: two mutations of one file made
// through this Volume concurrently (a chmod, and an append or a close from
// another process) are answered in one order and their answers edit the
// pages in the other: the page must keep the attributes of the later
// commit (higher version), not the answer processed last. Otherwise a
// lookup answered from the page hands the kernel the mode (or size) from
// before this client's own chmod for up to the entry timeout.
func TestChangeKeepsNewestAttrs(t *testing.T) {
	now := time.Now()
	start := now.Add(time.Millisecond)
	d, id := layout.NewID(), layout.NewID()
	b := &lookupBatches{}
	gen, _ := startRun(t, b, d, now)
	attr := func(version uint64, mode uint32, size uint64) *dfspb.Attr {
		return &dfspb.Attr{Id: id[:], Type: dfspb.FileType_FILE_TYPE_FILE, Version: version, Mode: mode, Size: size}
	}
	b.install(d, gen, "a", []DirEntry{{Name: "b", Node: Node{ID: id, Type: dfspb.FileType_FILE_TYPE_FILE}, Attr: attr(5, 0o644, 0)}}, true, now)

	// The chmod committed second (version 7) but its answer is handled
	// first; the append committed first (version 6) is handled after.
	chmod := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SetAttr{SetAttr: &dfspb.SetAttrCmd{Id: id[:]}}}
	if !b.change(start, chmod, &dfspb.StoreResult{Attr: attr(7, 0o600, 100)}) {
		t.Fatal("chmod not followed")
	}
	appendCmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_AppendReserve{AppendReserve: &dfspb.AppendReserveCmd{Id: id[:]}}}
	if !b.change(start, appendCmd, &dfspb.StoreResult{Attr: attr(6, 0o644, 100)}) {
		t.Fatal("append not followed")
	}
	e, _, plan, _, _ := b.plan(d, "b", time.Second, now)
	if plan != planAnswered {
		t.Fatalf("plan %d, want an answer from the page", plan)
	}
	if e.Attr != nil && e.Attr.GetVersion() < 7 {
		t.Fatalf("the page answers version %d mode %o, older than this client's own chmod (version 7, mode 600)", e.Attr.GetVersion(), e.Attr.GetMode())
	}
}
