package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// File locks (flock and POSIX fcntl byte-range locks) are kept by the
// subvolume that holds the inode, in its replicated store, so they hold
// across clients and survive a leader change. The holder of a lock is
// (session, owner, kind): the session is this Volume's random 128-bit id,
// the owner a number chosen by the caller (the kernel's lock owner: a
// process for POSIX locks, an open file description for flock), the kind
// flock or POSIX; the two kinds never conflict with each other.
//
// The session is leased: once it holds a lock on a subvolume, the Volume
// renews it with that subvolume's leader every quarter of the lease the
// leader announces (10 s by default). A client that dies stops renewing
// and its locks go after the lease; Close ends the session at once.
//
// Locks and caches: setting a lock refreshes what this Volume knows of the
// file's attributes (so a reader sees the size the last holder committed),
// and unlocking or downgrading first commits the data this Volume buffered
// for the file, so that the next holder sees it.

// ErrWouldBlock is a lock that conflicts with another holder's (EAGAIN).
var ErrWouldBlock = errors.New("client: resource temporarily unavailable")

// LockType is the type of a file lock.
type LockType int

// Lock types.
const (
	LockRead  LockType = iota + 1 // F_RDLCK, LOCK_SH
	LockWrite                     // F_WRLCK, LOCK_EX
	Unlock                        // F_UNLCK, LOCK_UN
)

// ToEOF is the End of a range that reaches the end of the file, whatever
// its size (the kernel's OFFSET_MAX).
const ToEOF = 1<<63 - 1

// Lock is a lock (or unlock) over the bytes Start..End, End included.
// A flock covers 0..ToEOF.
type Lock struct {
	Type       LockType
	Start, End uint64
	// Pid is the process that locks, as this client sees it; F_GETLK
	// reports it to others.
	Pid uint32
}

// Lock polling pace while SetLock waits for a conflicting lock to go.
const (
	minLockPoll = 5 * time.Millisecond
	maxLockPoll = 200 * time.Millisecond
	// lockHeld: an attempt that took this long was held by the leader.
	lockHeld = 100 * time.Millisecond
	// defaultRenew is the renewal interval until a leader announces its
	// lease.
	defaultRenew = 2 * time.Second
	// endSessionTimeout bounds Close's release of the session's locks.
	endSessionTimeout = 2 * time.Second
)

// lockState is a Volume's lock session.
type lockState struct {
	once    sync.Once
	session []byte // 16 random bytes

	mu       sync.Mutex
	subs     map[int]bool     // subvolumes where the session took locks
	held     map[heldKey]bool // holders that may hold locks here
	renewing bool
	renew    time.Duration // renewal interval
}

// heldKey is one holder on one inode.
type heldKey struct {
	id    layout.ID
	owner uint64
	flock bool
}

// lockSession returns the Volume's session id, making it on first use.
func (v *Volume) lockSession() []byte {
	ls := &v.locks
	ls.once.Do(func() {
		ls.session = make([]byte, 16)
		_, _ = rand.Read(ls.session)
		ls.subs = make(map[int]bool)
		ls.held = make(map[heldKey]bool)
		ls.renew = defaultRenew
	})
	return ls.session
}

func (t LockType) proto() (dfspb.LockType, error) {
	switch t {
	case LockRead:
		return dfspb.LockType_LOCK_TYPE_READ, nil
	case LockWrite:
		return dfspb.LockType_LOCK_TYPE_WRITE, nil
	case Unlock:
		return dfspb.LockType_LOCK_TYPE_UNLOCK, nil
	}
	return 0, fmt.Errorf("%w: lock type %d", ErrInvalid, t)
}

func (v *Volume) fileLock(owner uint64, flock bool, l Lock) (*dfspb.FileLock, error) {
	typ, err := l.Type.proto()
	if err != nil {
		return nil, err
	}
	if l.End < l.Start || l.End > ToEOF {
		return nil, fmt.Errorf("%w: lock range %d-%d", ErrInvalid, l.Start, l.End)
	}
	if flock {
		l.Start, l.End = 0, ToEOF
	}
	return &dfspb.FileLock{Session: v.lockSession(), Owner: owner, Flock: flock, Type: typ, Start: l.Start, End: l.End, Pid: l.Pid}, nil
}

// SetLock sets, converts or removes (Unlock) the lock of owner on n: a
// flock when flock is set, else a POSIX byte-range lock. If another
// holder's lock conflicts, SetLock fails with ErrWouldBlock, or with wait
// polls until it can set it; ctx ending stops the wait (the error wraps
// the context's), never a commit halfway. Each attempt is committed
// through the subvolume's Raft group.
func (v *Volume) SetLock(ctx context.Context, n Node, owner uint64, flock bool, l Lock, wait bool) error {
	fl, err := v.fileLock(owner, flock, l)
	if err != nil {
		return err
	}
	if l.Type != LockWrite {
		// Unlock or downgrade: the next holder must see our writes.
		if st := v.lookupOpen(n.ID); st != nil {
			st.mu.Lock()
			err := st.flushLocked(context.WithoutCancel(ctx))
			st.mu.Unlock()
			if err != nil {
				return err
			}
		}
	}
	key := heldKey{n.ID, owner, flock}
	sub := v.subOfDir(n.Locator)
	if l.Type != Unlock {
		// Marked before the attempt: an attempt whose answer is lost may
		// have been granted, and the holder's close must release it.
		v.locks.mu.Lock()
		v.locks.held[key] = true
		v.locks.mu.Unlock()
	}
	// With wait, the leader holds an attempt that conflicts until the
	// inode's locks change (brick/lockwait.go): an attempt that comes back
	// after a while is retried at once. One that comes back at once lost
	// a race for a released lock, or met a server that predates holding:
	// those back off.
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SetLock{SetLock: &dfspb.SetLockCmd{Id: n.ID[:], Lock: fl, Wait: wait}}}
	pause := minLockPoll
	for {
		start := time.Now()
		var res *dfspb.StoreResult
		_, err := v.call(context.WithoutCancel(ctx), sub, "lock", func(cctx context.Context, c dfspb.BrickServiceClient, o callOpts) error {
			r, err := c.Mutate(cctx, cmd, o...)
			res = r
			return err
		})
		if err == nil {
			err = codeError(res.GetCode(), res.GetMessage())
		}
		if err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if res.Conflict == nil {
			v.lockGranted(sub, key, l)
			v.overlayOpen(res.GetAttr())
			return nil
		}
		if !wait {
			return fmt.Errorf("lock %d-%d: %w (held by pid %d)", l.Start, l.End, ErrWouldBlock, res.Conflict.Pid)
		}
		if time.Since(start) >= lockHeld {
			// The leader held the attempt until the lock changed: try
			// again at once, unless the waiter was interrupted (a
			// signal to flock -w) while it was held.
			if ctx.Err() != nil {
				return ctxError(ctx, "wait for lock")
			}
			if v.bg.Err() != nil {
				return fmt.Errorf("%w: wait for lock", ErrClosed)
			}
			pause = minLockPoll
			continue
		}
		select {
		case <-ctx.Done():
			return ctxError(ctx, "wait for lock")
		case <-v.bg.Done():
			return fmt.Errorf("%w: wait for lock", ErrClosed)
		case <-time.After(pause):
		}
		pause = min(2*pause, maxLockPoll)
	}
}

// lockGranted records a granted lock command: the subvolume to renew the
// session with, and whether the holder may still hold locks on the inode.
func (v *Volume) lockGranted(sub int, key heldKey, l Lock) {
	ls := &v.locks
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l.Type == Unlock {
		if l.Start == 0 && l.End == ToEOF {
			delete(ls.held, key)
		}
		return
	}
	ls.subs[sub] = true
	if !ls.renewing {
		ls.renewing = true
		v.wg.Add(1)
		go v.renewLocks()
	}
}

// ReleaseLocks removes every lock of owner's kind (flock or POSIX) on n:
// close(2) by a process releases its POSIX locks, the last close of an
// open file description its flock. It costs nothing unless the owner took
// locks on n through this Volume.
func (v *Volume) ReleaseLocks(ctx context.Context, n Node, owner uint64, flock bool) error {
	v.lockSession()
	v.locks.mu.Lock()
	held := v.locks.held[heldKey{n.ID, owner, flock}]
	v.locks.mu.Unlock()
	if !held {
		return nil
	}
	return v.SetLock(ctx, n, owner, flock, Lock{Type: Unlock, End: ToEOF}, false)
}

// GetLock reports the first lock on n that conflicts with l set by owner
// (F_GETLK): ok is false if there is none.
func (v *Volume) GetLock(ctx context.Context, n Node, owner uint64, l Lock) (conflict Lock, ok bool, err error) {
	fl, err := v.fileLock(owner, false, l)
	if err != nil {
		return Lock{}, false, err
	}
	var res *dfspb.TestLockResponse
	_, err = v.call(ctx, v.subOfDir(n.Locator), "test lock", func(cctx context.Context, c dfspb.BrickServiceClient, o callOpts) error {
		r, err := c.TestLock(cctx, &dfspb.TestLockRequest{Id: n.ID[:], Lock: fl}, o...)
		res = r
		return err
	})
	if err == nil {
		err = codeError(res.GetCode(), res.GetMessage())
	}
	if err != nil {
		return Lock{}, false, fmt.Errorf("test lock: %w", err)
	}
	c := res.GetConflict()
	if c == nil {
		return Lock{}, false, nil
	}
	conflict = Lock{Type: LockRead, Start: c.Start, End: c.End, Pid: c.Pid}
	if c.Type == dfspb.LockType_LOCK_TYPE_WRITE {
		conflict.Type = LockWrite
	}
	return conflict, true, nil
}

// renewLocks renews the session with the leader of every subvolume where
// it took locks, until Close.
func (v *Volume) renewLocks() {
	defer v.wg.Done()
	ls := &v.locks
	for {
		ls.mu.Lock()
		every := ls.renew
		subs := make([]int, 0, len(ls.subs))
		for s := range ls.subs {
			subs = append(subs, s)
		}
		ls.mu.Unlock()
		select {
		case <-v.bg.Done():
			return
		case <-time.After(every):
		}
		for _, sub := range subs {
			var res *dfspb.RenewLockSessionResponse
			_, err := v.call(v.bg, sub, "renew lock session", func(cctx context.Context, c dfspb.BrickServiceClient, o callOpts) error {
				r, err := c.RenewLockSession(cctx, &dfspb.RenewLockSessionRequest{Session: ls.session}, o...)
				res = r
				return err
			})
			if err != nil {
				v.logger.Warn("lock session not renewed; its locks go when the lease ends", "subvolume", sub, "err", err)
				continue
			}
			if lease := time.Duration(res.LeaseMs) * time.Millisecond; lease > 0 {
				ls.mu.Lock()
				ls.renew = max(lease/4, 10*time.Millisecond)
				ls.mu.Unlock()
			}
		}
	}
}

// endLockSession releases every lock of the session (Close): each
// subvolume where it took locks drops them at once rather than at the end
// of the lease.
func (v *Volume) endLockSession() {
	ls := &v.locks
	ls.mu.Lock()
	subs := ls.subs
	ls.subs = make(map[int]bool)
	ls.mu.Unlock()
	if len(subs) == 0 || v.closed.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(v.bg, endSessionTimeout)
	defer cancel()
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_ExpireLockSession{ExpireLockSession: &dfspb.ExpireLockSessionCmd{Session: ls.session}}}
	for sub := range subs {
		_, err := v.call(ctx, sub, "end lock session", func(cctx context.Context, c dfspb.BrickServiceClient, o callOpts) error {
			_, err := c.Mutate(cctx, cmd, o...)
			return err
		})
		if err != nil {
			v.logger.Warn("could not release the lock session; its locks go when the lease ends", "subvolume", sub, "err", err)
		}
	}
}
