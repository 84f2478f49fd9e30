package brick

import (
	"context"
	"time"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Blocking locks (F_SETLKW, flock without LOCK_NB). A client that wants
// to wait sets SetLockCmd.wait; while the lock conflicts with the locks
// this leader has applied, the leader holds the command and proposes it
// only when the inode's locks changed (the holder released it, its
// session expired); after lockWaitMax it answers the conflict without
// proposing. The client retries a conflict at once, so a waiter gets a
// released lock within about one commit rather than at its next poll, and
// an attempt that cannot succeed costs no Raft entry. The entry's apply
// still decides: two waiters woken by one release both propose, and one of them gets the conflict back.

// lockWaitMax bounds how long the leader holds one attempt. It also
// bounds how late a waiter whose application gave up (EINTR) learns it:
// the client's call is not cancelled mid-attempt.
const lockWaitMax = time.Second

// awaitLockFree blocks while c's lock conflicts with the applied locks of
// its inode, until ctx ends or the brick stops (nil: propose, and the
// store answers), or lockWaitMax passed: then it returns the conflict,
// which the leader answers without proposing. It returns nil at once for
// commands that do not ask to wait, and for any error.
func (b *Brick) awaitLockFree(ctx context.Context, c *dfspb.SetLockCmd) *dfspb.FileLock {
	if !c.GetWait() || c.GetLock().GetType() == dfspb.LockType_LOCK_TYPE_UNLOCK {
		return nil
	}
	id, err := idOf(c.GetId())
	if err != nil {
		return nil
	}
	wait := lockWaitMax
	if d, ok := ctx.Deadline(); ok {
		// Leave the caller time to get the answer of the proposal.
		wait = min(wait, time.Until(d)/2)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		conflict, again := b.awaitLockChange(ctx, id, c, timer.C)
		if !again {
			return conflict
		}
	}
}

// awaitLockChange waits, while c's lock conflicts, for a change of id's
// locks; again reports that one came (test again). Otherwise it returns
// the conflict when timeout fires first, nil when the lock is free or the
// wait ends early.
func (b *Brick) awaitLockChange(ctx context.Context, id layout.ID, c *dfspb.SetLockCmd, timeout <-chan time.Time) (conflict *dfspb.FileLock, again bool) {
	changed, done := b.store.LockChanged(id)
	defer done()
	conflict, err := b.store.TestLock(ctx, id, c.GetLock())
	if err != nil || conflict == nil {
		return nil, false
	}
	select {
	case <-changed:
		return nil, true
	case <-timeout:
		return conflict, false
	case <-ctx.Done():
	case <-b.stop:
	}
	return nil, false
}
