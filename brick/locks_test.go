package brick

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

const toEOF = 1<<63 - 1

func setLock(ctx context.Context, c dfspb.BrickServiceClient, id layout.ID, l *dfspb.FileLock) (granted bool, err error) {
	r, err := c.Mutate(ctx, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SetLock{SetLock: &dfspb.SetLockCmd{Id: id[:], Lock: l}}})
	if err != nil {
		return false, err
	}
	if r.Code != 0 {
		return false, fmt.Errorf("%v: %s", r.Code, r.Message)
	}
	return r.Conflict == nil, nil
}

// rootAndFile makes the root and a file "f" in it through c, the leader.
func rootAndFile(t *testing.T, c dfspb.BrickServiceClient) layout.ID {
	t.Helper()
	makeRoot(t, c)
	r, err := create(t.Context(), c, "f")
	if err != nil || r.Code != 0 {
		t.Fatalf("create: %v %v", r, err)
	}
	var f layout.ID
	copy(f[:], r.Attr.Id)
	return f
}

// TestLocksSurviveLeaderChangeAndExpire: a lock taken on one leader still
// excludes on the next, and a session that stops renewing loses its locks
// after the lease, while one that renews keeps them.
func TestLocksSurviveLeaderChangeAndExpire(t *testing.T) {
	const lease = 1500 * time.Millisecond
	rs := newReplicaSet(t, 3)
	for i := range rs.bricks {
		rs.stop(i)
		rs.cfgs[i].LockLease = lease
		rs.start(i)
	}
	ctx := t.Context()
	li, lc := rs.leader()
	f := rootAndFile(t, lc)

	alive, dead, other := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16), bytes.Repeat([]byte{3}, 16)
	wlock := func(sess []byte, start, end uint64) *dfspb.FileLock {
		return &dfspb.FileLock{Session: sess, Owner: 7, Type: dfspb.LockType_LOCK_TYPE_WRITE, Start: start, End: end, Pid: 42}
	}
	for _, l := range []*dfspb.FileLock{wlock(alive, 0, 99), wlock(dead, 100, 199)} {
		if ok, err := setLock(ctx, lc, f, l); !ok || err != nil {
			t.Fatalf("lock %x: granted=%v err=%v", l.Session[0], ok, err)
		}
	}
	// The live session renews with whoever leads.
	renewCtx, stopRenew := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		for renewCtx.Err() == nil {
			for i, b := range rs.bricks {
				if b != nil && b.group.IsLeader() {
					_, _ = rs.client(rs.cfgs[i].Address).RenewLockSession(renewCtx, &dfspb.RenewLockSessionRequest{Session: alive})
				}
			}
			select {
			case <-renewCtx.Done():
			case <-time.After(lease / 5):
			}
		}
	}()
	defer func() { stopRenew(); <-renewed }()

	rs.stop(li)
	_, nc := rs.leader()
	if ok, err := setLock(ctx, nc, f, wlock(other, 50, 50)); ok || err != nil {
		t.Fatalf("new leader granted a lock over a held one (granted=%v, err=%v)", ok, err)
	}
	tr, err := nc.TestLock(ctx, &dfspb.TestLockRequest{Id: f[:], Lock: wlock(other, 150, toEOF)})
	if err != nil || tr.Conflict == nil || !bytes.Equal(tr.Conflict.Session, dead) || tr.Conflict.Start != 100 || tr.Conflict.Pid != 42 {
		t.Fatalf("TestLock on the new leader = %v, %v; want the dead session's lock 100-199", tr, err)
	}
	// The dead session expires within a lease of the new leader's first
	// sweep; the live one keeps its lock.
	start := time.Now()
	eventually(t, func() error {
		if ok, err := setLock(ctx, nc, f, wlock(other, 150, 150)); !ok || err != nil {
			return fmt.Errorf("lock over the dead session's range not granted yet (err %v)", err)
		}
		return nil
	})
	if waited := time.Since(start); waited < lease/2 {
		t.Fatalf("dead session expired after %v, before its lease of %v", waited, lease)
	}
	time.Sleep(lease)
	if ok, err := setLock(ctx, nc, f, wlock(other, 50, 50)); ok || err != nil {
		t.Fatalf("the renewing session lost its lock (granted=%v, err=%v)", ok, err)
	}

	// A follower refuses renewals and names the leader.
	for i, b := range rs.bricks {
		if b != nil && !b.group.IsLeader() {
			_, err := rs.client(rs.cfgs[i].Address).RenewLockSession(ctx, &dfspb.RenewLockSessionRequest{Session: alive})
			if status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("follower renewal: %v; want FailedPrecondition", err)
			}
		}
	}
	if _, err := nc.RenewLockSession(ctx, &dfspb.RenewLockSessionRequest{Session: []byte{1}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("renewal of a malformed session: %v", err)
	}
}

// TestBlockingLockHeldUntilRelease: a SetLock with wait that conflicts is
// held by the leader, without a Raft entry, until the holder releases,
// and then granted in the same call; one that still conflicts after
// lockWaitMax comes back with the conflict.
func TestBlockingLockHeldUntilRelease(t *testing.T) {
	rs := newReplicaSet(t, 3)
	ctx := t.Context()
	li, lc := rs.leader()
	f := rootAndFile(t, lc)
	a, b := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16)
	lock := func(sess []byte, typ dfspb.LockType) *dfspb.FileLock {
		return &dfspb.FileLock{Session: sess, Owner: 7, Type: typ, Start: 0, End: toEOF, Pid: 42}
	}
	if ok, err := setLock(ctx, lc, f, lock(a, dfspb.LockType_LOCK_TYPE_WRITE)); !ok || err != nil {
		t.Fatalf("first lock: granted=%v err=%v", ok, err)
	}
	waitLock := func() (*dfspb.StoreResult, error) {
		return lc.Mutate(ctx, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SetLock{SetLock: &dfspb.SetLockCmd{Id: f[:], Lock: lock(b, dfspb.LockType_LOCK_TYPE_WRITE), Wait: true}}})
	}

	// Still held after lockWaitMax: the conflict comes back, and the
	// attempt was never proposed.
	before := rs.bricks[li].AppliedIndex()
	res, err := waitLock()
	if err != nil || res.Conflict == nil {
		t.Fatalf("blocking attempt on a held lock = %v, %v; want the conflict", res, err)
	}
	if after := rs.bricks[li].AppliedIndex(); after != before {
		t.Fatalf("a held attempt that still conflicted was proposed (applied index %d -> %d)", before, after)
	}

	// Released while held: granted in the same call.
	got := make(chan *dfspb.StoreResult, 1)
	go func() {
		res, err := waitLock()
		if err != nil {
			t.Error(err)
		}
		got <- res
	}()
	time.Sleep(lockWaitMax / 4)
	if ok, err := setLock(ctx, lc, f, lock(a, dfspb.LockType_LOCK_TYPE_UNLOCK)); !ok || err != nil {
		t.Fatalf("unlock: %v %v", ok, err)
	}
	if res := <-got; res == nil || res.Conflict != nil {
		t.Fatalf("blocking attempt after the release = %v; want granted", res)
	}
	if ok, err := setLock(ctx, lc, f, lock(a, dfspb.LockType_LOCK_TYPE_READ)); ok || err != nil {
		t.Fatalf("the waiter's lock does not exclude: granted=%v err=%v", ok, err)
	}
}
