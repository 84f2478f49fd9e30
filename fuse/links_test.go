package fuse_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dfsproject/dfs/pkg/client"
)

func lstat(t *testing.T, path string) syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatalf("lstat %s: %v", path, err)
	}
	return st
}

// TestHardLinks links one file into directories spread over both
// subvolumes: every name has the inode number and link count of the file,
// and the data outlives every name but the last.
func TestHardLinks(t *testing.T) {
	e := mountEnv(t)
	data := randBytes(9, 3<<20)
	first := filepath.Join(e.mnt, "d0", "f")
	names := []string{first, filepath.Join(e.mnt, "root-link")}
	for i := range 8 {
		d := filepath.Join(e.mnt, fmt.Sprintf("d%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			names = append(names, filepath.Join(d, "link"))
		}
	}
	if err := os.WriteFile(first, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ino := lstat(t, first).Ino
	for i, name := range names[1:] {
		if err := os.Link(first, name); err != nil {
			t.Fatalf("link %s: %v", name, err)
		}
		if st := lstat(t, name); st.Ino != ino || st.Nlink != uint64(i+2) {
			t.Fatalf("%s: ino %d nlink %d, want %d %d", name, st.Ino, st.Nlink, ino, i+2)
		}
	}
	if err := os.Link(first, names[1]); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("link over an existing name: %v", err)
	}
	if err := os.Link(filepath.Join(e.mnt, "d1"), filepath.Join(e.mnt, "dirlink")); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("link of a directory: %v", err)
	}
	// Another client sees the same count under every name.
	for _, name := range names {
		if a := e.statVia(name); a.Nlink != uint32(len(names)) {
			t.Fatalf("other client: %s nlink %d", name, a.Nlink)
		}
	}
	for i, name := range names {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
		if i == len(names)-1 {
			break
		}
		last := names[len(names)-1]
		if st := lstat(t, last); st.Nlink != uint64(len(names)-i-1) || st.Ino != ino {
			t.Fatalf("after removing %s: nlink %d", name, st.Nlink)
		}
		if i == len(names)-2 {
			got, err := os.ReadFile(last)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read through the last name: %d bytes, %v", len(got), err)
			}
		}
	}
	if n := e.chunks(); n != 0 {
		t.Fatalf("%d chunks left after the last name went", n)
	}
}

// statVia stats a path through the second client.
func (e *env) statVia(path string) *dfsAttr {
	e.t.Helper()
	n := e.nodeVia(path)
	a, err := e.other.GetAttr(e.t.Context(), n)
	if err != nil {
		e.t.Fatalf("getattr %s: %v", path, err)
	}
	return &dfsAttr{Nlink: a.Nlink, Gid: a.Gid, Mode: a.Mode}
}

type dfsAttr struct{ Nlink, Gid, Mode uint32 }

// nodeVia looks a path up through the second client.
func (e *env) nodeVia(path string) client.Node {
	e.t.Helper()
	rel, err := filepath.Rel(e.mnt, path)
	if err != nil {
		e.t.Fatal(err)
	}
	n := e.other.Root()
	for _, part := range strings.Split(rel, "/") {
		if n, _, err = e.other.Lookup(e.t.Context(), n, part); err != nil {
			e.t.Fatalf("lookup %s: %v", part, err)
		}
	}
	return n
}

// chunks counts the chunks of the fake volume.
func (e *env) chunks() uint64 {
	var n uint64
	for _, sv := range e.c.Subvolumes {
		s, err := sv.Store().Statfs(e.t.Context())
		if err != nil {
			e.t.Fatal(err)
		}
		n += s.Chunks
	}
	return n
}

// TestUnlinkedWhileOpen: open, unlink, write, read back, fstat, close: the
// file works until the last close and is gone after it.
func TestUnlinkedWhileOpen(t *testing.T) {
	e := mountEnv(t)
	path := filepath.Join(e.mnt, "f")
	data := randBytes(1, 2<<20)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	n := e.nodeVia(path)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat after unlink: %v", err)
	}
	more := randBytes(2, 100<<10)
	if _, err := f.WriteAt(more, int64(len(data))); err != nil {
		t.Fatalf("write after unlink: %v", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync after unlink: %v", err)
	}
	want := append(data, more...)
	got := make([]byte, len(want))
	if k, err := f.ReadAt(got, 0); k != len(want) || !bytes.Equal(got, want) {
		t.Fatalf("read after unlink: %d bytes, %v", k, err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatalf("fstat: %v", err)
	}
	if st.Nlink != 0 || st.Size != int64(len(want)) {
		t.Fatalf("fstat: nlink %d size %d", st.Nlink, st.Size)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// RELEASE is sent after close(2) returns: wait for the inode to go.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := e.other.GetAttr(t.Context(), n)
		if errors.Is(err, client.ErrNotFound) && e.chunks() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the last close: getattr %v, %d chunks", err, e.chunks())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSetgidDir: entries made in a setgid directory take its group, and
// subdirectories the setgid bit.
func TestSetgidDir(t *testing.T) {
	e := mountEnv(t)
	d := filepath.Join(e.mnt, "shared")
	if err := os.Mkdir(d, 0o775); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, 0, 50); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(d, 0o2775); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, d); st.Gid != 50 || st.Mode&0o7777 != 0o2775 {
		t.Fatalf("setgid directory: gid %d mode %o", st.Gid, st.Mode&0o7777)
	}
	if a := e.statVia(d); a.Gid != 50 || a.Mode != 0o2775 {
		t.Fatalf("setgid directory, other client: gid %d mode %o", a.Gid, a.Mode)
	}
	for i := range 4 {
		sub := filepath.Join(d, fmt.Sprintf("sub%d", i))
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		st := lstat(t, sub)
		if st.Gid != 50 || st.Mode&0o7777 != 0o2755 {
			t.Fatalf("subdirectory: gid %d mode %o", st.Gid, st.Mode&0o7777)
		}
		file := filepath.Join(sub, "f")
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if st := lstat(t, file); st.Gid != 50 || st.Mode&0o7777 != 0o644 {
			t.Fatalf("file: gid %d mode %o", st.Gid, st.Mode&0o7777)
		}
	}
}

// asNobody runs a command as uid/gid 65534 with no supplementary groups.
func asNobody(t *testing.T, args ...string) error {
	t.Helper()
	cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// TestStickyDir: in a sticky world-writable directory (/tmp-style) an
// unprivileged user may create and remove his own files but not remove or
// rename another user's (the kernel enforces it: default_permissions).
func TestStickyDir(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("no setpriv")
	}
	e := mountEnv(t)
	// The mount point's parent (a test temporary directory) must let
	// nobody through.
	if err := os.Chmod(filepath.Dir(e.mnt), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(e.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(e.mnt, "tmp")
	if err := os.Mkdir(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(tmp, 0o1777); err != nil {
		t.Fatal(err)
	}
	roots := filepath.Join(tmp, "roots")
	if err := os.WriteFile(roots, []byte("x"), 0o666); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(tmp, "mine")
	if err := asNobody(t, "touch", mine); err != nil {
		t.Fatalf("nobody creates a file in a sticky dir: %v", err)
	}
	if st := lstat(t, mine); st.Uid != 65534 {
		t.Fatalf("owner %d", st.Uid)
	}
	if err := asNobody(t, "rm", "-f", roots); err == nil || !strings.Contains(err.Error(), "not permitted") {
		t.Fatalf("nobody removes root's file in a sticky dir: %v", err)
	}
	if err := asNobody(t, "mv", roots, filepath.Join(tmp, "stolen")); err == nil {
		t.Fatal("nobody renames root's file in a sticky dir")
	}
	if _, err := os.Stat(roots); err != nil {
		t.Fatalf("root's file: %v", err)
	}
	if err := asNobody(t, "mv", mine, filepath.Join(tmp, "mine2")); err != nil {
		t.Fatalf("nobody renames his own file: %v", err)
	}
	if err := asNobody(t, "rm", filepath.Join(tmp, "mine2")); err != nil {
		t.Fatalf("nobody removes his own file: %v", err)
	}
	// Without the sticky bit the same removal is allowed.
	if err := os.Chmod(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := asNobody(t, "rm", "-f", roots); err != nil {
		t.Fatalf("nobody removes in a plain world-writable dir: %v", err)
	}
}

// TestFallocate: mode 0 grows the file, KEEP_SIZE changes nothing visible,
// PUNCH_HOLE|KEEP_SIZE zeroes a range (also in the page cache).
func TestFallocate(t *testing.T) {
	e := mountEnv(t)
	path := filepath.Join(e.mnt, "f")
	data := randBytes(3, 3<<20)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	// Read first, so that the page cache holds the range.
	got := make([]byte, len(data))
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	const off, n = 1<<20 - 100, 1<<20 + 300
	if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
		t.Fatalf("punch hole: %v", err)
	}
	clear(data[off : off+n])
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after punching: %v, first difference at %d", err, firstDiff(got, data))
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 0, 10<<20); err != nil {
		t.Fatalf("keep size: %v", err)
	}
	if err := unix.Fallocate(fd, 0, 0, 4<<20); err != nil {
		t.Fatalf("mode 0: %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Size != 4<<20 || st.Blocks != (4<<20)/512 {
		t.Fatalf("fstat after growing: size %d blocks %d, %v", st.Size, st.Blocks, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := append(data, make([]byte, 1<<20)...)
	if other := e.readVia(path); !bytes.Equal(other, want) {
		t.Fatalf("other client: first difference at %d", firstDiff(other, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestAppendTwoClients: O_APPEND writes through the mount and through a
// second client interleave without loss; the mount reads them all.
func TestAppendTwoClients(t *testing.T) {
	e := mountEnv(t)
	path := filepath.Join(e.mnt, "log")
	if err := os.WriteFile(path, []byte("start\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	of, err := e.other.Open(t.Context(), e.nodeVia(path), syscall.O_WRONLY|syscall.O_APPEND)
	if err != nil {
		t.Fatal(err)
	}
	defer of.Release(t.Context())
	want := "start\n"
	for i := range 20 {
		a := fmt.Sprintf("mount %d\n", i)
		if _, err := f.WriteString(a); err != nil {
			t.Fatalf("append through the mount: %v", err)
		}
		b := fmt.Sprintf("other %d %s\n", i, strings.Repeat("x", 5000))
		if _, err := of.WriteAt(t.Context(), []byte(b), 0); err != nil {
			t.Fatalf("append through the other client: %v", err)
		}
		want += a + b
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Fatalf("read %d bytes (%v), want %d; first difference at %d", len(got), err, len(want), firstDiff(got, []byte(want)))
	}
}
