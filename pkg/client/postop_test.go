package client

import (
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

func dirAttr(id layout.ID, ctime int64) *dfspb.Attr {
	return &dfspb.Attr{Id: id[:], Type: dfspb.FileType_FILE_TYPE_DIR, CtimeNs: ctime}
}

func createIn(dir layout.ID) *dfspb.StoreCommand {
	return &dfspb.StoreCommand{Op: &dfspb.StoreCommand_CreateEntry{CreateEntry: &dfspb.CreateEntryCmd{Parent: dir[:], Name: "f"}}}
}

func TestPostOpsRecordAndForget(t *testing.T) {
	var p postOps
	d, e := layout.NewID(), layout.NewID()

	ep := p.start()
	p.afterMutate(ep, createIn(d), &dfspb.StoreResult{Parent: dirAttr(d, 10)})
	if a := p.get(d, time.Second); a == nil || a.CtimeNs != 10 {
		t.Fatalf("after a create: %v, want ctime 10", a)
	}
	if a := p.get(d, 0); a != nil {
		t.Fatalf("maxAge 0 answered %v", a)
	}

	// An older answer (a concurrent create applied first) keeps the newer.
	p.afterMutate(p.start(), createIn(d), &dfspb.StoreResult{Parent: dirAttr(d, 5)})
	if a := p.get(d, time.Second); a.CtimeNs != 10 {
		t.Fatalf("older answer replaced a newer one: ctime %d", a.CtimeNs)
	}

	// File data commands change no directory.
	p.afterMutate(p.start(), &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteInline{WriteInline: &dfspb.WriteInlineCmd{Id: d[:]}}}, &dfspb.StoreResult{})
	if p.get(d, time.Second) == nil {
		t.Fatal("a write forgot the directory")
	}

	// A setattr of d forgets d only.
	p.afterMutate(p.start(), createIn(e), &dfspb.StoreResult{Parent: dirAttr(e, 20)})
	p.afterMutate(p.start(), &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SetAttr{SetAttr: &dfspb.SetAttrCmd{Id: d[:]}}}, &dfspb.StoreResult{})
	if p.get(d, time.Second) != nil || p.get(e, time.Second) == nil {
		t.Fatal("setattr of d: want d forgotten and e kept")
	}

	// A create whose answer was started before a forget is not recorded
	// (it may predate the change that forgot).
	ep = p.start()
	p.forget(d[:])
	p.afterMutate(ep, createIn(d), &dfspb.StoreResult{Parent: dirAttr(d, 30)})
	if a := p.get(d, time.Second); a != nil {
		t.Fatalf("an answer older than a forget was recorded: %v", a)
	}

	// A failure (unknown outcome) or a command of unknown effect forgets all.
	p.afterMutate(p.start(), createIn(d), &dfspb.StoreResult{Parent: dirAttr(d, 40)})
	p.afterMutate(p.start(), createIn(d), nil)
	if p.get(d, time.Second) != nil || p.get(e, time.Second) != nil {
		t.Fatal("a failed mutation did not forget every directory")
	}

	// A rename across directories forgets the old parent and records
	// nothing (the answer describes the new parent only).
	p.afterMutate(p.start(), createIn(d), &dfspb.StoreResult{Parent: dirAttr(d, 50)})
	mv := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Rename{Rename: &dfspb.RenameCmd{OldParent: d[:], NewParent: e[:]}}}
	p.afterMutate(p.start(), mv, &dfspb.StoreResult{Parent: dirAttr(e, 60)})
	if p.get(d, time.Second) != nil {
		t.Fatal("rename out of d kept d's attributes")
	}
	// A rename within one directory records it.
	in := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Rename{Rename: &dfspb.RenameCmd{OldParent: e[:], NewParent: e[:]}}}
	p.afterMutate(p.start(), in, &dfspb.StoreResult{Parent: dirAttr(e, 70)})
	if a := p.get(e, time.Second); a == nil || a.CtimeNs != 70 {
		t.Fatalf("rename within e: %v, want ctime 70", a)
	}

	// Only directories are kept.
	f := layout.NewID()
	p.record(p.start(), &dfspb.Attr{Id: f[:], Type: dfspb.FileType_FILE_TYPE_FILE})
	if p.get(f, time.Second) != nil {
		t.Fatal("a file's attributes were kept")
	}
}
