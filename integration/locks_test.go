package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Lock tests: flock and fcntl locks across real mounts of a real replica 3
// volume, released at close, by the lease of a killed client, and kept
// through the death of the subvolume's leader; and many processes on
// several mounts counting under locks.

func openLockFile(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func setlk(f *os.File, cmd int, typ int16, start, length int64) (syscall.Flock_t, error) {
	lk := syscall.Flock_t{Type: typ, Start: start, Len: length}
	err := syscall.FcntlFlock(f.Fd(), cmd, &lk)
	return lk, err
}

// mountForeground runs `dfs mount -f` as a child process, returning the
// mount point and the process (to kill).
func mountForeground(t *testing.T, c *cluster, vol string) (string, *exec.Cmd) {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "client.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(*dfsBinary, "mount", "-f", c.servers[1].host+":/"+vol, dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		_ = exec.Command("umount", "-l", dir).Run()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("---- log of dfs mount -f %s ----\n%s", dir, tail(string(b), 40))
		}
	})
	eventually(t, 20*time.Second, "dfs mount -f is live", func() error {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("dfs mount exited: %s", tail(string(b), 20))
		default:
		}
		if !isMounted(t, dir) {
			return fmt.Errorf("%s not mounted yet", dir)
		}
		return nil
	})
	return dir, cmd
}

// subvolumeLeader returns the server hosting the online leader brick of
// subvolume 0 of vol, asking server ask, other than server not (killed,
// while status may still name it).
func subvolumeLeader(t *testing.T, c *cluster, ask, vol string, not *server) *server {
	t.Helper()
	var leader *server
	eventually(t, 20*time.Second, "a leader of subvolume 0", func() error {
		st, err := volumeStatus(t, ask, vol)
		if err != nil {
			return err
		}
		for _, b := range st.Bricks {
			if b.Subvolume == 0 && b.Online && strings.EqualFold(b.Role, "leader") {
				for _, s := range c.servers {
					if s.host == b.Host && s != not {
						leader = s
						return nil
					}
				}
			}
		}
		return fmt.Errorf("no brick of subvolume 0 reports the leader role: %v", st.Bricks)
	})
	return leader
}

func TestLocksAcrossMounts(t *testing.T) {
	c := pool(t, 3)
	c.volume(t, "gv0", 1)
	a, b := mountVolume(t, c, "gv0"), mountVolume(t, c, "gv0")

	t.Run("flock", func(t *testing.T) {
		fa := openLockFile(t, filepath.Join(a, "flock"))
		fb := openLockFile(t, filepath.Join(b, "flock"))
		if err := syscall.Flock(int(fa.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			t.Fatalf("LOCK_EX on mount a: %v", err)
		}
		if err := syscall.Flock(int(fb.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
			t.Fatalf("LOCK_SH on mount b over a's LOCK_EX: %v; want EWOULDBLOCK", err)
		}
		// flock(1) waits for it, and gets it when a closes its file.
		done := make(chan error, 1)
		go func() {
			done <- exec.Command("flock", "-w", "30", filepath.Join(b, "flock"), "true").Run()
		}()
		time.Sleep(300 * time.Millisecond)
		select {
		case err := <-done:
			t.Fatalf("flock(1) on b returned %v while a holds the lock", err)
		default:
		}
		fa.Close()
		if err := <-done; err != nil {
			t.Fatalf("flock(1) after a closed its file: %v", err)
		}
		// flock(1) has exited; the kernel sends the RELEASE of its file
		// (which drops its flock) a moment later.
		eventually(t, 5*time.Second, "LOCK_EX on b once flock(1) has let go", func() error {
			return syscall.Flock(int(fb.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		})
	})

	t.Run("fcntl", func(t *testing.T) {
		fa := openLockFile(t, filepath.Join(a, "fcntl"))
		fb := openLockFile(t, filepath.Join(b, "fcntl"))
		if _, err := setlk(fa, syscall.F_SETLK, syscall.F_WRLCK, 0, 100); err != nil {
			t.Fatalf("F_WRLCK 0+100 on a: %v", err)
		}
		if _, err := setlk(fb, syscall.F_SETLK, syscall.F_RDLCK, 99, 1); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("F_RDLCK over it on b: %v; want EAGAIN", err)
		}
		lk, err := setlk(fb, syscall.F_GETLK, syscall.F_RDLCK, 0, 0)
		if err != nil || lk.Type != syscall.F_WRLCK || lk.Start != 0 || lk.Len != 100 || lk.Pid != int32(os.Getpid()) {
			t.Fatalf("F_GETLK on b = %+v, %v; want a's F_WRLCK 0+100 of pid %d", lk, err, os.Getpid())
		}
		if _, err := setlk(fb, syscall.F_SETLK, syscall.F_WRLCK, 100, 0); err != nil {
			t.Fatalf("F_WRLCK from 100 to EOF on b: %v", err)
		}
		fa.Close()
		if _, err := setlk(fb, syscall.F_SETLK, syscall.F_WRLCK, 0, 0); err != nil {
			t.Fatalf("whole-file F_WRLCK on b after a closed: %v", err)
		}
	})

	t.Run("killed client", func(t *testing.T) {
		k, proc := mountForeground(t, c, "gv0")
		fk, err := os.OpenFile(filepath.Join(k, "victim"), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := setlk(fk, syscall.F_SETLK, syscall.F_WRLCK, 0, 0); err != nil {
			t.Fatalf("F_WRLCK through the doomed client: %v", err)
		}
		if err := syscall.Flock(int(fk.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			t.Fatalf("LOCK_EX through the doomed client: %v", err)
		}
		fb := openLockFile(t, filepath.Join(b, "victim"))
		if _, err := setlk(fb, syscall.F_SETLK, syscall.F_RDLCK, 0, 1); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("F_RDLCK on b while the client lives: %v; want EAGAIN", err)
		}
		if err := proc.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		_ = fk.Close() // the connection is gone: nothing is released by this
		eventually(t, 40*time.Second, "the killed client's locks expire", func() error {
			if _, err := setlk(fb, syscall.F_SETLK, syscall.F_WRLCK, 0, 0); err != nil {
				return fmt.Errorf("fcntl: %w", err)
			}
			return syscall.Flock(int(fb.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		})
		took := time.Since(killed)
		t.Logf("locks of the client killed with kill -9 released %.1f s later", took.Seconds())
		if took < 3*time.Second {
			t.Errorf("locks released %v after the kill: before any lease could end", took)
		}
	})

	t.Run("leader killed", func(t *testing.T) {
		fa := openLockFile(t, filepath.Join(a, "survivor"))
		fb := openLockFile(t, filepath.Join(b, "survivor"))
		if _, err := setlk(fa, syscall.F_SETLK, syscall.F_WRLCK, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(fa.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			t.Fatal(err)
		}
		leader := subvolumeLeader(t, c, c.servers[0].addr, "gv0", nil)
		var ask string
		for _, s := range c.servers {
			if s != leader {
				ask = s.addr
			}
		}
		leader.kill()
		t.Logf("killed %s, which led subvolume 0", leader.host)
		next := subvolumeLeader(t, c, ask, "gv0", leader)
		t.Logf("%s leads subvolume 0 now", next.host)
		// Held through the failover, and for longer than a lease after it
		// (the holder renews with the new leader).
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := setlk(fb, syscall.F_SETLK, syscall.F_RDLCK, 0, 1); !errors.Is(err, syscall.EAGAIN) {
				t.Fatalf("F_RDLCK on b after the leader died: %v; want EAGAIN", err)
			}
			if err := syscall.Flock(int(fb.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
				t.Fatalf("LOCK_SH on b after the leader died: %v; want EWOULDBLOCK", err)
			}
			time.Sleep(time.Second)
		}
		if _, err := setlk(fa, syscall.F_SETLK, syscall.F_UNLCK, 0, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := setlk(fb, syscall.F_SETLK, syscall.F_WRLCK, 0, 0); err != nil {
			t.Fatalf("F_WRLCK on b after a unlocked: %v", err)
		}
		leader.start()
		leader.awaitUp()
	})
}

// TestLockedCounterAcrossMounts: processes on three mounts increment one
// counter file under flock(1), and sqlite3 processes on the mounts run
// transactions on one database (its journal created and deleted by one
// mount and looked up by the others); no increment is lost.
func TestLockedCounterAcrossMounts(t *testing.T) {
	c := pool(t, 3)
	c.volume(t, "gv0", 1)
	mnts := []string{mountVolume(t, c, "gv0"), mountVolume(t, c, "gv0"), mountVolume(t, c, "gv0")}
	if err := os.WriteFile(filepath.Join(mnts[0], "counter"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const perMount, loops = 2, 15
	script := fmt.Sprintf(`for i in $(seq %d); do flock lock sh -c 'n=$(cat counter); echo $((n+1)) > counter' || exit 1; done`, loops)
	run := func(mnt string, name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Dir = mnt
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s on %s: %v: %s", name, mnt, err, out)
		}
		return nil
	}
	parallel := func(fn func(mnt string) error) {
		var wg sync.WaitGroup
		errs := make(chan error, len(mnts)*perMount)
		for _, m := range mnts {
			for range perMount {
				wg.Add(1)
				go func() { defer wg.Done(); errs <- fn(m) }()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	}
	start := time.Now()
	parallel(func(m string) error { return run(m, "sh", "-c", script) })
	b, err := os.ReadFile(filepath.Join(mnts[1], "counter"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || n != len(mnts)*perMount*loops {
		t.Fatalf("counter = %q; want %d", b, len(mnts)*perMount*loops)
	}
	t.Logf("flock counter: %d increments on %d mounts in %.1f s", len(mnts)*perMount*loops, len(mnts), time.Since(start).Seconds())

	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Fatalf("sqlite3 is not installed (scripts/deps.sh installs it): %v", err)
	}
	if err := run(mnts[0], "sqlite3", "db", "CREATE TABLE c(n INTEGER); INSERT INTO c VALUES(0);"); err != nil {
		t.Fatal(err)
	}
	const txns = 15
	var sql strings.Builder
	sql.WriteString(".timeout 60000\n")
	for i := 0; i < txns; i++ {
		sql.WriteString("BEGIN IMMEDIATE; UPDATE c SET n = n + 1; COMMIT;\n")
	}
	start = time.Now()
	parallel(func(m string) error {
		cmd := exec.Command("sqlite3", "-bail", "db")
		cmd.Dir = m
		cmd.Stdin = strings.NewReader(sql.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("sqlite3 on %s: %v: %s", m, err, out)
		}
		return nil
	})
	out, err := exec.Command("sqlite3", filepath.Join(mnts[2], "db"), "PRAGMA integrity_check; SELECT n FROM c;").CombinedOutput()
	if err != nil {
		t.Fatalf("read the count: %v: %s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), fmt.Sprintf("ok\n%d", len(mnts)*perMount*txns); got != want {
		t.Fatalf("sqlite integrity check and count = %q; want %q", got, want)
	}
	t.Logf("sqlite: %d transactions from %d processes on %d mounts in %.1f s", len(mnts)*perMount*txns, len(mnts)*perMount, len(mnts), time.Since(start).Seconds())
}

// TestInterruptedLockWait: a process waiting for a lock another
// mount holds gives up on a signal (flock -w 1: SIGALRM after a second).
// The leader holds each attempt up to a second (brick/lockwait.go) and
// the client retries a held attempt at once (pkg/client/locks.go,
// SetLock): the interrupted waiter must still end within a few seconds,
// not when the holder lets go.
func TestInterruptedLockWait(t *testing.T) {
	c := pool(t, 3)
	c.volume(t, "gv0", 1)
	a, b := mountVolume(t, c, "gv0"), mountVolume(t, c, "gv0")
	fa := openLockFile(t, filepath.Join(a, "lk"))
	if err := syscall.Flock(int(fa.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("LOCK_EX on mount a: %v", err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- exec.Command("flock", "-w", "1", filepath.Join(b, "lk"), "true").Run()
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("flock(1) on b got the lock a holds")
		}
		t.Logf("flock -w 1 gave up after %v: %v", time.Since(start), err)
	case <-time.After(8 * time.Second):
		fa.Close() // lets the waiter go
		err := <-done
		t.Fatalf("flock -w 1 still waiting after 8 s (ended %v, when a released: %v)", time.Since(start), err)
	}
}
