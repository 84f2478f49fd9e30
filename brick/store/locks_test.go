package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

const toEOF = 1<<63 - 1 // the kernel's OFFSET_MAX

var (
	sessA = bytes.Repeat([]byte{0xa}, 16)
	sessB = bytes.Repeat([]byte{0xb}, 16)
)

const (
	rd = dfspb.LockType_LOCK_TYPE_READ
	wr = dfspb.LockType_LOCK_TYPE_WRITE
	un = dfspb.LockType_LOCK_TYPE_UNLOCK
)

func lk(sess []byte, owner uint64, typ dfspb.LockType, start, end uint64) *dfspb.FileLock {
	return &dfspb.FileLock{Session: sess, Owner: owner, Type: typ, Start: start, End: end, Pid: uint32(owner)}
}

func flk(sess []byte, owner uint64, typ dfspb.LockType) *dfspb.FileLock {
	l := lk(sess, owner, typ, 0, toEOF)
	l.Flock = true
	return l
}

func setLockCmd(id layout.ID, l *dfspb.FileLock) *dfspb.StoreCommand {
	return &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SetLock{SetLock: &dfspb.SetLockCmd{Id: id[:], Lock: l}}}
}

// lockHarness is a store with one file to lock.
func lockHarness(t *testing.T) (*harness, layout.ID) {
	h := newHarness(t).withRoot()
	return h, h.create(layout.RootID, "f")
}

// set applies a SetLockCmd and reports whether it was granted.
func (h *harness) set(id layout.ID, l *dfspb.FileLock) bool {
	h.t.Helper()
	r := mustOK(h.t, h.apply(setLockCmd(id, l)))
	if r.Attr == nil {
		h.t.Fatal("SetLock result without attributes")
	}
	return r.Conflict == nil
}

// table renders the locks on id as "session/owner:type start-end ..."
// (F for flock, E for to EOF).
func (h *harness) table(id layout.ID) string {
	h.t.Helper()
	locks, err := h.s.Locks(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	var parts []string
	for _, l := range locks {
		end := fmt.Sprint(l.End)
		if l.End == toEOF {
			end = "E"
		}
		kind := ""
		if l.Flock {
			kind = "F"
		}
		parts = append(parts, fmt.Sprintf("%x/%d:%s%s %d-%s", l.Session[0], l.Owner, kind, strings.TrimPrefix(l.Type.String(), "LOCK_TYPE_")[:1], l.Start, end))
	}
	return strings.Join(parts, " ")
}

func TestLockConflicts(t *testing.T) {
	h, f := lockHarness(t)
	steps := []struct {
		l    *dfspb.FileLock
		want bool
	}{
		{lk(sessA, 1, rd, 0, 99), true},
		{lk(sessB, 1, rd, 50, 149), true},       // readers share
		{lk(sessB, 2, wr, 90, 95), false},       // writer vs two readers
		{lk(sessB, 2, wr, 150, 199), true},      // beyond both
		{lk(sessA, 1, wr, 199, toEOF), false},   // touches B/2's last byte
		{lk(sessA, 1, wr, 200, toEOF), true},    // adjacent, no overlap
		{lk(sessB, 1, rd, 0, 9), true},          // B/1 reads where A/1 reads
		{lk(sessB, 3, rd, 300, 300), false},     // A/1 writes there
		{flk(sessB, 1, wr), true},               // flock does not see POSIX locks
		{flk(sessA, 7, rd), false},              // but other flocks
		{lk(sessA, 2, wr, 1000, 2000), false},   // same session, other owner: conflicts
		{lk(sessA, 1, wr, 1000, 2000), true},    // the owner itself converts
		{lk(sessB, 1, un, 0, toEOF), true},      // unlock is always granted
		{lk(sessA, 1, wr, 0, 99), true},         // A/1 upgrades now that B/1 is gone
		{lk(sessB, 5, rd, 0, 0), false},         // and that excludes readers
		{lk(sessA, 1, rd, 0, 99), true},         // downgrade
		{lk(sessB, 5, rd, 0, 0), true},          // readers welcome again
		{lk(sessB, 9, wr, toEOF, toEOF), false}, // A/1 holds to EOF
		{lk(sessA, 1, un, 100, toEOF-1), true},  // punch a hole
		{lk(sessB, 9, wr, 100, 149), true},      // the hole is free
	}
	for i, s := range steps {
		if got := h.set(f, s.l); got != s.want {
			t.Fatalf("step %d: %x/%d %v %d-%d granted=%v, want %v; table %s", i, s.l.Session[0], s.l.Owner, s.l.Type, s.l.Start, s.l.End, got, s.want, h.table(f))
		}
	}
}

func TestLockRanges(t *testing.T) {
	cases := []struct {
		name  string
		locks []*dfspb.FileLock
		want  string
	}{
		{"merge overlapping", []*dfspb.FileLock{lk(sessA, 1, wr, 0, 9), lk(sessA, 1, wr, 5, 19)}, "a/1:W 0-19"},
		{"merge adjacent", []*dfspb.FileLock{lk(sessA, 1, rd, 10, 19), lk(sessA, 1, rd, 0, 9), lk(sessA, 1, rd, 20, 29)}, "a/1:R 0-29"},
		{"no merge of types", []*dfspb.FileLock{lk(sessA, 1, rd, 0, 9), lk(sessA, 1, wr, 10, 19)}, "a/1:R 0-9 a/1:W 10-19"},
		{"split by other type", []*dfspb.FileLock{lk(sessA, 1, rd, 0, 99), lk(sessA, 1, wr, 40, 59)}, "a/1:R 0-39 a/1:W 40-59 a/1:R 60-99"},
		{"split by unlock", []*dfspb.FileLock{lk(sessA, 1, wr, 0, toEOF), lk(sessA, 1, un, 10, 19)}, "a/1:W 0-9 a/1:W 20-E"},
		{"unlock all", []*dfspb.FileLock{lk(sessA, 1, wr, 0, 9), lk(sessA, 1, rd, 20, 29), lk(sessA, 1, un, 0, toEOF)}, ""},
		{"upgrade whole", []*dfspb.FileLock{lk(sessA, 1, rd, 0, toEOF), lk(sessA, 1, wr, 0, toEOF)}, "a/1:W 0-E"},
		{"cover and merge", []*dfspb.FileLock{lk(sessA, 1, rd, 0, 9), lk(sessA, 1, wr, 5, 14), lk(sessA, 1, rd, 10, 29)}, "a/1:R 0-4 a/1:W 5-9 a/1:R 10-29"},
		{"owners kept apart", []*dfspb.FileLock{lk(sessA, 1, rd, 0, 9), lk(sessA, 2, rd, 5, 19), lk(sessA, 1, un, 0, toEOF)}, "a/2:R 5-19"},
		{"flock converts", []*dfspb.FileLock{flk(sessA, 3, rd), flk(sessA, 3, wr)}, "a/3:FW 0-E"},
		{"flock and posix of one owner", []*dfspb.FileLock{flk(sessA, 3, wr), lk(sessA, 3, rd, 0, 9), lk(sessA, 3, un, 0, toEOF)}, "a/3:FW 0-E"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, f := lockHarness(t)
			for _, l := range c.locks {
				if !h.set(f, l) {
					t.Fatalf("lock %v not granted", l)
				}
			}
			if got := h.table(f); got != c.want {
				t.Fatalf("table %q, want %q", got, c.want)
			}
		})
	}
}

func TestLockTest(t *testing.T) {
	h, f := lockHarness(t)
	ctx := context.Background()
	h.set(f, lk(sessA, 1, wr, 10, 19))
	c, err := h.s.TestLock(ctx, f, lk(sessB, 2, rd, 0, toEOF))
	if err != nil || c == nil || c.Start != 10 || c.End != 19 || c.Pid != 1 || c.Type != wr || !bytes.Equal(c.Session, sessA) {
		t.Fatalf("TestLock = %v, %v; want A/1's write lock 10-19", c, err)
	}
	if c, err := h.s.TestLock(ctx, f, lk(sessA, 1, wr, 0, toEOF)); err != nil || c != nil {
		t.Fatalf("TestLock by the holder = %v, %v; want none", c, err)
	}
	if c, err := h.s.TestLock(ctx, f, lk(sessB, 2, rd, 20, 30)); err != nil || c != nil {
		t.Fatalf("TestLock of a free range = %v, %v; want none", c, err)
	}
	if _, err := h.s.TestLock(ctx, layout.NewID(), lk(sessB, 2, rd, 0, 1)); Code(err) != CodeNotFound {
		t.Fatalf("TestLock of a missing inode: %v", err)
	}
	bad := lk(sessB, 2, rd, 5, 4)
	if _, err := h.s.TestLock(ctx, f, bad); Code(err) != CodeInvalid {
		t.Fatalf("TestLock of an inverted range: %v", err)
	}
}

func TestLockInvalid(t *testing.T) {
	h, f := lockHarness(t)
	for _, l := range []*dfspb.FileLock{
		nil,
		lk([]byte{1, 2}, 1, rd, 0, 1),
		lk(sessA, 1, dfspb.LockType_LOCK_TYPE_UNSPECIFIED, 0, 1),
		lk(sessA, 1, rd, 2, 1),
	} {
		wantCode(t, h.apply(setLockCmd(f, l)), CodeInvalid)
	}
	wantCode(t, h.apply(setLockCmd(layout.NewID(), lk(sessA, 1, rd, 0, 1))), CodeNotFound)
	wantCode(t, h.apply(&dfspb.StoreCommand{Op: &dfspb.StoreCommand_ExpireLockSession{ExpireLockSession: &dfspb.ExpireLockSessionCmd{Session: []byte{1}}}}), CodeInvalid)
}

func TestLockSessionExpiry(t *testing.T) {
	h, f := lockHarness(t)
	g := h.create(layout.RootID, "g")
	ctx := context.Background()
	h.set(f, lk(sessA, 1, wr, 0, 9))
	h.set(f, lk(sessB, 1, rd, 10, 19))
	h.set(g, flk(sessA, 2, wr))
	sessions, err := h.s.LockSessions(ctx)
	if err != nil || len(sessions) != 2 || !bytes.Equal(sessions[0], sessA) || !bytes.Equal(sessions[1], sessB) {
		t.Fatalf("LockSessions = %x, %v; want A, B", sessions, err)
	}
	if h.set(g, flk(sessB, 3, rd)) {
		t.Fatal("B's flock granted over A's")
	}
	mustOK(t, h.apply(&dfspb.StoreCommand{Op: &dfspb.StoreCommand_ExpireLockSession{ExpireLockSession: &dfspb.ExpireLockSessionCmd{Session: sessA}}}))
	if got := h.table(f); got != "b/1:R 10-19" {
		t.Fatalf("after expiry of A: f has %q", got)
	}
	if got := h.table(g); got != "" {
		t.Fatalf("after expiry of A: g has %q", got)
	}
	if !h.set(g, flk(sessB, 3, rd)) {
		t.Fatal("B's flock refused after A expired")
	}
	sessions, _ = h.s.LockSessions(ctx)
	if len(sessions) != 1 || !bytes.Equal(sessions[0], sessB) {
		t.Fatalf("LockSessions after expiry = %x; want B", sessions)
	}
	// Unlocking everything drops the session from the index too.
	h.set(f, lk(sessB, 1, un, 0, toEOF))
	h.set(g, &dfspb.FileLock{Session: sessB, Owner: 3, Flock: true, Type: un, End: toEOF})
	if sessions, _ = h.s.LockSessions(ctx); len(sessions) != 0 {
		t.Fatalf("LockSessions after unlocking all = %x; want none", sessions)
	}
}

func TestLocksSurviveSnapshotAndReopen(t *testing.T) {
	src, f := lockHarness(t)
	src.set(f, lk(sessA, 1, wr, 0, 9))
	src.set(f, flk(sessB, 4, rd))
	want := src.table(f)
	data := snapshotOf(t, src.s)

	dst := newHarness(t)
	if err := dst.s.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := dst.table(f); got != want {
		t.Fatalf("restored table %q, want %q", got, want)
	}
	dst.idx = src.idx
	if dst.set(f, lk(sessB, 2, rd, 5, 5)) {
		t.Fatal("restored store granted a lock over A's write lock")
	}
	sessions, err := dst.s.LockSessions(context.Background())
	if err != nil || len(sessions) != 2 {
		t.Fatalf("restored sessions %x, %v", sessions, err)
	}
	src.reopen()
	if got := src.table(f); got != want {
		t.Fatalf("reopened table %q, want %q", got, want)
	}
}

// TestLockChangedWakes: LockChanged's channel closes when a committed
// entry changes the inode's locks (set, release, session expiry), and not
// for a refused attempt or another inode's change.
func TestLockChangedWakes(t *testing.T) {
	h, f := lockHarness(t)
	g := h.create(layout.RootID, "g")
	closed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	watch := func(id layout.ID) <-chan struct{} {
		c, done := h.s.LockChanged(id)
		t.Cleanup(done)
		return c
	}
	c := watch(f)
	if watch(f) != c {
		t.Fatal("two waiters of one inode got different channels")
	}
	h.set(f, lk(sessA, 1, wr, 0, 9))
	if !closed(c) {
		t.Fatal("setting a lock did not wake the waiters")
	}
	c, cg := watch(f), watch(g)
	if h.set(f, lk(sessB, 1, wr, 5, 5)) {
		t.Fatal("conflicting lock granted")
	}
	if closed(c) {
		t.Fatal("a refused attempt woke the waiters")
	}
	h.set(g, flk(sessA, 2, wr))
	if closed(c) || !closed(cg) {
		t.Fatalf("a lock on g: f's waiters woken %v, g's %v; want false, true", closed(c), closed(cg))
	}
	h.set(f, lk(sessA, 1, un, 0, toEOF))
	if !closed(c) {
		t.Fatal("releasing a lock did not wake the waiters")
	}
	c = watch(g)
	mustOK(t, h.apply(&dfspb.StoreCommand{Op: &dfspb.StoreCommand_ExpireLockSession{ExpireLockSession: &dfspb.ExpireLockSessionCmd{Session: sessA}}}))
	if !closed(c) {
		t.Fatal("a session's expiry did not wake the waiters of its locks")
	}
}

// TestLockChangedForgotten: an inode whose waiters all stopped waiting
// without a change leaves nothing behind, and one waiter leaving does not
// take the channel from another.
func TestLockChangedForgotten(t *testing.T) {
	h, f := lockHarness(t)
	c1, done1 := h.s.LockChanged(f)
	c2, done2 := h.s.LockChanged(f)
	done1()
	done1() // twice is once
	h.set(f, lk(sessA, 1, wr, 0, 9))
	select {
	case <-c2:
	default:
		t.Fatal("the remaining waiter was not woken")
	}
	if c1 != c2 {
		t.Fatal("two waiters of one inode got different channels")
	}
	done2()
	_, done3 := h.s.LockChanged(f)
	done3()
	if n := h.s.lockWatched(); n != 0 {
		t.Fatalf("%d inodes still watched with no waiter", n)
	}
}
