package fuse_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dfsproject/dfs/fuse"
)

// secondMount mounts the env's other client on a directory of its own: a
// second machine, as far as locks go.
func secondMount(e *env) string {
	e.t.Helper()
	dir := e.t.TempDir()
	opts := fuse.DefaultOptions()
	opts.FsName = "test2:/" + e.c.Volume
	m, err := fuse.Mount(dir, e.other, opts)
	if err != nil {
		e.t.Fatalf("second Mount: %v", err)
	}
	e.t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for m.Unmount() != nil {
			if time.Now().After(deadline) {
				_ = syscall.Unmount(dir, syscall.MNT_DETACH)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		m.Wait()
	})
	return dir
}

func openRW(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func fcntl(f *os.File, cmd int, typ int16, start, length int64) (syscall.Flock_t, error) {
	lk := syscall.Flock_t{Type: typ, Whence: 0, Start: start, Len: length}
	err := syscall.FcntlFlock(f.Fd(), cmd, &lk)
	return lk, err
}

func TestFlockAcrossMounts(t *testing.T) {
	e := mountEnv(t)
	mnt2 := secondMount(e)
	a := openRW(t, filepath.Join(e.mnt, "lock"))
	b := openRW(t, filepath.Join(mnt2, "lock"))
	if err := syscall.Flock(int(a.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("flock LOCK_EX on mount 1: %v", err)
	}
	if err := syscall.Flock(int(b.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatalf("flock LOCK_SH on mount 2 while mount 1 holds LOCK_EX: %v; want EWOULDBLOCK", err)
	}
	// Another open file description on the same mount is another holder.
	a2 := openRW(t, filepath.Join(e.mnt, "lock"))
	if err := syscall.Flock(int(a2.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatalf("flock through a second open file: %v; want EWOULDBLOCK", err)
	}
	// Downgrade, then share.
	if err := syscall.Flock(int(a.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		t.Fatalf("downgrade: %v", err)
	}
	if err := syscall.Flock(int(b.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		t.Fatalf("shared lock beside a shared lock: %v", err)
	}
	if err := syscall.Flock(int(b.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatalf("LOCK_UN: %v", err)
	}
	// The last close of the holder's file releases its flock; a dup
	// keeps the description open.
	dup, err := syscall.Dup(int(a.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if err := syscall.Flock(int(b.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatalf("flock after closing one of two descriptors: %v; want EWOULDBLOCK", err)
	}
	syscall.Close(dup)
	waitFor(t, "flock released by the last close", func() bool {
		return syscall.Flock(int(b.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
	})
}

func TestFcntlLocksAcrossMounts(t *testing.T) {
	e := mountEnv(t)
	mnt2 := secondMount(e)
	a := openRW(t, filepath.Join(e.mnt, "db"))
	b := openRW(t, filepath.Join(mnt2, "db"))
	if _, err := fcntl(a, syscall.F_SETLK, syscall.F_WRLCK, 0, 100); err != nil {
		t.Fatalf("F_SETLK write 0-99: %v", err)
	}
	if _, err := fcntl(b, syscall.F_SETLK, syscall.F_RDLCK, 50, 10); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("F_SETLK read over it from mount 2: %v; want EAGAIN", err)
	}
	lk, err := fcntl(b, syscall.F_GETLK, syscall.F_WRLCK, 0, 0)
	if err != nil || lk.Type != syscall.F_WRLCK || lk.Start != 0 || lk.Len != 100 || lk.Pid != int32(os.Getpid()) {
		t.Fatalf("F_GETLK from mount 2 = %+v, %v; want a write lock 0+100 by pid %d", lk, err, os.Getpid())
	}
	if _, err := fcntl(b, syscall.F_SETLK, syscall.F_WRLCK, 100, 0); err != nil {
		t.Fatalf("F_SETLK past the held range (to EOF): %v", err)
	}
	if lk, err := fcntl(a, syscall.F_GETLK, syscall.F_RDLCK, 0, 50); err != nil || lk.Type != syscall.F_UNLCK {
		t.Fatalf("F_GETLK over one's own lock = %+v, %v; want F_UNLCK", lk, err)
	}
	// POSIX locks belong to the process: another descriptor of the file
	// in the holding process converts the lock rather than conflict.
	a2 := openRW(t, filepath.Join(e.mnt, "db"))
	if _, err := fcntl(a2, syscall.F_SETLK, syscall.F_WRLCK, 90, 10); err != nil {
		t.Fatalf("F_SETLK through a second descriptor of the holder: %v", err)
	}
	// Split the held range by unlocking its middle.
	if _, err := fcntl(a, syscall.F_SETLK, syscall.F_UNLCK, 40, 20); err != nil {
		t.Fatal(err)
	}
	if _, err := fcntl(b, syscall.F_SETLK, syscall.F_WRLCK, 45, 10); err != nil {
		t.Fatalf("lock in the hole: %v", err)
	}
	if _, err := fcntl(b, syscall.F_SETLK, syscall.F_WRLCK, 60, 1); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("lock on the right part: %v; want EAGAIN", err)
	}
	// Any close of the file by the holding process releases its POSIX
	// locks, even of another descriptor.
	other, err := os.Open(filepath.Join(e.mnt, "db"))
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	if _, err := fcntl(b, syscall.F_SETLK, syscall.F_WRLCK, 0, 40); err != nil {
		t.Fatalf("lock after the holder closed the file: %v", err)
	}
}

// TestSetlkwWaitsAndIsInterrupted: F_SETLKW blocks while another mount
// holds the lock; a signal whose handler restarts calls (SA_RESTART, as
// Go's) leaves it waiting, as on a local file system; one that does not
// ends the wait with EINTR (flock(1) -w times out with SIGALRM); and a
// waiter gets the lock when the holder lets go.
func TestSetlkwWaitsAndIsInterrupted(t *testing.T) {
	e := mountEnv(t)
	mnt2 := secondMount(e)
	a := openRW(t, filepath.Join(e.mnt, "w"))
	b := openRW(t, filepath.Join(mnt2, "w"))
	if _, err := fcntl(a, syscall.F_SETLK, syscall.F_WRLCK, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(a.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	tids := make(chan int, 1)
	got := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- unix.Gettid()
		_, err := fcntl(b, syscall.F_SETLKW, syscall.F_WRLCK, 0, 1)
		got <- err
	}()
	tid := <-tids
	for range 3 {
		_ = unix.Tgkill(os.Getpid(), tid, syscall.SIGURG)
		select {
		case err := <-got:
			t.Fatalf("F_SETLKW returned %v while the lock is held", err)
		case <-time.After(200 * time.Millisecond):
		}
	}

	start := time.Now()
	out, err := exec.Command("flock", "-w", "0.5", filepath.Join(mnt2, "w"), "true").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("flock -w 0.5 over a held lock: %v %s; want exit status 1 (timed out)", err, out)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 5*time.Second {
		t.Fatalf("flock -w 0.5 gave up after %v", d)
	}

	if _, err := fcntl(a, syscall.F_SETLK, syscall.F_UNLCK, 0, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("F_SETLKW after the holder unlocked: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("F_SETLKW not granted after the holder unlocked")
	}
	if err := syscall.Flock(int(a.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("flock", "-w", "5", filepath.Join(mnt2, "w"), "true").CombinedOutput(); err != nil {
		t.Fatalf("flock -w 5 on a free file: %v %s", err, out)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
