package store

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// File locks (flock and POSIX fcntl byte-range locks) are replicated state
// like everything else in the store: SetLockCmd and ExpireLockSessionCmd
// change them through the Raft log, so they survive a leader change. The
// locks of an inode are one record beside its inode record:
//
//	'k' + inode id                -> LockTable (protobuf)
//	's' + session + inode id      -> empty: the inodes where a session holds locks
//
// A holder is (session, owner, kind): session is a client's id, owner the
// kernel's lock owner, kind flock or POSIX; the two kinds never conflict
// with each other. Sessions are leased by the leader (package brick): the
// store keeps no clocks and only applies the expiry the leader commits.
const (
	prefixLock        = 'k'
	prefixLockSession = 's'
	sessionLen        = 16
)

func lockKey(id layout.ID) []byte { return idKey(prefixLock, id) }

func lockSessionKey(session []byte, id layout.ID) []byte {
	k := make([]byte, 1+sessionLen+idLen)
	k[0] = prefixLockSession
	copy(k[1:], session)
	copy(k[1+sessionLen:], id[:])
	return k
}

// sameHolder reports whether two locks belong to one holder.
func sameHolder(a, b *dfspb.FileLock) bool {
	return a.Owner == b.Owner && a.Flock == b.Flock && bytes.Equal(a.Session, b.Session)
}

// overlaps reports whether the ranges of a and b share a byte.
func overlaps(a, b *dfspb.FileLock) bool { return a.Start <= b.End && b.Start <= a.End }

// conflicts reports whether held keeps want from being set: another
// holder's lock of the same kind over a common byte, one of them a write
// lock.
func conflicts(held, want *dfspb.FileLock) bool {
	return held.Flock == want.Flock && !sameHolder(held, want) && overlaps(held, want) &&
		(held.Type == dfspb.LockType_LOCK_TYPE_WRITE || want.Type == dfspb.LockType_LOCK_TYPE_WRITE)
}

// firstConflict returns the first lock in locks that conflicts with want,
// or nil.
func firstConflict(locks []*dfspb.FileLock, want *dfspb.FileLock) *dfspb.FileLock {
	for _, l := range locks {
		if conflicts(l, want) {
			return l
		}
	}
	return nil
}

// checkLock validates a lock as a command or request carries it.
func checkLock(l *dfspb.FileLock) error {
	switch {
	case l == nil:
		return fmt.Errorf("%w: no lock", ErrInvalid)
	case len(l.Session) != sessionLen:
		return fmt.Errorf("%w: lock session has %d bytes, want %d", ErrInvalid, len(l.Session), sessionLen)
	case l.Type < dfspb.LockType_LOCK_TYPE_READ || l.Type > dfspb.LockType_LOCK_TYPE_UNLOCK:
		return fmt.Errorf("%w: lock type %v", ErrInvalid, l.Type)
	case l.End < l.Start:
		return fmt.Errorf("%w: lock range %d-%d ends before it starts", ErrInvalid, l.Start, l.End)
	}
	return nil
}

// applyLock returns locks with holder want's locks of want's kind over
// [want.Start, want.End] replaced by want (removed, for UNLOCK): ranges
// of the holder are cut around the new range, and ranges of the new type
// that touch or overlap it are merged into it. locks is not modified; the
// result is sorted.
func applyLock(locks []*dfspb.FileLock, want *dfspb.FileLock) []*dfspb.FileLock {
	out := make([]*dfspb.FileLock, 0, len(locks)+2)
	add := proto.Clone(want).(*dfspb.FileLock)
	for _, l := range locks {
		if !sameHolder(l, want) {
			out = append(out, l)
			continue
		}
		adjacent := (l.End != ^uint64(0) && l.End+1 == want.Start) || (want.End != ^uint64(0) && want.End+1 == l.Start)
		if want.Type != dfspb.LockType_LOCK_TYPE_UNLOCK && l.Type == want.Type && (overlaps(l, want) || adjacent) {
			add.Start, add.End = min(add.Start, l.Start), max(add.End, l.End)
			continue
		}
		if !overlaps(l, want) {
			out = append(out, l)
			continue
		}
		if l.Start < want.Start {
			left := proto.Clone(l).(*dfspb.FileLock)
			left.End = want.Start - 1
			out = append(out, left)
		}
		if l.End > want.End {
			right := proto.Clone(l).(*dfspb.FileLock)
			right.Start = want.End + 1
			out = append(out, right)
		}
	}
	if want.Type != dfspb.LockType_LOCK_TYPE_UNLOCK {
		out = append(out, add)
	}
	sortLocks(out)
	return out
}

// sortLocks orders locks by session, owner, kind and start, so that every
// replica stores the same bytes.
func sortLocks(locks []*dfspb.FileLock) {
	slices.SortFunc(locks, func(a, b *dfspb.FileLock) int {
		if c := bytes.Compare(a.Session, b.Session); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Owner, b.Owner); c != 0 {
			return c
		}
		if a.Flock != b.Flock {
			if a.Flock {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Start, b.Start)
	})
}

// getLocks reads the lock table of id from r.
func getLocks(r pebble.Reader, id layout.ID) ([]*dfspb.FileLock, error) {
	v, ok, err := getValue(r, lockKey(id))
	if err != nil {
		return nil, ioErr(err)
	}
	if !ok {
		return nil, nil
	}
	var t dfspb.LockTable
	if err := proto.Unmarshal(v, &t); err != nil {
		return nil, ioErr(fmt.Errorf("decode locks of %s: %w", id, err))
	}
	return t.Locks, nil
}

// putLocks stores the lock table of id (deleting it when empty) and keeps
// the session index in step: every session in before or after gets its
// index key set or deleted.
func (t *txn) putLocks(id layout.ID, before, after []*dfspb.FileLock) error {
	t.locks = append(t.locks, id)
	var err error
	if len(after) == 0 {
		err = t.b.Delete(lockKey(id), nil)
	} else {
		var v []byte
		v, err = proto.MarshalOptions{Deterministic: true}.Marshal(&dfspb.LockTable{Locks: after})
		if err == nil {
			err = t.b.Set(lockKey(id), v, nil)
		}
	}
	if err != nil {
		return ioErr(err)
	}
	holds := make(map[string]bool)
	for _, l := range before {
		if _, ok := holds[string(l.Session)]; !ok {
			holds[string(l.Session)] = false
		}
	}
	for _, l := range after {
		holds[string(l.Session)] = true
	}
	for s, h := range holds {
		k := lockSessionKey([]byte(s), id)
		if h {
			err = t.b.Set(k, nil, nil)
		} else {
			err = t.b.Delete(k, nil)
		}
		if err != nil {
			return ioErr(err)
		}
	}
	return nil
}

// setLock applies SetLockCmd.
func (t *txn) setLock(c *dfspb.SetLockCmd) (*dfspb.StoreResult, error) {
	id, err := parseID("id", c.GetId())
	if err != nil {
		return nil, err
	}
	want := c.GetLock()
	if err := checkLock(want); err != nil {
		return nil, err
	}
	rec, err := t.inode(id)
	if err != nil {
		return nil, err
	}
	locks, err := getLocks(t.b, id)
	if err != nil {
		return nil, err
	}
	res := &dfspb.StoreResult{Attr: rec.Attr}
	if want.Type != dfspb.LockType_LOCK_TYPE_UNLOCK {
		if c := firstConflict(locks, want); c != nil {
			res.Conflict = c
			return res, nil
		}
	}
	if err := t.putLocks(id, locks, applyLock(locks, want)); err != nil {
		return nil, err
	}
	return res, nil
}

// expireLockSession applies ExpireLockSessionCmd.
func (t *txn) expireLockSession(c *dfspb.ExpireLockSessionCmd) (*dfspb.StoreResult, error) {
	session := c.GetSession()
	if len(session) != sessionLen {
		return nil, fmt.Errorf("%w: lock session has %d bytes, want %d", ErrInvalid, len(session), sessionLen)
	}
	p := make([]byte, 1+sessionLen)
	p[0] = prefixLockSession
	copy(p[1:], session)
	keys, err := keysWithPrefix(t.b, p)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		var id layout.ID
		copy(id[:], k[len(p):])
		locks, err := getLocks(t.b, id)
		if err != nil {
			return nil, err
		}
		kept := slices.DeleteFunc(slices.Clone(locks), func(l *dfspb.FileLock) bool { return bytes.Equal(l.Session, session) })
		if err := t.putLocks(id, locks, kept); err != nil {
			return nil, err
		}
	}
	return &dfspb.StoreResult{}, nil
}

// TestLock returns the first lock on id that conflicts with want (F_GETLK),
// or nil if want could be set now.
func (s *Store) TestLock(ctx context.Context, id layout.ID, want *dfspb.FileLock) (*dfspb.FileLock, error) {
	if err := checkLock(want); err != nil {
		return nil, err
	}
	if err := s.readLock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if _, err := getInode(s.db, id); err != nil {
		return nil, err
	}
	locks, err := getLocks(s.db, id)
	if err != nil {
		return nil, err
	}
	return firstConflict(locks, want), nil
}

// Locks returns the locks held on id, sorted by holder and start.
func (s *Store) Locks(ctx context.Context, id layout.ID) ([]*dfspb.FileLock, error) {
	if err := s.readLock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	return getLocks(s.db, id)
}

// LockSessions returns the sessions that hold locks in the store, in
// order.
func (s *Store) LockSessions(ctx context.Context) ([][]byte, error) {
	if err := s.readLock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	keys, err := keysWithPrefix(s.db, []byte{prefixLockSession})
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, k := range keys {
		if len(k) != 1+sessionLen+idLen {
			continue
		}
		sess := k[1 : 1+sessionLen]
		if n := len(out); n == 0 || !bytes.Equal(out[n-1], sess) {
			out = append(out, sess)
		}
	}
	return out, nil
}
