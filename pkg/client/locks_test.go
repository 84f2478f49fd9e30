package client_test

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

func wlock(start, end uint64) client.Lock {
	return client.Lock{Type: client.LockWrite, Start: start, End: end, Pid: 100}
}

func rlock(start, end uint64) client.Lock {
	return client.Lock{Type: client.LockRead, Start: start, End: end, Pid: 200}
}

// lockEnv is a fake volume with two clients and one file.
func lockEnv(t *testing.T) (*env, *client.Volume, client.Node) {
	e := newEnv(t, clienttest.Options{})
	n, _, err := e.v.Create(e.ctx, e.v.Root(), "f", 0o644, 0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	return e, e.open(), n
}

func TestLocksExcludeAcrossClients(t *testing.T) {
	e, v2, n := lockEnv(t)
	ctx := e.ctx
	if err := e.v.SetLock(ctx, n, 1, false, wlock(0, 99), false); err != nil {
		t.Fatalf("first lock: %v", err)
	}
	// The same owner number in another client is another holder.
	if err := v2.SetLock(ctx, n, 1, false, rlock(50, 60), false); !errors.Is(err, client.ErrWouldBlock) {
		t.Fatalf("conflicting lock from client 2: %v; want ErrWouldBlock", err)
	}
	if err := v2.SetLock(ctx, n, 1, false, rlock(100, client.ToEOF), false); err != nil {
		t.Fatalf("lock past the held range: %v", err)
	}
	c, ok, err := v2.GetLock(ctx, n, 1, wlock(0, client.ToEOF))
	if err != nil || !ok || c.Type != client.LockWrite || c.Start != 0 || c.End != 99 || c.Pid != 100 {
		t.Fatalf("GetLock = %+v %v %v; want client 1's write lock 0-99 pid 100", c, ok, err)
	}
	if _, ok, err := e.v.GetLock(ctx, n, 1, rlock(100, 200)); err != nil || ok {
		t.Fatalf("GetLock of a shared read range = %v %v; want no conflict", ok, err)
	}
	// flock is a separate kind.
	if err := v2.SetLock(ctx, n, 9, true, client.Lock{Type: client.LockWrite}, false); err != nil {
		t.Fatalf("flock beside POSIX locks: %v", err)
	}
	if err := e.v.SetLock(ctx, n, 9, true, client.Lock{Type: client.LockRead}, false); !errors.Is(err, client.ErrWouldBlock) {
		t.Fatalf("flock over another client's flock: %v; want ErrWouldBlock", err)
	}
	if err := e.v.SetLock(ctx, n, 1, false, client.Lock{Type: client.LockType(7)}, false); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("bad lock type: %v", err)
	}
	if err := e.v.SetLock(ctx, n, 1, false, wlock(10, 5), false); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("inverted range: %v", err)
	}
}

func TestLockWaitAndInterrupt(t *testing.T) {
	e, v2, n := lockEnv(t)
	ctx := e.ctx
	if err := e.v.SetLock(ctx, n, 1, false, wlock(0, client.ToEOF), false); err != nil {
		t.Fatal(err)
	}
	// An interrupted wait ends with the context's error.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err := v2.SetLock(cctx, n, 2, false, wlock(0, 0), true)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("interrupted wait: %v; want DeadlineExceeded", err)
	}
	got := make(chan error, 1)
	go func() { got <- v2.SetLock(ctx, n, 2, false, wlock(0, 0), true) }()
	select {
	case err := <-got:
		t.Fatalf("waiting lock returned %v while the lock is held", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := e.v.ReleaseLocks(ctx, n, 1, false); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("waiting lock: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiting lock not granted after the holder released")
	}
	if err := e.v.SetLock(ctx, n, 1, false, wlock(0, 0), false); !errors.Is(err, client.ErrWouldBlock) {
		t.Fatalf("lock after the waiter got it: %v", err)
	}
}

// Unlocking commits buffered writes first, and locking refreshes the
// size, so the next holder reads what the last one wrote.
func TestLockHandsOverData(t *testing.T) {
	e, v2, n := lockEnv(t)
	ctx := e.ctx
	f1, err := e.v.Open(ctx, n, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer f1.Release(ctx)
	f2, err := v2.Open(ctx, n, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Release(ctx)

	if err := e.v.SetLock(ctx, n, 1, false, wlock(0, client.ToEOF), false); err != nil {
		t.Fatal(err)
	}
	if _, err := f1.WriteAt(ctx, []byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if err := e.v.SetLock(ctx, n, 1, false, client.Lock{Type: client.Unlock, End: client.ToEOF}, false); err != nil {
		t.Fatal(err)
	}
	if err := v2.SetLock(ctx, n, 2, false, rlock(0, client.ToEOF), false); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	k, err := f2.ReadAt(ctx, buf, 0)
	if (err != nil && !errors.Is(err, io.EOF)) || string(buf[:k]) != "hello" {
		t.Fatalf("next holder read %q, %v; want hello", buf[:k], err)
	}
}

// Close ends the session at once; a client that stops renewing is
// expired by the leader (the fake does it on request), and a live client
// renews.
func TestLockSessionEnds(t *testing.T) {
	e, v2, n := lockEnv(t)
	ctx := e.ctx
	v3 := e.open()
	if err := v3.SetLock(ctx, n, 1, false, wlock(0, 9), false); err != nil {
		t.Fatal(err)
	}
	if err := v2.SetLock(ctx, n, 1, true, client.Lock{Type: client.LockWrite}, false); err != nil {
		t.Fatal(err)
	}
	sub := e.c.Subvolumes[e.subOf(n.Locator)]
	deadline := time.Now().Add(5 * time.Second)
	for sub.Renewals() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the lock sessions were not renewed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := v3.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.v.SetLock(ctx, n, 1, false, wlock(0, 9), false); err != nil {
		t.Fatalf("lock after the holder closed its volume: %v", err)
	}
	if err := e.v.SetLock(ctx, n, 1, true, client.Lock{Type: client.LockRead}, false); !errors.Is(err, client.ErrWouldBlock) {
		t.Fatalf("flock over client 2's: %v", err)
	}
	if err := sub.ExpireLockSessions(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v2.SetLock(ctx, n, 1, true, client.Lock{Type: client.LockWrite}, false); err != nil {
		t.Fatalf("flock after every session expired: %v", err)
	}
}

// ReleaseLocks of an owner that took no locks costs no RPC.
func TestReleaseLocksWithoutLocksIsFree(t *testing.T) {
	e, _, n := lockEnv(t)
	sub := e.c.Subvolumes[e.subOf(n.Locator)]
	before := sub.Applied()
	if err := e.v.ReleaseLocks(e.ctx, n, 5, false); err != nil {
		t.Fatal(err)
	}
	if err := e.v.ReleaseLocks(e.ctx, n, 5, true); err != nil {
		t.Fatal(err)
	}
	if got := sub.Applied(); got != before {
		t.Fatalf("ReleaseLocks without locks applied %d commands", got-before)
	}
}
