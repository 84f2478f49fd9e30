package fuse_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dfsproject/dfs/fuse"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

// calls counts the RPCs every brick of the fake volume served.
func (e *env) calls() int64 { return e.sumBricks((*clienttest.Brick).Calls) }

// sumBricks adds up count over every brick of the fake volume.
func (e *env) sumBricks(count func(*clienttest.Brick) int64) (n int64) {
	for _, sv := range e.c.Subvolumes {
		for _, b := range sv.Bricks {
			n += count(b)
		}
	}
	return n
}

// TestRenameRPCs: os.Rename of a file just created, to a new name, costs
// the kernel's LOOKUP of the new name (its stat) and the one Rename
// command: the kernel's second LOOKUP of the target, made by rename(2)
// itself, is answered from the miss just seen, and the client looks
// nothing up itself.
func TestRenameRPCs(t *testing.T) {
	e := mountEnv(t)
	dir := filepath.Join(e.mnt, "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const count = 20
	for i := range count {
		if err := os.WriteFile(filepath.Join(dir, string(rune('a'+i))), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := e.calls()
	for i := range count {
		p := filepath.Join(dir, string(rune('a'+i)))
		if err := os.Rename(p, p+".r"); err != nil {
			t.Fatal(err)
		}
	}
	rpcs := e.calls() - before
	t.Logf("%d renames: %d RPCs", count, rpcs)
	if rpcs > 2*count+2 {
		t.Errorf("%d renames cost %d RPCs, want about %d", count, rpcs, 2*count)
	}
	for i := range count {
		if got := e.readVia(filepath.Join(dir, string(rune('a'+i))+".r")); len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("renamed file %d reads %v", i, got)
		}
	}
}

// TestMissGrace: a name found absent is answered absent again only
// briefly: one another client made is seen once missGrace is over, and a
// rename over a target another client made within it still replaces that
// target (the store resolves it).
func TestMissGrace(t *testing.T) {
	e := mountEnv(t)
	ctx := t.Context()
	p := filepath.Join(e.mnt, "x")
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat of a missing name: %v", err)
	}
	if _, _, err := e.other.Create(ctx, e.other.Root(), "x", 0o644, 0, 0, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := os.Lstat(p); err != nil {
		t.Fatalf("a name another client made is not seen: %v", err)
	}

	src, dst := filepath.Join(e.mnt, "src"), filepath.Join(e.mnt, "dst")
	if err := os.WriteFile(src, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat of a missing name: %v", err)
	}
	theirs, _, err := e.other.Create(ctx, e.other.Root(), "dst", 0o644, 0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Rename(src, dst); err != nil {
		t.Fatalf("rename over a target made meanwhile: %v", err)
	}
	if got := e.readVia(dst); string(got) != "mine" {
		t.Fatalf("dst reads %q, want the renamed file", got)
	}
	if _, err := e.other.GetAttr(ctx, theirs); err == nil {
		t.Fatalf("the replaced target still exists")
	}
	if _, err := os.Lstat(src); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("old name after rename: %v", err)
	}
}

// TestColdRenameRemoveRPCs: renames and then removes of every file of a
// directory, in name order, after the kernel's entries expired: the
// mount reads a page of the directory after a few lookups and keeps it
// through its own renames and removes (pkg/client lookupbatch.go), so a
// rename costs its target's LOOKUP and the Rename (was 3 RPCs: the
// source's LOOKUP too) and a remove its Unlink (was 2), plus a ReadDir
// now and then. Names and contents are what they must be after.
func TestColdRenameRemoveRPCs(t *testing.T) {
	e := mountEnv(t)
	dir := filepath.Join(e.mnt, "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const count = 100
	name := func(i int) string { return filepath.Join(dir, fmt.Sprintf("f%03d", i)) }
	for i := range count {
		if err := os.WriteFile(name(i), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Let the kernel's entries (and any page of the creates) expire.
	expire := func() { time.Sleep(fuse.DefaultOptions().EntryTimeout + 100*time.Millisecond) }
	expire()
	before := e.calls()
	for i := range count {
		if err := os.Rename(name(i), name(i)+".r"); err != nil {
			t.Fatal(err)
		}
	}
	renames := e.calls() - before
	for i := range count {
		if got := e.readVia(name(i) + ".r"); len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("renamed file %d reads %v", i, got)
		}
	}
	expire()
	before = e.calls()
	for i := range count {
		if err := os.Remove(name(i) + ".r"); err != nil {
			t.Fatal(err)
		}
	}
	removes := e.calls() - before
	t.Logf("%d cold renames: %d RPCs; %d cold removes: %d RPCs", count, renames, count, removes)
	// Without the pages following the changes: 3 and 2 a name. Under
	// -race on a loaded machine a page may expire before it is used up,
	// costing a Lookup more now and then (226 renames seen).
	if renames > 2*count+count/2 || removes > count+count/2 {
		t.Errorf("%d cold renames cost %d RPCs, want about %d; %d cold removes %d, want about %d", count, renames, 2*count, count, removes, count)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Fatalf("after the removes: %d entries (%v)", len(ents), err)
	}
}
