package integration

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestBelowQuorum: with two of three servers hung, a write fails with EIO
// once the failover timeout passes (it does not hang, and nothing is
// acknowledged that is not on a majority); when they come back, service
// resumes by itself and what was acknowledged before is intact.
func TestBelowQuorum(t *testing.T) {
	c := pool(t, 3)
	c.volume(t, "gv0", 1)
	mnt := mountVolume(t, c, "gv0")
	before := writeRandom(t, filepath.Join(mnt, "before"), 300<<10, 1)

	hung := c.servers[1:]
	for _, s := range hung {
		if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	resumed := false
	resume := func() {
		if resumed {
			return
		}
		resumed = true
		for _, s := range hung {
			_ = s.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)

	// The write must end with EIO, not hang: the failover timeout is
	// network.ping-timeout (5 s) plus 5 s; allow a generous margin for a
	// loaded machine.
	type outcome struct {
		err  error
		took time.Duration
	}
	done := make(chan outcome, 1)
	go func() {
		t0 := time.Now()
		err := os.WriteFile(filepath.Join(mnt, "during"), []byte("not on a majority"), 0o644)
		done <- outcome{err, time.Since(t0)}
	}()
	select {
	case o := <-done:
		if !errors.Is(o.err, syscall.EIO) {
			t.Fatalf("write below quorum: %v after %v, want EIO", o.err, o.took)
		}
		t.Logf("write below quorum failed with EIO after %v", o.took.Round(100*time.Millisecond))
	case <-time.After(2 * time.Minute):
		resume()
		t.Fatal("write below quorum still blocked after 2 minutes")
	}

	resume()
	t0 := time.Now()
	eventually(t, 60*time.Second, "writes after quorum returns", func() error {
		return os.WriteFile(filepath.Join(mnt, "after"), []byte("quorum is back"), 0o644)
	})
	t.Logf("service resumed %v after SIGCONT", time.Since(t0).Round(100*time.Millisecond))
	if got := sha(t, filepath.Join(mnt, "before")); got != before {
		t.Fatal("a file acknowledged before the outage changed")
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "after")); err != nil || string(b) != "quorum is back" {
		t.Fatalf("read after: %q, %v", b, err)
	}
}
