package client_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
	"github.com/dfsproject/dfs/proto/dfspb"
)

func TestConfigValidate(t *testing.T) {
	ok := client.DefaultConfig()
	ok.Servers, ok.Volume = []string{"a", "b:1"}, "v"
	mustOK(t, "valid", ok.Validate())
	for name, mod := range map[string]func(*client.Config){
		"no servers": func(c *client.Config) { c.Servers = nil },
		"no volume":  func(c *client.Config) { c.Volume = "" },
		"bad port":   func(c *client.Config) { c.Servers = []string{"h:x"} },
		"negative":   func(c *client.Config) { c.CallTimeout = -1 },
	} {
		c := ok
		mod(&c)
		wantErr(t, name, c.Validate(), client.ErrInvalidConfig)
	}
}

func TestOpenErrors(t *testing.T) {
	c := clienttest.Start(t, clienttest.Options{})
	ctx := t.Context()
	cfg := client.DefaultConfig()
	cfg.Servers = c.Servers()
	cfg.Logger = testLogger(t)

	cfg.Volume = "nosuch"
	_, err := client.Open(ctx, cfg)
	wantErr(t, "unknown volume", err, client.ErrNoVolume)
	if !strings.Contains(err.Error(), "nosuch does not exist") {
		t.Errorf("error lacks the server's message: %v", err)
	}

	cfg.Volume = c.Volume
	c.Manager.Update(func(l *dfspb.VolumeLayout) { l.State = dfspb.VolumeState_VOLUME_STATE_STOPPED })
	_, err = client.Open(ctx, cfg)
	wantErr(t, "stopped volume", err, client.ErrNotStarted)
	if !strings.Contains(err.Error(), "not started") {
		t.Errorf("error does not say so: %v", err)
	}

	// Two dead servers (ports nobody listens on).
	dead := []string{freeAddr(t), freeAddr(t)}
	cfg.Servers = dead
	cfg.CallTimeout = time.Second
	_, err = client.Open(ctx, cfg)
	wantErr(t, "unreachable", err, client.ErrUnavailable)
	for _, d := range dead {
		if !strings.Contains(err.Error(), d) {
			t.Errorf("error does not list %s: %v", d, err)
		}
	}

	// A dead server first, then a live one.
	c.Manager.Update(func(l *dfspb.VolumeLayout) { l.State = dfspb.VolumeState_VOLUME_STATE_STARTED })
	cfg.Servers = []string{dead[0], c.Manager.Addr}
	v, err := client.Open(ctx, cfg)
	mustOK(t, "open past a dead server", err)
	mustOK(t, "close", v.Close())
	mustOK(t, "close twice", v.Close())
	_, err = v.GetAttr(ctx, v.Root())
	wantErr(t, "after close", err, client.ErrClosed)
}

// freeAddr returns a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.4.250:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestLayoutWatch(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	v0 := e.v.LayoutVersion()
	e.c.Manager.Update(func(l *dfspb.VolumeLayout) { l.Options["network.ping-timeout"] = "2" })
	waitFor(t, "new layout", func() bool { return e.v.LayoutVersion() == v0+1 })
	// A stopped volume fails operations at once.
	e.c.Manager.Update(func(l *dfspb.VolumeLayout) { l.State = dfspb.VolumeState_VOLUME_STATE_STOPPED })
	waitFor(t, "stopped layout", func() bool { return e.v.LayoutVersion() == v0+2 })
	_, err := e.v.GetAttr(e.ctx, e.v.Root())
	wantErr(t, "stopped", err, client.ErrUnavailable)
	e.c.Manager.Update(func(l *dfspb.VolumeLayout) { l.State = dfspb.VolumeState_VOLUME_STATE_STARTED })
	waitFor(t, "started layout", func() bool {
		_, err := e.v.GetAttr(e.ctx, e.v.Root())
		return err == nil
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLeaderRouting: calls follow the dfs-leader trailer, survive an
// election, and fail with ErrUnavailable when no leader appears in time.
func TestLeaderRouting(t *testing.T) {
	c := clienttest.Start(t, clienttest.Options{Replicas: 3})
	for _, sv := range c.Subvolumes {
		sv.SetLeader(2) // the client will try brick 0 first
	}
	e := &env{t: t, c: c, ctx: t.Context()}
	e.v = e.open()
	root := e.v.Root()
	e.create(root, "a")
	for _, sv := range c.Subvolumes {
		if sv.Bricks[1].Calls() != 0 {
			t.Errorf("subvolume %d: brick 1 was tried although brick 0 named the leader", sv.Index)
		}
	}
	// Leadership moves: the old leader names the new one.
	for _, sv := range c.Subvolumes {
		sv.SetLeader(1)
	}
	before := c.Subvolumes[0].Bricks[0].Calls()
	e.create(root, "b")
	if _, _, err := e.v.Lookup(e.ctx, root, "a"); err != nil {
		t.Fatalf("lookup after leader change: %v", err)
	}
	if c.Subvolumes[0].Bricks[0].Calls() != before {
		t.Errorf("brick 0 was asked although brick 2 named brick 1")
	}
	// An election: no leader for a while, then one.
	for _, sv := range c.Subvolumes {
		sv.SetLeader(-1)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		for _, sv := range c.Subvolumes {
			sv.SetLeader(0)
		}
	}()
	start := time.Now()
	e.create(root, "c")
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("create during an election returned after %v", d)
	}
	// A brick that is down is skipped.
	c.Subvolumes[0].Bricks[0].Stop()
	c.Subvolumes[1].Bricks[0].Stop()
	for _, sv := range c.Subvolumes {
		sv.SetLeader(2)
	}
	e.create(root, "d")
	// No leader within the failover timeout.
	for _, sv := range c.Subvolumes {
		sv.SetLeader(-1)
	}
	start = time.Now()
	_, _, err := e.v.Lookup(e.ctx, root, "a")
	wantErr(t, "no leader", err, client.ErrUnavailable)
	if d := time.Since(start); d < 3*time.Second || d > 5*time.Second {
		t.Errorf("gave up after %v; the failover timeout is 3 s", d)
	}
}

// TestAmbiguousRetries: a command whose answer is lost is retried, and the
// retry's answer is read correctly for every kind of command.
func TestAmbiguousRetries(t *testing.T) {
	e := newEnv(t, clienttest.Options{Subvolumes: 1})
	b := e.c.Subvolumes[0].Bricks[0]
	root := e.v.Root()
	lose := func() { b.LoseNextAnswers(1) }

	lose()
	n := e.create(root, "f")
	ents, _, err := e.v.ReadDir(e.ctx, root, "", 0)
	mustOK(t, "readdir", err)
	if len(ents) != 1 || ents[0].Node.ID != n.ID {
		t.Fatalf("after a create with a lost answer: %v", ents)
	}
	lose()
	d, _, err := e.v.Mkdir(e.ctx, root, "d", 0o755, 0, 0)
	mustOK(t, "mkdir with lost answers", err)
	lose()
	mustOK(t, "rename", e.v.Rename(e.ctx, root, "f", d, "g", 0))
	lose()
	mustOK(t, "setxattr create", e.v.SetXattr(e.ctx, d, "user.x", []byte("1"), client.XattrCreate))
	lose()
	mustOK(t, "removexattr", e.v.RemoveXattr(e.ctx, d, "user.x"))
	lose()
	e.writeFile(e.v, d, "g", []byte("data"))
	lose()
	mustOK(t, "unlink", e.v.Unlink(e.ctx, d, "g"))
	lose()
	mustOK(t, "rmdir", e.v.Rmdir(e.ctx, root, "d"))
	ents, _, err = e.v.ReadDir(e.ctx, root, "", 0)
	mustOK(t, "readdir", err)
	if len(ents) != 0 {
		t.Fatalf("left over: %v", ents)
	}
	// Unambiguous failures before the command is applied are retried too.
	b.FailNext(3)
	e.create(root, "h")
}

// TestInterruptedMutation: a cancelled context ends a call.
func TestCancelledContext(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	for _, sv := range e.c.Subvolumes {
		sv.SetLeader(-1)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 100*time.Millisecond)
	defer cancel()
	_, _, err := e.v.Lookup(ctx, e.v.Root(), "x")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lookup with an expired context: %v", err)
	}
}

// TestCloseWithOpenFiles: Close stops background chunk writes of files
// still open; their later use fails with ErrClosed.
func TestCloseWithOpenFiles(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	v := e.open()
	n, _, err := v.Create(e.ctx, v.Root(), "f", 0o644, 0, 0, true)
	mustOK(t, "create", err)
	f, err := v.Open(e.ctx, n, os.O_WRONLY)
	mustOK(t, "open", err)
	_, err = f.WriteAt(e.ctx, make([]byte, 5<<20), 0)
	mustOK(t, "write", err)
	mustOK(t, "close volume", v.Close())
	wantErr(t, "flush after close", f.Flush(e.ctx), client.ErrClosed)
	wantErr(t, "release after close", f.Release(e.ctx), client.ErrClosed)
}
