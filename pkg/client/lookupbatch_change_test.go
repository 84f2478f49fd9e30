package client

import (
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// TestLookupBatchesChange: mutations made through the client edit the
// pages (entries put, taken out, moved; attributes replaced or
// forgotten), except what the pages cannot follow, and a page read after
// a mutation started is not edited with its older answer.
func TestLookupBatchesChange(t *testing.T) {
	now := time.Now()
	start := now.Add(time.Millisecond) // the mutations start after the page was read
	d, other := layout.NewID(), layout.NewID()
	fresh := func() *lookupBatches {
		b := &lookupBatches{}
		gen, _ := startRun(t, b, d, now)
		b.install(d, gen, "a", page("b", "d", "f"), false, now) // covers (a, f]
		gen, _ = startRun(t, b, other, now)
		b.install(other, gen, "", page("x"), true, now)
		return b
	}
	// lookup answers name from d's page: its entry, or planAbsent.
	lookup := func(b *lookupBatches, dir layout.ID, name string) (DirEntry, lookupPlan) {
		e, _, p, _, _ := b.plan(dir, name, time.Second, now)
		return e, p
	}
	entry := func(b *lookupBatches, dir layout.ID, name string) DirEntry {
		t.Helper()
		e, p := lookup(b, dir, name)
		if p != planAnswered {
			t.Fatalf("%s: plan %d, want an answer from the page", name, p)
		}
		return e
	}
	absent := func(b *lookupBatches, dir layout.ID, name string) {
		t.Helper()
		if _, p := lookup(b, dir, name); p != planAbsent {
			t.Fatalf("%s: plan %d, want absent from the page", name, p)
		}
	}
	file := func(id layout.ID, size uint64) *dfspb.Attr {
		return &dfspb.Attr{Id: id[:], Type: dfspb.FileType_FILE_TYPE_FILE, Size: size}
	}
	dirent := func(id layout.ID) *dfspb.Dirent {
		return &dfspb.Dirent{Id: id[:], Locator: d[:], Type: dfspb.FileType_FILE_TYPE_FILE}
	}
	parent := &dfspb.Attr{Id: d[:], Type: dfspb.FileType_FILE_TYPE_DIR}

	// Create: the entry is put with its attributes; a name outside the
	// page's range is not.
	b := fresh()
	id := layout.NewID()
	create := func(name string) *dfspb.StoreCommand {
		return &dfspb.StoreCommand{Op: &dfspb.StoreCommand_CreateEntry{CreateEntry: &dfspb.CreateEntryCmd{Parent: d[:], Name: name}}}
	}
	if !b.change(start, create("c"), &dfspb.StoreResult{Dirent: dirent(id), Attr: file(id, 0), Parent: parent}) {
		t.Fatal("create not followed")
	}
	if e := entry(b, d, "c"); e.Node.ID != id || e.Attr.GetSize() != 0 {
		t.Fatalf("created entry %+v", e)
	}
	b.change(start, create("g"), &dfspb.StoreResult{Dirent: dirent(layout.NewID()), Parent: parent})
	if _, ok := b.dirs[d].find("g"); ok {
		t.Fatal("a name past the page's range was put in it")
	}

	// Close's data: the attributes are replaced by the answer's.
	b.change(start, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteInline{WriteInline: &dfspb.WriteInlineCmd{Id: id[:]}}},
		&dfspb.StoreResult{Attr: file(id, 4096)})
	if e := entry(b, d, "c"); e.Attr.GetSize() != 4096 {
		t.Fatalf("after a write: size %d", e.Attr.GetSize())
	}
	// A chunk write's answer has no attributes: they are forgotten.
	b.change(start, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteExtents{WriteExtents: &dfspb.WriteExtentsCmd{File: id[:]}}},
		&dfspb.StoreResult{})
	if e := entry(b, d, "c"); e.Attr != nil {
		t.Fatalf("after a chunk write: attributes %v kept", e.Attr)
	}

	// Rename within the directory: the old name goes, the new one comes
	// with the answer's attributes; the replaced inode's attributes are
	// forgotten wherever the pages hold them.
	moved := entry(b, d, "b").Node.ID
	replaced := entry(b, d, "d").Node.ID
	b.dirs[other].ents[0].Node.ID = replaced // a second link, in another directory
	rn := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Rename{Rename: &dfspb.RenameCmd{OldParent: d[:], OldName: "b", NewParent: d[:], NewName: "d"}}}
	if !b.change(start, rn, &dfspb.StoreResult{Dirent: &dfspb.Dirent{Id: moved[:], Locator: d[:], Attr: file(moved, 7)}, Parent: parent,
		Removed: &dfspb.RemovedInode{Id: replaced[:], Nlink: 1}}) {
		t.Fatal("rename not followed")
	}
	absent(b, d, "b")
	if e := entry(b, d, "d"); e.Node.ID != moved || e.Attr.GetSize() != 7 {
		t.Fatalf("renamed entry %+v", e)
	}
	if e := entry(b, other, "x"); e.Attr != nil {
		t.Fatal("the replaced inode's attributes were kept under its other name")
	}

	// Unlink takes the entry out.
	unlink := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Unlink{Unlink: &dfspb.UnlinkCmd{Parent: d[:], Name: "f"}}}
	gone := entry(b, d, "f").Node.ID
	b.change(start, unlink, &dfspb.StoreResult{Removed: &dfspb.RemovedInode{Id: gone[:]}, Parent: parent})
	absent(b, d, "f")

	// A page read after the mutation started may show it or not: it is
	// dropped rather than edited.
	b = fresh()
	b.change(now.Add(-time.Millisecond), unlink, &dfspb.StoreResult{Parent: parent})
	if _, p := lookup(b, d, "b"); p == planAnswered {
		t.Fatal("a page read after an unlink started was kept")
	}
	if _, p := lookup(b, other, "x"); p != planAnswered {
		t.Fatal("another directory's page was dropped")
	}

	// What the pages cannot follow: an exchange, a rename that changed
	// nothing, a command they do not know.
	b = fresh()
	for _, c := range []struct {
		cmd *dfspb.StoreCommand
		res *dfspb.StoreResult
	}{
		{&dfspb.StoreCommand{Op: &dfspb.StoreCommand_Rename{Rename: &dfspb.RenameCmd{OldParent: d[:], OldName: "b", NewParent: d[:], NewName: "d", Flags: RenameExchange}}},
			&dfspb.StoreResult{Dirent: dirent(id), Parent: parent}},
		{rn, &dfspb.StoreResult{Dirent: dirent(id)}},
		{&dfspb.StoreCommand{Op: &dfspb.StoreCommand_AdjustLink{AdjustLink: &dfspb.AdjustLinkCmd{Id: id[:]}}}, &dfspb.StoreResult{}},
	} {
		if b.change(start, c.cmd, c.res) {
			t.Fatalf("%T followed", c.cmd.Op)
		}
	}
	// Locks and new inodes change nothing a page holds, and do not end
	// a read under way.
	gen := b.gen
	b.change(start, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SetLock{SetLock: &dfspb.SetLockCmd{}}}, &dfspb.StoreResult{})
	if b.gen != gen {
		t.Fatal("a lock ended a page read under way")
	}
}
