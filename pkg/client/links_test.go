package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/dfsproject/dfs/brick/store"
	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

// nlink returns n's link count as its store has it.
func (e *env) nlink(n client.Node) uint32 {
	e.t.Helper()
	a, err := e.v.GetAttr(e.ctx, n)
	if err != nil {
		e.t.Fatalf("getattr: %v", err)
	}
	return a.Nlink
}

// inodeGone reports whether n's inode record is gone from its store.
func (e *env) inodeGone(n client.Node) bool {
	e.t.Helper()
	_, err := e.c.Subvolumes[e.subOf(n.Locator)].Store().GetAttr(e.ctx, n.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		e.t.Fatalf("store getattr: %v", err)
	}
	return err != nil
}

// TestLink makes hard links in directories on the inode's subvolume and
// on another one, and removes them again.
func TestLink(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	a, b := pairAcross(e)
	c := e.mkdirWhere(e.v.Root(), "C", func(n client.Node) bool { return e.subOf(n.ID) == 0 })
	data := randBytes(1, 2<<20)
	f := e.writeFile(e.v, a, "f", data)

	type place struct {
		dir  client.Node
		name string
	}
	names := []place{{a, "f"}}
	for i, p := range []place{{a, "same-dir"}, {c, "same-sub"}, {b, "other-sub"}} {
		attr, err := e.v.Link(e.ctx, f, p.dir, p.name)
		mustOK(t, "link "+p.name, err)
		names = append(names, p)
		if want := uint32(i + 2); attr.Nlink != want || e.nlink(f) != want {
			t.Fatalf("link %s: nlink %d (store %d), want %d", p.name, attr.Nlink, e.nlink(f), want)
		}
	}
	for _, p := range names {
		n, attr, err := e.v.Lookup(e.ctx, p.dir, p.name)
		mustOK(t, "lookup "+p.name, err)
		if n.ID != f.ID || attr.Nlink != 4 {
			t.Fatalf("lookup %s: %v nlink %d", p.name, n.ID, attr.Nlink)
		}
		if got := e.readAll(e.v, n); !bytes.Equal(got, data) {
			t.Fatalf("read through %s: different data", p.name)
		}
	}

	// Failures change no link count.
	e.create(b, "taken")
	e.create(a, "taken")
	for _, p := range []place{{a, "taken"}, {b, "taken"}, {a, "same-dir"}, {b, "other-sub"}} {
		_, err := e.v.Link(e.ctx, f, p.dir, p.name)
		wantErr(t, "link over "+p.name, err, client.ErrExists)
	}
	_, err := e.v.Link(e.ctx, a, b, "dirlink")
	wantErr(t, "link of a directory", err, client.ErrNotPermitted)
	if n := e.nlink(f); n != 4 {
		t.Fatalf("nlink after failed links = %d", n)
	}

	// Remove the names; the last one takes the inode and its chunks.
	for i, p := range names {
		mustOK(t, "unlink "+p.name, e.v.Unlink(e.ctx, p.dir, p.name))
		if left := uint32(len(names) - i - 1); left > 0 {
			if n := e.nlink(f); n != left {
				t.Fatalf("after unlinking %s: nlink %d, want %d", p.name, n, left)
			}
		}
	}
	if !e.inodeGone(f) {
		t.Fatal("inode left after its last link")
	}
	if n := e.chunks(); n != 0 {
		t.Fatalf("%d chunks left", n)
	}
}

// TestLinkLostAnswers: Link and the AdjustLink it and Unlink send are
// retried after lost answers and applied once.
func TestLinkLostAnswers(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	a, b := pairAcross(e)
	f := e.create(a, "f")
	brickOf := func(n client.Node) *clienttest.Brick { return e.c.Subvolumes[e.subOf(n.ID)].Bricks[0] }

	brickOf(a).LoseNextAnswers(1) // the AdjustLink
	_, err := e.v.Link(e.ctx, f, b, "g")
	mustOK(t, "link, adjust answer lost", err)
	if n := e.nlink(f); n != 2 {
		t.Fatalf("nlink = %d, want 2", n)
	}
	brickOf(b).LoseNextAnswers(1) // the Link
	_, err = e.v.Link(e.ctx, f, b, "h")
	mustOK(t, "link, link answer lost", err)
	brickOf(a).LoseNextAnswers(1) // the Link (local)
	_, err = e.v.Link(e.ctx, f, a, "i")
	mustOK(t, "local link, answer lost", err)
	if n := e.nlink(f); n != 4 {
		t.Fatalf("nlink = %d, want 4", n)
	}
	brickOf(a).LoseNextAnswers(1) // the AdjustLink of the unlink in b
	mustOK(t, "unlink", e.v.Unlink(e.ctx, b, "g"))
	if n := e.nlink(f); n != 3 {
		t.Fatalf("nlink = %d, want 3", n)
	}
	for _, p := range []struct {
		dir  client.Node
		name string
	}{{b, "h"}, {a, "i"}, {a, "f"}} {
		mustOK(t, "unlink", e.v.Unlink(e.ctx, p.dir, p.name))
	}
	if !e.inodeGone(f) {
		t.Fatal("inode left after its last link")
	}
}

// TestUnlinkedWhileOpen: a file whose last link goes while it is open
// stays readable and writable through its Files until the last Release.
func TestUnlinkedWhileOpen(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int
		remote bool // the last name is on another subvolume than the inode
		rename bool // the last name goes by a rename over it
	}{
		{"inline", 100, false, false},
		{"chunked", 3 << 20, false, false},
		{"remote name", 100, true, false},
		{"remote name chunked", 2 << 20, true, false},
		{"renamed over", 3 << 20, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, clienttest.Options{})
			a, b := pairAcross(e)
			data := randBytes(2, tc.size)
			f := e.writeFile(e.v, a, "f", data)
			dir, name := a, "f"
			if tc.remote {
				_, err := e.v.Link(e.ctx, f, b, "g")
				mustOK(t, "link", err)
				mustOK(t, "unlink", e.v.Unlink(e.ctx, a, "f"))
				dir, name = b, "g"
			}
			h1, err := e.v.Open(e.ctx, f, syscall.O_RDWR)
			mustOK(t, "open", err)
			h2, err := e.v.Open(e.ctx, f, syscall.O_RDONLY)
			mustOK(t, "open", err)
			if tc.rename {
				e.create(dir, "new")
				mustOK(t, "rename over", e.v.Rename(e.ctx, dir, "new", dir, name, 0))
			} else {
				mustOK(t, "unlink", e.v.Unlink(e.ctx, dir, name))
			}
			_, _, err = e.v.Lookup(e.ctx, dir, name)
			if tc.rename {
				mustOK(t, "lookup of the new file", err)
			} else {
				wantErr(t, "lookup after unlink", err, client.ErrNotFound)
			}

			more := randBytes(3, 70<<10)
			_, err = h1.WriteAt(e.ctx, more, int64(len(data)))
			mustOK(t, "write after unlink", err)
			mustOK(t, "flush", h1.Flush(e.ctx))
			want := append(append([]byte(nil), data...), more...)
			got := make([]byte, len(want)+10)
			k, _ := h2.ReadAt(e.ctx, got, 0)
			if !bytes.Equal(got[:k], want) {
				t.Fatalf("read after unlink: %d bytes, want %d", k, len(want))
			}
			attr, err := e.v.GetAttr(e.ctx, f)
			mustOK(t, "fstat", err)
			if attr.Nlink != 0 || attr.Size != uint64(len(want)) {
				t.Fatalf("fstat: nlink %d size %d", attr.Nlink, attr.Size)
			}
			mustOK(t, "close", h1.Release(e.ctx))
			if e.inodeGone(f) {
				t.Fatal("gone before the last close")
			}
			mustOK(t, "close", h2.Release(e.ctx))
			if !e.inodeGone(f) {
				t.Fatal("inode left after the last close")
			}
			if n := e.chunks(); n != 0 {
				t.Fatalf("%d chunks left", n)
			}
		})
	}
}

// TestUnlinkNotOpenWhileOthersAre: with some other file open, removing a
// file that is not open still deletes it at once.
func TestUnlinkNotOpenWhileOthersAre(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	root := e.v.Root()
	held := e.writeFile(e.v, root, "held", []byte("x"))
	h, err := e.v.Open(e.ctx, held, syscall.O_RDONLY)
	mustOK(t, "open", err)
	defer h.Release(e.ctx)
	f := e.writeFile(e.v, root, "f", randBytes(4, 2<<20))
	small := e.writeFile(e.v, root, "small", []byte("x"))
	before := e.applied()
	mustOK(t, "unlink", e.v.Unlink(e.ctx, root, "small"))
	if n := e.applied() - before; n != 1 {
		t.Fatalf("unlink of a small file not open took %d commands, want 1", n)
	}
	if !e.inodeGone(small) {
		t.Fatal("a small file nobody has open was kept")
	}
	mustOK(t, "unlink", e.v.Unlink(e.ctx, root, "f"))
	if !e.inodeGone(f) {
		t.Fatal("a file nobody has open was kept")
	}
	if n := e.chunks(); n != 0 {
		t.Fatalf("%d chunks left", n)
	}
}

// TestSetgidDirectory: entries made in a setgid directory take its group;
// subdirectories take the setgid bit too.
func TestSetgidDirectory(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	root := e.v.Root()
	d, _, err := e.v.Mkdir(e.ctx, root, "shared", 0o775, 0, 0)
	mustOK(t, "mkdir", err)
	_, err = e.v.SetAttr(e.ctx, d, client.SetAttrIn{Mask: client.SetMode | client.SetGID, Mode: 0o2775, GID: 50})
	mustOK(t, "chmod g+s", err)
	for i := range 6 { // subdirectories land on both subvolumes
		sub, attr, err := e.v.Mkdir(e.ctx, d, "sub"+string(rune('a'+i)), 0o755, 1000, 1000)
		mustOK(t, "mkdir in setgid dir", err)
		if attr.Gid != 50 || attr.Mode != 0o2755 {
			t.Fatalf("subdirectory: gid %d mode %o", attr.Gid, attr.Mode)
		}
		_, fa, err := e.v.Create(e.ctx, sub, "f", 0o644, 1000, 1000, true)
		mustOK(t, "create in inherited setgid dir", err)
		if fa.Gid != 50 || fa.Mode != 0o644 {
			t.Fatalf("file: gid %d mode %o", fa.Gid, fa.Mode)
		}
	}
	_, sa, err := e.v.Symlink(e.ctx, d, "l", "target", 1000, 1000)
	mustOK(t, "symlink", err)
	_, pa, err := e.v.Mkdir(e.ctx, root, "plain", 0o755, 1000, 1000)
	mustOK(t, "mkdir", err)
	if sa.Gid != 50 || pa.Gid != 1000 || pa.Mode != 0o755 {
		t.Fatalf("symlink gid %d, plain dir gid %d mode %o", sa.Gid, pa.Gid, pa.Mode)
	}
}

// TestPunchHole zeroes ranges of inline and chunked files, across chunk
// boundaries and past the end, without changing the size.
func TestPunchHole(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name      string
		size      int
		off, len  uint64
		dirtyTail bool // write after the last flush, before punching
	}{
		{"inline middle", 1000, 100, 200, false},
		{"inline past end", 1000, 900, 5000, false},
		{"inside one chunk", 3 * mib, 10, 1000, false},
		{"across chunks", 3 * mib, mib - 10, mib + 20, false},
		{"whole chunk", 3 * mib, mib, mib, false},
		{"to the end", 3*mib + 7, 2*mib + 3, 10 * mib, false},
		{"buffered data", 3 * mib, 5, 2 * mib, true},
		{"past the end", 1000, 2000, 100, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, clienttest.Options{})
			data := randBytes(5, tc.size)
			n := e.writeFile(e.v, e.v.Root(), "f", data)
			f, err := e.v.Open(e.ctx, n, syscall.O_RDWR)
			mustOK(t, "open", err)
			if tc.dirtyTail {
				tail := randBytes(6, 4096)
				_, err := f.WriteAt(e.ctx, tail, 0)
				mustOK(t, "write", err)
				copy(data, tail)
			}
			mustOK(t, "punch", f.PunchHole(e.ctx, tc.off, tc.len))
			for i := tc.off; i < tc.off+tc.len && i < uint64(len(data)); i++ {
				data[i] = 0
			}
			mustOK(t, "close", f.Release(e.ctx))
			if got := e.readAll(e.open(), n); !bytes.Equal(got, data) {
				t.Fatalf("after punching: %d bytes, want %d, first difference at %d", len(got), len(data), firstDiff(got, data))
			}
		})
	}
}

// TestAppendConcurrent: two clients append records to one file at once,
// through the inline limit into chunks: no record is lost or torn.
func TestAppendConcurrent(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	root := e.v.Root()
	n := e.create(root, "log")
	vols := []*client.Volume{e.v, e.open()}
	const per = 60
	recSize := map[int]int{0: 1000, 1: 7000} // client 1 crosses chunk boundaries
	errs := make(chan error, len(vols))
	for c, v := range vols {
		go func() {
			f, err := v.Open(e.ctx, n, syscall.O_WRONLY|syscall.O_APPEND)
			if err != nil {
				errs <- err
				return
			}
			defer f.Release(e.ctx)
			for i := range per {
				rec := bytes.Repeat([]byte{byte('a' + c)}, recSize[c])
				rec[0], rec[1] = byte(i), '|'
				if _, err := f.WriteAt(e.ctx, rec, 0); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range vols {
		mustOK(t, "append", <-errs)
	}
	got := e.readAll(e.open(), n)
	if want := per * (recSize[0] + recSize[1]); len(got) != want {
		t.Fatalf("size %d, want %d", len(got), want)
	}
	next := map[byte]int{}
	for off := 0; off < len(got); {
		c := got[off+2]
		size := recSize[int(c-'a')]
		rec := got[off : off+size]
		if int(rec[0]) != next[c] || rec[1] != '|' || !bytes.Equal(rec[2:], bytes.Repeat([]byte{c}, size-2)) {
			t.Fatalf("torn or out-of-order record at %d (client %c, #%d, want #%d)", off, c, rec[0], next[c])
		}
		next[c]++
		off += size
	}
}

// TestAppendLostAnswers: an append whose answer is lost is not repeated.
func TestAppendLostAnswers(t *testing.T) {
	e := newEnv(t, clienttest.Options{Subvolumes: 1})
	n := e.create(e.v.Root(), "log")
	f, err := e.v.Open(e.ctx, n, syscall.O_WRONLY|syscall.O_APPEND)
	mustOK(t, "open", err)
	b := e.c.Subvolumes[0].Bricks[0]
	var want []byte
	for i, size := range []int{10, 100 << 10, 20, 2 << 20} {
		rec := randBytes(uint64(i), size)
		b.LoseNextAnswers(1)
		if _, err := f.WriteAt(e.ctx, rec, 12345); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		want = append(want, rec...)
	}
	mustOK(t, "close", f.Release(e.ctx))
	if got := e.readAll(e.v, n); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d, first difference at %d", len(got), len(want), firstDiff(got, want))
	}
}

// TestUnlinkManyOpen: with more files open than a removal names, the
// store keeps any file that loses its last link; those not open here are
// dropped right after, the open one at its last close.
func TestUnlinkManyOpen(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	root := e.v.Root()
	var files []*client.File
	var nodes []client.Node
	for i := range 40 {
		n := e.writeFile(e.v, root, fmt.Sprintf("f%d", i), []byte("data"))
		f, err := e.v.Open(e.ctx, n, syscall.O_RDWR)
		mustOK(t, "open", err)
		files, nodes = append(files, f), append(nodes, n)
	}
	closed := e.writeFile(e.v, root, "closed", randBytes(1, 2<<20))
	mustOK(t, "unlink", e.v.Unlink(e.ctx, root, "closed"))
	if !e.inodeGone(closed) || e.chunks() != 0 {
		t.Fatal("a file not open was kept")
	}
	mustOK(t, "unlink", e.v.Unlink(e.ctx, root, "f7"))
	_, err := files[7].WriteAt(e.ctx, []byte("more"), 4)
	mustOK(t, "write after unlink", err)
	mustOK(t, "flush", files[7].Flush(e.ctx))
	if e.inodeGone(nodes[7]) {
		t.Fatal("an open file was deleted")
	}
	for _, f := range files {
		mustOK(t, "close", f.Release(e.ctx))
	}
	if !e.inodeGone(nodes[7]) {
		t.Fatal("the unlinked file outlived its last close")
	}
}
