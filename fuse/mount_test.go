package fuse_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dfsproject/dfs/fuse"
	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

// tWriter routes log output to t.Log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// env is a fake volume mounted through FUSE, plus a second client on it.
type env struct {
	t     *testing.T
	c     *clienttest.Cluster
	vol   *client.Volume
	other *client.Volume
	mnt   string
}

func mountEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("FUSE tests need root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c := clienttest.Start(t, clienttest.Options{Logger: logger})
	open := func() *client.Volume {
		cfg := client.DefaultConfig()
		cfg.Servers, cfg.Volume, cfg.Logger = c.Servers(), c.Volume, logger
		v, err := client.Open(t.Context(), cfg)
		if err != nil {
			t.Fatalf("client.Open: %v", err)
		}
		t.Cleanup(func() { _ = v.Close() })
		return v
	}
	e := &env{t: t, c: c, vol: open(), other: open(), mnt: t.TempDir()}
	opts := fuse.DefaultOptions()
	opts.FsName = "test:/" + c.Volume
	opts.Logger = logger
	m, err := fuse.Mount(e.mnt, e.vol, opts)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := m.Unmount()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("unmount: %v", err)
				_ = syscall.Unmount(e.mnt, syscall.MNT_DETACH)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		m.Wait()
	})
	return e
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// readVia reads a file through the second client (what other mounts see).
func (e *env) readVia(path string) []byte {
	e.t.Helper()
	rel, err := filepath.Rel(e.mnt, path)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx := e.t.Context()
	n := e.other.Root()
	for _, part := range strings.Split(rel, "/") {
		if n, _, err = e.other.Lookup(ctx, n, part); err != nil {
			e.t.Fatalf("lookup %s: %v", part, err)
		}
	}
	f, err := e.other.Open(ctx, n, os.O_RDONLY)
	if err != nil {
		e.t.Fatalf("open: %v", err)
	}
	defer f.Release(ctx)
	buf := make([]byte, f.Size())
	k, err := f.ReadAt(ctx, buf, 0)
	if k != len(buf) {
		e.t.Fatalf("read %d of %d bytes: %v", k, len(buf), err)
	}
	return buf
}

func TestFileSizes(t *testing.T) {
	e := mountEnv(t)
	for i, size := range []int{0, 1, 64 << 10, 64<<10 + 1, 3 << 20} {
		path := filepath.Join(e.mnt, fmt.Sprintf("f%d", size))
		data := randBytes(uint64(i), size)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatalf("write %d bytes: %v", size, err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("size %d: read back %d bytes, different", size, len(got))
		}
		if other := e.readVia(path); !bytes.Equal(other, data) {
			t.Fatalf("size %d: other client reads %d bytes, different", size, len(other))
		}
		st, err := os.Stat(path)
		if err != nil || st.Size() != int64(size) || st.Mode() != 0o644 {
			t.Fatalf("stat: %v %v", st, err)
		}
	}
}

// TestSmallFileRounds: creating, writing and closing a small file through
// the kernel costs two Raft commands (CreateEntry, WriteInline).
func TestSmallFileRounds(t *testing.T) {
	e := mountEnv(t)
	applied := func() (n uint64) {
		for _, sv := range e.c.Subvolumes {
			n += sv.Applied()
		}
		return n
	}
	for i := range 5 {
		before := applied()
		if err := os.WriteFile(filepath.Join(e.mnt, fmt.Sprintf("small%d", i)), []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
		if n := applied() - before; n != 2 {
			t.Fatalf("create-write-close took %d Raft commands, want 2", n)
		}
	}
}

func TestCopyTree(t *testing.T) {
	e := mountEnv(t)
	src := t.TempDir()
	files := map[string]int{
		"a.txt": 10, "empty": 0, "sub/b.bin": 200000, "sub/deeper/c": 70000,
		"sub/deeper/d": 1 << 20, "other/e": 65536, "other/f": 3,
	}
	for name, size := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, randBytes(uint64(size), size), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../a.txt", filepath.Join(src, "sub", "link")); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(e.mnt, "copy")
	if out, err := exec.Command("cp", "-r", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -r: %v\n%s", err, out)
	}
	if out, err := exec.Command("diff", "-r", "--no-dereference", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("diff -r: %v\n%s", err, out)
	}
	if out, err := exec.Command("cp", "-a", src, dst+"2").CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	if out, err := exec.Command("diff", "-r", src, dst+"2").CombinedOutput(); err != nil {
		t.Fatalf("diff -r after cp -a: %v\n%s", err, out)
	}
	if out, err := exec.Command("rm", "-r", dst).CombinedOutput(); err != nil {
		t.Fatalf("rm -r: %v\n%s", err, out)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after rm -r: %v", err)
	}
}

// TestListLarge: ls -l of 2,000 files needs no lookup per file.
func TestListLarge(t *testing.T) {
	e := mountEnv(t)
	dir := filepath.Join(e.mnt, "many")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const count = 2000
	var want []string
	for i := range count {
		name := fmt.Sprintf("file-%04d", i)
		want = append(want, name)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	// Let the kernel forget the entries it learned while creating them.
	time.Sleep(1100 * time.Millisecond)
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
		t.Logf("drop_caches: %v", err)
	}
	calls := func() (n int64) {
		for _, sv := range e.c.Subvolumes {
			for _, b := range sv.Bricks {
				n += b.Calls()
			}
		}
		return n
	}
	before := calls()
	out, err := exec.Command("ls", "-l", dir).Output()
	if err != nil {
		t.Fatalf("ls -l: %v", err)
	}
	rpcs := calls() - before
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != count+1 || !strings.HasPrefix(lines[0], "total") {
		t.Fatalf("ls -l printed %d lines, want %d", len(lines), count+1)
	}
	var got []string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if f[0] != "-rw-r--r--" || f[4] != "9" {
			t.Fatalf("ls -l line %q", l)
		}
		got = append(got, f[len(f)-1])
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("ls -l names differ")
	}
	t.Logf("ls -l of %d files: %d brick RPCs", count, rpcs)
	if rpcs > count/10 {
		t.Errorf("ls -l of %d files cost %d RPCs; readdirplus should make it a few", count, rpcs)
	}
}

func TestNamesAndAttrs(t *testing.T) {
	e := mountEnv(t)
	long := filepath.Join(e.mnt, strings.Repeat("n", 256))
	if _, err := os.Create(long); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Fatalf("create with a 256-byte name: %v", err)
	}
	if err := os.Mkdir(long, 0o755); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Fatalf("mkdir with a 256-byte name: %v", err)
	}
	ok := filepath.Join(e.mnt, strings.Repeat("n", 255))
	if err := os.WriteFile(ok, nil, 0o600); err != nil {
		t.Fatalf("create with a 255-byte name: %v", err)
	}

	// utimensat with nanoseconds, UTIME_OMIT and UTIME_NOW.
	p := filepath.Join(e.mnt, "times")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := []unix.Timespec{{Sec: 1_000_000_000, Nsec: 123456789}, {Sec: 1_100_000_000, Nsec: 987654321}}
	if err := unix.UtimesNano(p, ts); err != nil {
		t.Fatalf("utimensat: %v", err)
	}
	var st unix.Stat_t
	stat := func() {
		t.Helper()
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
	}
	stat()
	if st.Atim != ts[0] || st.Mtim != ts[1] {
		t.Fatalf("times %v %v, want %v", st.Atim, st.Mtim, ts)
	}
	before := time.Now().Add(-time.Second).Unix()
	omitNow := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_NOW}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, omitNow, 0); err != nil {
		t.Fatalf("utimensat omit/now: %v", err)
	}
	stat()
	if st.Atim != ts[0] || st.Mtim.Sec < before {
		t.Fatalf("after OMIT/NOW: atime %v (want unchanged), mtime %v", st.Atim, st.Mtim)
	}
	if err := os.Chmod(p, 0o4711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 123, 456); err != nil {
		t.Fatal(err)
	}
	stat()
	if st.Mode != syscall.S_IFREG|0o4711 && st.Mode != syscall.S_IFREG|0o711 || st.Uid != 123 || st.Gid != 456 {
		t.Fatalf("mode %o uid %d gid %d", st.Mode, st.Uid, st.Gid)
	}

	// Special files.
	if err := syscall.Mkfifo(filepath.Join(e.mnt, "fifo"), 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	if err := syscall.Mknod(filepath.Join(e.mnt, "dev"), syscall.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatalf("mknod: %v", err)
	}
	if err := unix.Stat(filepath.Join(e.mnt, "dev"), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		t.Fatalf("device: %v mode %o rdev %x", err, st.Mode, st.Rdev)
	}

	// statfs.
	var sfs unix.Statfs_t
	if err := unix.Statfs(e.mnt, &sfs); err != nil || sfs.Blocks == 0 || sfs.Namelen != 255 {
		t.Fatalf("statfs: %v %+v", err, sfs)
	}
	// /proc/mounts shows the fsname and subtype.
	mounts, _ := os.ReadFile("/proc/self/mounts")
	if !strings.Contains(string(mounts), "test:/gv0 "+e.mnt+" fuse.dfs ") {
		t.Errorf("mount not in /proc/self/mounts as test:/gv0 ... fuse.dfs")
	}

	// Truncate through the mount, growing and shrinking.
	tp := filepath.Join(e.mnt, "trunc")
	data := randBytes(9, 2<<20)
	if err := os.WriteFile(tp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{3 << 20, 100, 70000, 0, 5} {
		if err := os.Truncate(tp, size); err != nil {
			t.Fatalf("truncate %d: %v", size, err)
		}
		got, err := os.ReadFile(tp)
		if err != nil || int64(len(got)) != size {
			t.Fatalf("after truncate %d: %d bytes, %v", size, len(got), err)
		}
	}
}

func TestRenameAcrossDirectories(t *testing.T) {
	e := mountEnv(t)
	// Enough directories that some pairs live on different subvolumes.
	for i := range 8 {
		d := filepath.Join(e.mnt, fmt.Sprintf("d%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f"), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	content := map[string]string{}
	for i := range 8 {
		d := filepath.Join(e.mnt, fmt.Sprintf("d%d", i))
		content[filepath.Join(d, "f")] = d
	}
	for i := 1; i < 8; i++ {
		from := filepath.Join(e.mnt, fmt.Sprintf("d%d", i-1), "f")
		to := filepath.Join(e.mnt, fmt.Sprintf("d%d", i), "f")
		if err := os.Rename(from, to); err != nil {
			t.Fatalf("rename: %v", err)
		}
		content[to] = content[from]
		delete(content, from)
		if _, err := os.Stat(from); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("source after rename: %v", err)
		}
	}
	for p, want := range content {
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Fatalf("%s: %q %v, want %q", p, got, err, want)
		}
	}

}

// TestUnsupportedXattrs checks that the attributes dfs does not keep (POSIX
// ACLs, SELinux labels, file capabilities) read as not supported, as on a
// local file system mounted without them: ls(1) and libacl then stop
// asking for the rest of a listing. Other attributes still work.
func TestUnsupportedXattrs(t *testing.T) {
	e := mountEnv(t)
	p := filepath.Join(e.mnt, "f")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	for _, name := range []string{"system.posix_acl_access", "system.posix_acl_default", "security.selinux", "security.capability"} {
		if _, err := unix.Lgetxattr(p, name, buf); err != unix.EOPNOTSUPP {
			t.Errorf("getxattr %s: %v, want EOPNOTSUPP", name, err)
		}
	}
	// (The kernel checks ACL and capability values before asking.)
	if err := unix.Lsetxattr(p, "security.selinux", []byte("v"), 0); err != unix.EOPNOTSUPP {
		t.Errorf("setxattr security.selinux: %v, want EOPNOTSUPP", err)
	}
	if err := unix.Lsetxattr(p, "user.k", []byte("v"), 0); err != nil {
		t.Fatalf("setxattr user.k: %v", err)
	}
	if n, err := unix.Lgetxattr(p, "user.k", buf); err != nil || string(buf[:n]) != "v" {
		t.Fatalf("getxattr user.k = %q, %v; want \"v\"", buf[:n], err)
	}
	if _, err := unix.Lgetxattr(p, "user.none", buf); err != unix.ENODATA {
		t.Fatalf("getxattr user.none: %v, want ENODATA", err)
	}
}

// TestDirAttrsAfterChanges checks what stat(2) of a directory shows right
// after this mount changed it: the mount answers from the change's own
// answer (post-operation attributes) instead of asking again, and that
// must match the directory as committed, also after changes whose answer
// carries no directory attributes (chmod, setxattr, mkdir, rmdir).
func TestDirAttrsAfterChanges(t *testing.T) {
	e := mountEnv(t)
	d := filepath.Join(e.mnt, "d")
	check := func(step string) {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Stat(d, &st); err != nil {
			t.Fatalf("%s: stat: %v", step, err)
		}
		ctx := t.Context()
		n, _, err := e.other.Lookup(ctx, e.other.Root(), "d")
		if err != nil {
			t.Fatal(err)
		}
		a, err := e.other.GetAttr(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprintf("mode %o nlink %d mtime %d ctime %d", st.Mode&0o7777, st.Nlink, st.Mtim.Nano(), st.Ctim.Nano())
		want := fmt.Sprintf("mode %o nlink %d mtime %d ctime %d", a.Mode, a.Nlink, a.MtimeNs, a.CtimeNs)
		if got != want {
			t.Fatalf("%s: stat shows %s, committed %s", step, got, want)
		}
	}
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"create", func() error { return os.WriteFile(filepath.Join(d, "f1"), []byte("x"), 0o644) }},
		{"chmod", func() error { return os.Chmod(d, 0o700) }},
		{"create after chmod", func() error { return os.WriteFile(filepath.Join(d, "f2"), nil, 0o644) }},
		{"setxattr", func() error { return unix.Setxattr(d, "user.k", []byte("v"), 0) }},
		{"mkdir", func() error { return os.Mkdir(filepath.Join(d, "sub"), 0o755) }},
		{"rename", func() error { return os.Rename(filepath.Join(d, "f1"), filepath.Join(d, "g1")) }},
		{"rmdir", func() error { return os.Remove(filepath.Join(d, "sub")) }},
		{"unlink", func() error { return os.Remove(filepath.Join(d, "g1")) }},
		{"rename out", func() error { return os.Rename(filepath.Join(d, "f2"), filepath.Join(e.mnt, "f2")) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		check(s.name)
	}
}

// TestWarmReadKeepsCache checks that reopening a file nobody changed keeps
// the kernel's cached pages (no RPC to read it again), and that a change
// by another client is read at the next open (close-to-open).
func TestWarmReadKeepsCache(t *testing.T) {
	e := mountEnv(t)
	p := filepath.Join(e.mnt, "f")
	want := randBytes(3, 3<<20)
	if err := os.WriteFile(p, want, 0o644); err != nil {
		t.Fatal(err)
	}
	read := func(want []byte) {
		t.Helper()
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes that differ from the %d expected", len(got), len(want))
		}
	}
	read(want) // fills the page cache
	before := e.brickReads()
	read(want)
	// The open revalidates with a GetAttr; the data comes from the cache.
	if n := e.brickReads() - before; n != 0 {
		t.Fatalf("warm re-read of 3 MiB read from the bricks %d times, want 0", n)
	}

	// Another client rewrites the file with the same size.
	ctx := t.Context()
	n, _, err := e.other.Lookup(ctx, e.other.Root(), "f")
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.other.Open(ctx, n, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	next := randBytes(4, len(want))
	if _, err := f.WriteAt(ctx, next, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_ = f.Release(ctx)
	read(next)
}

// TestWritesKeepAttrsLocal checks that the GETATTR the kernel sends after
// each write(2) (before the next read, to check mtime) is answered from
// the open file's state, not with an RPC each, and that fstat still shows
// the size written.
func TestWritesKeepAttrsLocal(t *testing.T) {
	e := mountEnv(t)
	p := filepath.Join(e.mnt, "f")
	if err := os.WriteFile(p, make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	others := func() (n int64) {
		for _, sv := range e.c.Subvolumes {
			for _, b := range sv.Bricks {
				n += b.Calls() - b.Reads() - b.Mutations()
			}
		}
		return n
	}
	buf := make([]byte, 4096)
	before := others()
	for i := range 20 {
		if _, err := f.WriteAt(randBytes(uint64(i), 4096), int64(i)*65536); err != nil {
			t.Fatal(err)
		}
		if _, err := f.ReadAt(buf, int64(i)*65536+32768); err != nil {
			t.Fatal(err)
		}
	}
	if n := others() - before; n > 5 {
		t.Fatalf("20 writes and reads made %d calls besides reads and writes, want at most 5 (not a GetAttr each)", n)
	}
	if _, err := f.WriteAt([]byte("end"), 3<<20); err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() != 3<<20+3 {
		t.Fatalf("fstat after an extending write: size %d, %v; want %d", fi.Size(), err, 3<<20+3)
	}
}
