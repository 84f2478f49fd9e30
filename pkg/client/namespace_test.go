package client_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
	"github.com/dfsproject/dfs/proto/dfspb"
)

func TestCreateLookupReadDirPaged(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	root := e.v.Root()
	sub := e.mkdirWhere(root, "big", func(n client.Node) bool { return e.subOf(n.ID) != e.subOf(root.ID) })
	const count = 2000
	var want []string
	for i := range count {
		name := fmt.Sprintf("f%05d", i)
		want = append(want, name)
		e.create(sub, name)
	}
	// Exclusive create of an existing name fails; open-or-create finds it.
	_, _, err := e.v.Create(e.ctx, sub, "f00007", 0o644, 0, 0, true)
	wantErr(t, "exclusive create", err, client.ErrExists)
	n7, _, err := e.v.Lookup(e.ctx, sub, "f00007")
	mustOK(t, "lookup", err)
	again, _, err := e.v.Create(e.ctx, sub, "f00007", 0o644, 0, 0, false)
	mustOK(t, "open-or-create", err)
	if again != n7 {
		t.Fatalf("open-or-create returned %v, want %v", again, n7)
	}

	var got []string
	after := ""
	pages := 0
	for {
		ents, eof, err := e.v.ReadDir(e.ctx, sub, after, 300)
		mustOK(t, "readdir", err)
		pages++
		for _, de := range ents {
			got = append(got, de.Name)
			if de.Attr == nil || de.Type != fileType || de.Node.Locator != sub.ID {
				t.Fatalf("entry %s: attr %v type %v locator %v", de.Name, de.Attr, de.Type, de.Node.Locator)
			}
		}
		if eof {
			break
		}
		after = ents[len(ents)-1].Name
	}
	if !slices.Equal(got, want) {
		t.Fatalf("readdir: %d names, want %d (first %v)", len(got), len(want), got[:min(3, len(got))])
	}
	if pages != 7 {
		t.Errorf("readdir took %d pages of 300 for %d entries, want 7", pages, count)
	}
	for _, name := range []string{"f00000", "f01999"} {
		n, a, err := e.v.Lookup(e.ctx, sub, name)
		mustOK(t, "lookup "+name, err)
		if a.Type != fileType || a.Mode != 0o644 || n.Locator != sub.ID {
			t.Fatalf("lookup %s: %v %v", name, n, a)
		}
	}
	_, _, err = e.v.Lookup(e.ctx, sub, "nope")
	wantErr(t, "lookup missing", err, client.ErrNotFound)

	// The root lists the directory, without attributes when its inode
	// lives elsewhere.
	ents, eof, err := e.v.ReadDir(e.ctx, root, "", 0)
	mustOK(t, "readdir root", err)
	if !eof || len(ents) == 0 {
		t.Fatalf("readdir root: %d entries, eof %v", len(ents), eof)
	}
	for _, de := range ents {
		if de.Node.ID == sub.ID && de.Attr != nil {
			t.Fatalf("remote directory came with attributes")
		}
	}
}

func TestNameTooLongBeforeRPC(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	root := e.v.Root()
	long := strings.Repeat("n", 256)
	before := e.c.Subvolumes[0].Bricks[0].Calls() + e.c.Subvolumes[1].Bricks[0].Calls()
	_, _, err := e.v.Create(e.ctx, root, long, 0o644, 0, 0, true)
	wantErr(t, "create", err, client.ErrNameTooLong)
	_, _, err = e.v.Mkdir(e.ctx, root, long, 0o755, 0, 0)
	wantErr(t, "mkdir", err, client.ErrNameTooLong)
	_, _, err = e.v.Lookup(e.ctx, root, long)
	wantErr(t, "lookup", err, client.ErrNameTooLong)
	_, _, err = e.v.Symlink(e.ctx, root, long, "x", 0, 0)
	wantErr(t, "symlink", err, client.ErrNameTooLong)
	wantErr(t, "unlink", e.v.Unlink(e.ctx, root, long), client.ErrNameTooLong)
	wantErr(t, "rmdir", e.v.Rmdir(e.ctx, root, long), client.ErrNameTooLong)
	wantErr(t, "rename", e.v.Rename(e.ctx, root, "a", root, long, 0), client.ErrNameTooLong)
	after := e.c.Subvolumes[0].Bricks[0].Calls() + e.c.Subvolumes[1].Bricks[0].Calls()
	if after != before {
		t.Fatalf("%d RPCs for names that are too long", after-before)
	}
	// 255 bytes is fine.
	_, _, err = e.v.Create(e.ctx, root, long[:255], 0o644, 0, 0, true)
	mustOK(t, "create 255", err)
	for _, bad := range []string{"", ".", "..", "a/b", "a\x00b"} {
		_, _, err := e.v.Create(e.ctx, root, bad, 0o644, 0, 0, true)
		wantErr(t, fmt.Sprintf("create %q", bad), err, client.ErrInvalid)
	}
}

func TestMkdirRmdir(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	root := e.v.Root()
	// Directories land on both subvolumes; rmdir takes the one-store path
	// for those on root's subvolume and seal/unlink/drop for the others.
	for _, same := range []bool{true, false} {
		t.Run(fmt.Sprintf("same-subvolume=%v", same), func(t *testing.T) {
			d := e.mkdirWhere(root, fmt.Sprintf("d%v", same), func(n client.Node) bool { return (e.subOf(n.ID) == e.subOf(root.ID)) == same })
			a, err := e.v.GetAttr(e.ctx, d)
			mustOK(t, "getattr", err)
			if a.Type != dfspb.FileType_FILE_TYPE_DIR || a.Nlink != 2 || a.Mode != 0o755 {
				t.Fatalf("new dir attrs %v", a)
			}
			e.create(d, "file")
			inner, _, err := e.v.Mkdir(e.ctx, d, "inner", 0o700, 1, 2)
			mustOK(t, "mkdir inner", err)
			da, err := e.v.GetAttr(e.ctx, d)
			mustOK(t, "getattr", err)
			if da.Nlink != 3 {
				t.Fatalf("nlink with a subdirectory: %d, want 3", da.Nlink)
			}
			_, _, err = e.v.Mkdir(e.ctx, d, "inner", 0o700, 1, 2)
			wantErr(t, "mkdir existing", err, client.ErrExists)
			name := lookupName(t, e, root, d)
			wantErr(t, "rmdir non-empty", e.v.Rmdir(e.ctx, root, name), client.ErrNotEmpty)
			wantErr(t, "rmdir file", e.v.Rmdir(e.ctx, d, "file"), client.ErrNotDir)
			wantErr(t, "unlink dir", e.v.Unlink(e.ctx, d, "inner"), client.ErrIsDir)
			// A failed rmdir left the directory usable (unsealed).
			e.create(d, "file2")
			mustOK(t, "unlink", e.v.Unlink(e.ctx, d, "file"))
			mustOK(t, "unlink", e.v.Unlink(e.ctx, d, "file2"))
			mustOK(t, "rmdir inner", e.v.Rmdir(e.ctx, d, "inner"))
			_, err = e.v.GetAttr(e.ctx, inner)
			wantErr(t, "getattr removed", err, client.ErrNotFound)
			mustOK(t, "rmdir", e.v.Rmdir(e.ctx, root, name))
			_, _, err = e.v.Lookup(e.ctx, root, name)
			wantErr(t, "lookup removed", err, client.ErrNotFound)
			_, err = e.v.GetAttr(e.ctx, d)
			wantErr(t, "getattr removed dir", err, client.ErrNotFound)
		})
	}
}

// lookupName finds the name of child in dir.
func lookupName(t *testing.T, e *env, dir, child client.Node) string {
	t.Helper()
	ents, _, err := e.v.ReadDir(e.ctx, dir, "", 0)
	mustOK(t, "readdir", err)
	for _, de := range ents {
		if de.Node.ID == child.ID {
			return de.Name
		}
	}
	t.Fatalf("child not found")
	return ""
}

func TestSymlinkMknodSetAttr(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	root := e.v.Root()
	l, a, err := e.v.Symlink(e.ctx, root, "link", "some/where/else", 5, 6)
	mustOK(t, "symlink", err)
	if a.Type != dfspb.FileType_FILE_TYPE_SYMLINK || a.Size != uint64(len("some/where/else")) || a.Uid != 5 {
		t.Fatalf("symlink attrs %v", a)
	}
	target, err := e.v.Readlink(e.ctx, l)
	mustOK(t, "readlink", err)
	if target != "some/where/else" {
		t.Fatalf("readlink = %q", target)
	}
	_, _, err = e.v.Symlink(e.ctx, root, "link", "x", 0, 0)
	wantErr(t, "symlink existing", err, client.ErrExists)

	for _, typ := range []dfspb.FileType{dfspb.FileType_FILE_TYPE_FIFO, dfspb.FileType_FILE_TYPE_SOCKET, dfspb.FileType_FILE_TYPE_CHAR, dfspb.FileType_FILE_TYPE_BLOCK} {
		n, a, err := e.v.Mknod(e.ctx, root, typ.String(), typ, 0o600, 0x0801, 0, 0)
		mustOK(t, "mknod", err)
		if n.Type != typ || a.Type != typ || a.Rdev != 0x0801 || a.Mode != 0o600 {
			t.Fatalf("mknod %v: %v %v", typ, n, a)
		}
	}
	_, _, err = e.v.Mknod(e.ctx, root, "dir", dfspb.FileType_FILE_TYPE_DIR, 0o600, 0, 0, 0)
	wantErr(t, "mknod dir", err, client.ErrInvalid)

	f := e.create(root, "f")
	mtime := time.Unix(1_000_000_000, 123456789)
	a, err = e.v.SetAttr(e.ctx, f, client.SetAttrIn{Mask: client.SetMode | client.SetUID | client.SetGID | client.SetMtime | client.SetAtime,
		Mode: 0o4751, UID: 7, GID: 8, Mtime: mtime, Atime: mtime.Add(time.Second)})
	mustOK(t, "setattr", err)
	if a.Mode != 0o4751 || a.Uid != 7 || a.Gid != 8 || a.MtimeNs != mtime.UnixNano() || a.AtimeNs != mtime.Add(time.Second).UnixNano() {
		t.Fatalf("setattr result %v", a)
	}
	before := time.Now().UnixNano()
	a, err = e.v.SetAttr(e.ctx, f, client.SetAttrIn{Mask: client.SetMtime | client.SetMtimeNow, Mtime: mtime})
	mustOK(t, "setattr now", err)
	if a.MtimeNs < before || a.AtimeNs != mtime.Add(time.Second).UnixNano() {
		t.Fatalf("mtime now: %d (before %d), atime %d", a.MtimeNs, before, a.AtimeNs)
	}
	_, err = e.v.SetAttr(e.ctx, root, client.SetAttrIn{Mask: client.SetSize})
	wantErr(t, "truncate dir", err, client.ErrIsDir)
}

func TestXattrAndStatfs(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	f := e.create(e.v.Root(), "f")
	mustOK(t, "set", e.v.SetXattr(e.ctx, f, "user.a", []byte("1"), 0))
	mustOK(t, "set", e.v.SetXattr(e.ctx, f, "user.b", nil, client.XattrCreate))
	wantErr(t, "create existing", e.v.SetXattr(e.ctx, f, "user.a", []byte("2"), client.XattrCreate), client.ErrExists)
	wantErr(t, "replace missing", e.v.SetXattr(e.ctx, f, "user.c", []byte("2"), client.XattrReplace), client.ErrNoAttr)
	v, err := e.v.GetXattr(e.ctx, f, "user.a")
	mustOK(t, "get", err)
	if string(v) != "1" {
		t.Fatalf("get = %q", v)
	}
	v, err = e.v.GetXattr(e.ctx, f, "user.b")
	mustOK(t, "get empty", err)
	if len(v) != 0 {
		t.Fatalf("empty value read as %q", v)
	}
	names, err := e.v.ListXattr(e.ctx, f)
	mustOK(t, "list", err)
	if !slices.Equal(names, []string{"user.a", "user.b"}) {
		t.Fatalf("list = %v", names)
	}
	mustOK(t, "remove", e.v.RemoveXattr(e.ctx, f, "user.a"))
	wantErr(t, "remove again", e.v.RemoveXattr(e.ctx, f, "user.a"), client.ErrNoAttr)
	_, err = e.v.GetXattr(e.ctx, f, "user.a")
	wantErr(t, "get removed", err, client.ErrNoAttr)

	s, err := e.v.Statfs(e.ctx)
	mustOK(t, "statfs", err)
	one, err := e.c.Subvolumes[0].Store().Statfs(e.ctx)
	mustOK(t, "store statfs", err)
	// Both fake subvolumes sit on the same disk: the sum is twice one.
	if s.TotalBytes != 2*one.TotalBytes || s.TotalInodes == 0 {
		t.Fatalf("statfs %+v, one store %+v", s, one)
	}
}
