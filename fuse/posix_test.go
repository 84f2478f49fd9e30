package fuse_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
	"golang.org/x/sys/unix"
)

// instead lists the posixtest cases whose expectation is not Linux's, with
// the test that checks what the case means against a local file system.
var instead = map[string]func(t *testing.T, dir string){
	// The case takes a write lock through one descriptor and expects a
	// read lock through a second descriptor of the same process to fail:
	// the per-open-file (OFD) semantics that go-fuse's loopback gets by
	// forwarding F_SETLK as F_OFD_SETLK. With F_SETLK, Linux (ext4, NFS)
	// grants it, since POSIX record locks belong to the process; with
	// F_OFD_SETLK it refuses. dfs must do both as Linux does.
	"FcntlFlockLocksFile": fcntlLocksLikeLinux,
	// The case replaces a file by rename(2) while another thread opens it,
	// and allows only the errors a local file system gives. dfs, as NFS,
	// removes a replaced file that no one has open at once: an open whose
	// path walk found the old inode gets ESTALE, the kernel walks the path
	// again (LOOKUP_REVAL), and a second replacement within that retry
	// surfaces ESTALE to the caller (about once in 15 runs of the case).
	"OpenSymlinkRace": openSymlinkRaceLikeNFS,
}

// openSymlinkRaceLikeNFS is posixtest.OpenSymlinkRace, with ESTALE among
// the allowed outcomes of the opener (counted, and logged): a shuffler
// makes the name a regular file and a symlink to /etc/passwd in turn, by
// rename over it; every open must give the regular file or follow the
// symlink out of the mount, never open something else.
func openSymlinkRaceLikeNFS(t *testing.T, dir string) {
	path := filepath.Join(dir, "OpenSymlinkRace")
	const iterations = 1000
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	dev := st.Dev
	f.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		tmp := path + ".tmp"
		for i := 0; i < iterations && !t.Failed(); i++ {
			if err := os.WriteFile(tmp, nil, 0o600); err != nil {
				t.Errorf("shuffler: create: %v", err)
				return
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Errorf("shuffler: rename file: %v", err)
				return
			}
			if err := os.Symlink("/etc/passwd", tmp); err != nil {
				t.Errorf("shuffler: symlink: %v", err)
				return
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Errorf("shuffler: rename symlink: %v", err)
				return
			}
		}
	}()
	counts := map[string]int{}
	go func() {
		defer wg.Done()
		for i := 0; i < iterations && !t.Failed(); i++ {
			fd, err := syscall.Open(path, syscall.O_RDONLY, 0)
			switch err {
			case nil:
			case syscall.EINVAL, syscall.ELOOP, syscall.ENOENT, syscall.ESTALE:
				counts[err.Error()]++
				continue
			default:
				t.Errorf("opener: open: %v", err)
				return
			}
			var st syscall.Stat_t
			err = syscall.Fstat(fd, &st)
			syscall.Close(fd)
			switch {
			case err != nil:
				t.Errorf("opener: fstat: %v", err)
				return
			case st.Size == 0:
				counts["regular file"]++
			case st.Dev != dev:
				counts["followed the symlink"]++
			default:
				t.Errorf("opener: iteration %d opened a non-empty file on the mount", i)
				return
			}
		}
	}()
	wg.Wait()
	t.Logf("opener outcomes: %v", counts)
}

// fcntlLocksLikeLinux runs FcntlFlockLocksFile's steps with F_SETLK and
// with F_OFD_SETLK in dir and in a local directory, and wants the same
// answers: the second lock granted with F_SETLK, refused (EAGAIN) with
// F_OFD_SETLK.
func fcntlLocksLikeLinux(t *testing.T, dir string) {
	steps := func(dir string, cmd int) error {
		name := filepath.Join(dir, fmt.Sprintf("test-%d", cmd))
		f1, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f1.Close()
		if err := unix.FcntlFlock(f1.Fd(), cmd, &unix.Flock_t{Type: unix.F_WRLCK}); err != nil {
			t.Fatalf("write lock: %v", err)
		}
		f2, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f2.Close()
		return unix.FcntlFlock(f2.Fd(), cmd, &unix.Flock_t{Type: unix.F_RDLCK})
	}
	local := t.TempDir()
	for _, c := range []struct {
		cmd  int
		name string
		want error
	}{{unix.F_SETLK, "F_SETLK", nil}, {unix.F_OFD_SETLK, "F_OFD_SETLK", unix.EAGAIN}} {
		got, ref := steps(dir, c.cmd), steps(local, c.cmd)
		if !errors.Is(got, c.want) || !errors.Is(ref, c.want) {
			t.Errorf("%s, second descriptor: dfs %v, local %v; want %v", c.name, got, ref, c.want)
		}
	}
}

// TestPosix runs go-fuse's posixtest suite against the mount, each case in
// a fresh directory.
func TestPosix(t *testing.T) {
	e := mountEnv(t)
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(e.mnt, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if check, ok := instead[name]; ok {
				check(t, dir)
				return
			}
			posixtest.All[name](t, dir)
		})
	}
}
