package fuse_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
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
