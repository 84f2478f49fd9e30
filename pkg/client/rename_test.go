package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

func TestRenameWithinSubvolume(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	root := e.v.Root()
	a := e.writeFile(e.v, root, "a", []byte("aaa"))
	e.writeFile(e.v, root, "b", []byte("bbbb"))
	mustOK(t, "rename", e.v.Rename(e.ctx, root, "a", root, "b", 0))
	_, _, err := e.v.Lookup(e.ctx, root, "a")
	wantErr(t, "old name", err, client.ErrNotFound)
	n, attr, err := e.v.Lookup(e.ctx, root, "b")
	mustOK(t, "lookup", err)
	if n.ID != a.ID || attr.Size != 3 {
		t.Fatalf("b is %v (size %d), want the renamed file", n, attr.Size)
	}
	wantErr(t, "missing source", e.v.Rename(e.ctx, root, "a", root, "c", 0), client.ErrNotFound)

	e.create(root, "c")
	wantErr(t, "noreplace", e.v.Rename(e.ctx, root, "b", root, "c", client.RenameNoReplace), client.ErrExists)
	mustOK(t, "exchange", e.v.Rename(e.ctx, root, "b", root, "c", client.RenameExchange))
	n, _, err = e.v.Lookup(e.ctx, root, "c")
	mustOK(t, "lookup", err)
	if n.ID != a.ID {
		t.Fatalf("exchange did not swap")
	}
	wantErr(t, "bad flags", e.v.Rename(e.ctx, root, "b", root, "c", 7), client.ErrInvalid)

	// A chunked file replaced by a rename loses its chunks.
	big := bytes.Repeat([]byte("x"), 3<<20)
	e.writeFile(e.v, root, "big", big)
	if e.chunks() == 0 {
		t.Fatalf("no chunks after a 3 MiB write")
	}
	mustOK(t, "rename over big", e.v.Rename(e.ctx, root, "c", root, "big", 0))
	if n := e.chunks(); n != 0 {
		t.Fatalf("%d chunks left after replacing the only big file", n)
	}

	// Directories: replace an empty one whose inode is on the other
	// subvolume (sealed first), refuse a non-empty one.
	d1 := e.mkdirWhere(root, "src", func(client.Node) bool { return true })
	far := e.mkdirWhere(root, "far", func(n client.Node) bool { return e.subOf(n.ID) != e.subOf(root.ID) })
	farName := lookupName(t, e, root, far)
	d1Name := lookupName(t, e, root, d1)
	e.create(far, "x")
	wantErr(t, "replace non-empty dir", e.v.Rename(e.ctx, root, d1Name, root, farName, 0), client.ErrNotEmpty)
	wantErr(t, "file over dir", e.v.Rename(e.ctx, root, "big", root, farName, 0), client.ErrIsDir)
	// The failed renames left it unsealed.
	e.create(far, "y")
	mustOK(t, "unlink", e.v.Unlink(e.ctx, far, "x"))
	mustOK(t, "unlink", e.v.Unlink(e.ctx, far, "y"))
	mustOK(t, "replace empty dir", e.v.Rename(e.ctx, root, d1Name, root, farName, 0))
	_, err = e.v.GetAttr(e.ctx, far)
	wantErr(t, "replaced dir", err, client.ErrNotFound)
	n, _, err = e.v.Lookup(e.ctx, root, farName)
	mustOK(t, "lookup", err)
	if n.ID != d1.ID {
		t.Fatalf("target is not the moved directory")
	}
}

// pairAcross returns two directories whose entries live on different
// subvolumes.
func pairAcross(e *env) (client.Node, client.Node) {
	root := e.v.Root()
	a := e.mkdirWhere(root, "A", func(n client.Node) bool { return e.subOf(n.ID) == 0 })
	b := e.mkdirWhere(root, "B", func(n client.Node) bool { return e.subOf(n.ID) == 1 })
	return a, b
}

func TestRenameAcrossSubvolumes(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	a, b := pairAcross(e)
	f := e.writeFile(e.v, a, "f", []byte("hello"))
	e.writeFile(e.v, b, "target", bytes.Repeat([]byte("t"), 2<<20))
	err := e.v.Rename(e.ctx, a, "f", b, "target", 0)
	mustOK(t, "rename across", err)
	if n := e.chunks(); n != 0 {
		t.Fatalf("%d chunks left of the replaced target", n)
	}
	_, _, err = e.v.Lookup(e.ctx, a, "f")
	wantErr(t, "old name", err, client.ErrNotFound)
	n, attr, err := e.v.Lookup(e.ctx, b, "target")
	mustOK(t, "lookup", err)
	if n.ID != f.ID || n.Locator != a.ID || attr.Size != 5 {
		t.Fatalf("moved file: %v size %d", n, attr.Size)
	}
	if got := e.readAll(e.v, n); string(got) != "hello" {
		t.Fatalf("moved file reads %q", got)
	}
	// Unlinking it in its new directory finds the inode in its old
	// directory's store.
	mustOK(t, "unlink moved", e.v.Unlink(e.ctx, b, "target"))
	_, err = e.v.GetAttr(e.ctx, n)
	wantErr(t, "inode after unlink", err, client.ErrNotFound)

	// A directory moves across with its contents; its parent link counts
	// follow.
	d, _, err := e.v.Mkdir(e.ctx, a, "d", 0o755, 0, 0)
	mustOK(t, "mkdir", err)
	e.writeFile(e.v, d, "inner", []byte("in"))
	mustOK(t, "rename dir", e.v.Rename(e.ctx, a, "d", b, "d2", client.RenameNoReplace))
	moved, _, err := e.v.Lookup(e.ctx, b, "d2")
	mustOK(t, "lookup", err)
	inner, _, err := e.v.Lookup(e.ctx, moved, "inner")
	mustOK(t, "lookup inner", err)
	if got := e.readAll(e.v, inner); string(got) != "in" {
		t.Fatalf("inner reads %q", got)
	}
	aa, _ := e.v.GetAttr(e.ctx, a)
	ba, _ := e.v.GetAttr(e.ctx, b)
	if aa.Nlink != 2 || ba.Nlink != 3 {
		t.Fatalf("nlink after moving a dir: old parent %d (want 2), new parent %d (want 3)", aa.Nlink, ba.Nlink)
	}
	e.create(a, "x")
	wantErr(t, "noreplace", e.v.Rename(e.ctx, a, "x", b, "d2", client.RenameNoReplace), client.ErrExists)
	mustOK(t, "exchange across", e.v.Rename(e.ctx, a, "x", b, "d2", client.RenameExchange))
	if n, _, err := e.v.Lookup(e.ctx, a, "x"); err != nil || n.ID != moved.ID {
		t.Fatalf("exchange across subvolumes: a/x is %v, %v; want the directory", n, err)
	}
	aa, _ = e.v.GetAttr(e.ctx, a)
	ba, _ = e.v.GetAttr(e.ctx, b)
	if aa.Nlink != 3 || ba.Nlink != 2 {
		t.Fatalf("nlink after exchanging a dir and a file: %d, %d; want 3, 2", aa.Nlink, ba.Nlink)
	}
	mustOK(t, "exchange back", e.v.Rename(e.ctx, a, "x", b, "d2", client.RenameExchange))
	wantErr(t, "file over dir", e.v.Rename(e.ctx, a, "x", b, "d2", 0), client.ErrIsDir)

	// Replace an empty directory across subvolumes.
	_, _, err = e.v.Mkdir(e.ctx, a, "empty", 0o755, 0, 0)
	mustOK(t, "mkdir", err)
	mustOK(t, "unlink", e.v.Unlink(e.ctx, moved, "inner"))
	mustOK(t, fmt.Sprintf("dir over empty dir"), e.v.Rename(e.ctx, b, "d2", a, "empty", 0))
	n, _, err = e.v.Lookup(e.ctx, a, "empty")
	mustOK(t, "lookup", err)
	if n.ID != moved.ID {
		t.Fatalf("empty is not the moved directory")
	}
}

// TestRenameOneCall: a rename within one subvolume is one RPC (its store
// resolves both names), whether it moves a file to a new name, replaces a
// file or an empty local directory, or fails; only a directory target
// whose inode is on another subvolume costs lookups and a seal first.
func TestRenameOneCall(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	root := e.v.Root()
	dir := e.mkdirWhere(root, "d", func(n client.Node) bool { return e.subOf(n.ID) == e.subOf(root.ID) })
	f := e.writeFile(e.v, dir, "f", []byte("f"))
	e.writeFile(e.v, dir, "g", []byte("gg"))
	rpcs := func(what string, want int64, op func() error, wantErr error) {
		t.Helper()
		before := e.calls()
		err := op()
		if wantErr == nil {
			mustOK(t, what, err)
		} else if !errors.Is(err, wantErr) {
			t.Fatalf("%s: %v, want %v", what, err, wantErr)
		}
		if got := e.calls() - before; got != want {
			t.Fatalf("%s: %d RPCs, want %d", what, got, want)
		}
	}
	rpcs("rename to a new name", 1, func() error { return e.v.Rename(e.ctx, dir, "f", dir, "f2", 0) }, nil)
	rpcs("rename over a file", 1, func() error { return e.v.Rename(e.ctx, dir, "f2", dir, "g", 0) }, nil)
	rpcs("missing source", 1, func() error { return e.v.Rename(e.ctx, dir, "f2", dir, "h", 0) }, client.ErrNotFound)
	local := func(n client.Node) bool { return e.subOf(n.ID) == e.subOf(dir.ID) }
	sub := e.mkdirWhere(dir, "s", local)
	subName := lookupName(t, e, dir, sub)
	e.create(sub, "x")
	rpcs("file over a dir", 1, func() error { return e.v.Rename(e.ctx, dir, "g", dir, subName, 0) }, client.ErrIsDir)
	src := e.mkdirWhere(dir, "t", local)
	srcName := lookupName(t, e, dir, src)
	// A local directory the store finds not empty: one lookup more.
	rpcs("dir over a non-empty local dir", 2, func() error { return e.v.Rename(e.ctx, dir, srcName, dir, subName, 0) }, client.ErrNotEmpty)
	mustOK(t, "unlink", e.v.Unlink(e.ctx, sub, "x"))
	rpcs("dir over an empty local dir", 1, func() error { return e.v.Rename(e.ctx, dir, srcName, dir, subName, 0) }, nil)
	_, err := e.v.GetAttr(e.ctx, sub)
	wantErr(t, "replaced dir", err, client.ErrNotFound)
	n, attr, err := e.v.Lookup(e.ctx, dir, "g")
	mustOK(t, "lookup", err)
	if n.ID != f.ID || attr.Size != 1 {
		t.Fatalf("g is %v (size %d), want the renamed file", n, attr.Size)
	}
}
