package volume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dfsproject/dfs/pkg/mux"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Test managers of this package listen on 127.0.3.x so that they never
// meet those of other packages' tests running at the same time.

// testLog routes logs to t.Log until the test ends; Raft may log from its
// goroutines while Close runs, and t.Log after the end panics.
type testLog struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func newTestLogger(t *testing.T, name string) *slog.Logger {
	w := &testLog{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	level := slog.LevelWarn
	if os.Getenv("DFS_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})).With("member", name)
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// member is one manager with its own mux listener and data dir, which
// outlive the manager so that it can be closed and opened again at the
// same address.
type member struct {
	cfg ManagerConfig
	ln  *mux.Listener
	m   *Manager
}

func newMember(t *testing.T, host, id string) *member {
	t.Helper()
	ln, err := mux.Listen(host + ":0")
	if err != nil {
		t.Fatalf("listen on %s: %v", host, err)
	}
	mb := &member{ln: ln}
	mb.cfg = ManagerConfig{
		ID:      id,
		Address: ln.Addr().String(),
		Dir:     t.TempDir(),
		Listen:  func() net.Listener { return ln.Tagged('R') },
		Dial: func(a string, to time.Duration) (net.Conn, error) {
			return mux.Dial(a, 'R', to)
		},
		Logger: newTestLogger(t, id),
	}
	t.Cleanup(func() {
		mb.close(t)
		ln.Close()
	})
	return mb
}

func (mb *member) open(t *testing.T) {
	t.Helper()
	m, err := OpenManager(mb.cfg)
	if err != nil {
		t.Fatalf("OpenManager(%s): %v", mb.cfg.ID, err)
	}
	mb.m = m
}

func (mb *member) close(t *testing.T) {
	t.Helper()
	if mb.m == nil {
		return
	}
	if err := mb.m.Close(); err != nil {
		t.Errorf("Close(%s): %v", mb.cfg.ID, err)
	}
	mb.m = nil
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// await polls cond until it returns nil or limit passes.
func await(t *testing.T, limit time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leaderState awaits a current state from m as leader that satisfies ok.
func leaderState(t *testing.T, m *Manager, limit time.Duration, what string, ok func(*State) error) *State {
	t.Helper()
	var st *State
	await(t, limit, what, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		s, err := m.LeaderState(ctx)
		if err != nil {
			return err
		}
		if err := ok(s); err != nil {
			return err
		}
		st = s
		return nil
	})
	return st
}

// founded checks a pool of one with m as its voter.
func founded(m *Manager) func(*State) error {
	return func(s *State) error {
		p := s.Peers[m.ID()]
		switch {
		case s.PoolID == "":
			return errors.New("no pool id yet")
		case len(s.Peers) != 1 || p == nil:
			return fmt.Errorf("peers %v, want only %s", s.SortedPeers(), m.ID())
		case p.Address != m.Address() || !p.Voter:
			return fmt.Errorf("peer %+v, want a voter at %s", *p, m.Address())
		}
		return nil
	}
}

func TestManagerConfigValidate(t *testing.T) {
	good := ManagerConfig{
		ID: "m", Address: "127.0.3.1:1", Dir: "/d", Voters: 3,
		Listen: func() net.Listener { return nil },
		Dial:   func(string, time.Duration) (net.Conn, error) { return nil, nil },
	}
	tests := []struct {
		name string
		edit func(*ManagerConfig)
		err  error
	}{
		{"good", func(*ManagerConfig) {}, nil},
		{"one voter", func(c *ManagerConfig) { c.Voters = 1 }, nil},
		{"five voters", func(c *ManagerConfig) { c.Voters = MaxVoters }, nil},
		{"no id", func(c *ManagerConfig) { c.ID = "" }, ErrInvalid},
		{"no address", func(c *ManagerConfig) { c.Address = "" }, ErrInvalid},
		{"no dir", func(c *ManagerConfig) { c.Dir = "" }, ErrInvalid},
		{"no listen", func(c *ManagerConfig) { c.Listen = nil }, ErrInvalid},
		{"no dial", func(c *ManagerConfig) { c.Dial = nil }, ErrInvalid},
		{"zero voters", func(c *ManagerConfig) { c.Voters = 0 }, ErrInvalid},
		{"six voters", func(c *ManagerConfig) { c.Voters = MaxVoters + 1 }, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			if err := c.Validate(); !errors.Is(err, tt.err) {
				t.Errorf("Validate: %v, want %v", err, tt.err)
			}
		})
	}
	// OpenManager refuses a bad config before touching anything.
	c := good
	c.ID = ""
	if m, err := OpenManager(c); !errors.Is(err, ErrInvalid) {
		if m != nil {
			m.Close()
		}
		t.Errorf("OpenManager without an id: %v, want %v", err, ErrInvalid)
	}
}

func TestManagerFoundsPoolAndReopens(t *testing.T) {
	mb := newMember(t, "127.0.3.1", "m1")
	mb.open(t)
	st := leaderState(t, mb.m, 10*time.Second, "pool of one founded", founded(mb.m))
	if st.Voters != 3 {
		t.Errorf("founded pool wants %d voters, want the default 3", st.Voters)
	}
	if id, addr := mb.m.Leader(); id != "m1" || addr != mb.m.Address() || !mb.m.IsLeader() {
		t.Errorf("Leader() = %s %s, IsLeader %v; want m1 %s true", id, addr, mb.m.IsLeader(), mb.m.Address())
	}

	ctx := ctxFor(t, 20*time.Second)
	v, _, err := PlanCreate(st, CreateRequest{Name: "gv0", Bricks: []BrickSpec{{Host: mb.m.Address(), Path: "/bricks/gv0"}}}, "vol-1", time.Now().Unix())
	if err != nil {
		t.Fatalf("PlanCreate: %v", err)
	}
	if err := mb.m.Propose(ctx, Command{Op: OpCreate, Volume: v}); err != nil {
		t.Fatalf("Propose create: %v", err)
	}
	// The FSM's verdict reaches the proposer.
	if err := mb.m.Propose(ctx, Command{Op: OpCreate, Volume: v}); !errors.Is(err, ErrExists) {
		t.Errorf("Propose of the same create again: %v, want %v", err, ErrExists)
	}
	if err := mb.m.Propose(ctx, setOpt("gv0", "features.read-only", "on")); err != nil {
		t.Fatalf("Propose set-option: %v", err)
	}
	want, err := mb.m.LeaderState(ctx)
	if err != nil {
		t.Fatalf("LeaderState: %v", err)
	}
	got := want.Volumes["gv0"]
	v.Options, v.Version = map[string]string{"features.read-only": "on"}, v.Version+1
	if !reflect.DeepEqual(got, v) {
		t.Errorf("volume read back:\n got %s\nwant %s", dump(got), dump(v))
	}
	if local := mb.m.LocalState(); !reflect.DeepEqual(local, want) {
		t.Errorf("LocalState differs from LeaderState on the only member:\n got %s\nwant %s", dump(local), dump(want))
	}
	members, err := mb.m.Members()
	if err != nil || len(members) != 1 || members[0].ID != "m1" || !members[0].Voter {
		t.Errorf("Members() = %+v, %v; want m1 alone as voter", members, err)
	}

	mb.close(t)
	mb.open(t)
	leaderState(t, mb.m, 10*time.Second, "state intact after reopening", func(s *State) error {
		if !reflect.DeepEqual(s, want) {
			return fmt.Errorf("state %s, want %s", dump(s), dump(want))
		}
		return nil
	})
}

// TestLeaderStateFoundsPool checks that the first command a new server
// serves, however soon after it starts, sees the pool founded with that
// server in it: a peer probe in the first 100 ms used to add the new peer
// as a non-voter of a pool of zero voters, and a volume create right
// after it failed with "host ... is not in the pool".
func TestLeaderStateFoundsPool(t *testing.T) {
	for i := range 3 {
		mb := newMember(t, "127.0.3.1", fmt.Sprintf("f%d", i))
		mb.open(t)
		var st *State
		await(t, 10*time.Second, "leadership", func() error {
			var err error
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			st, err = mb.m.LeaderState(ctx)
			return err
		})
		if p, ok := st.Peers[mb.cfg.ID]; st.PoolID == "" || st.Voters == 0 || !ok || !p.Voter {
			t.Fatalf("first LeaderState: pool %q, %d voters, peers %s; want a founded pool with %s as a voter", st.PoolID, st.Voters, dump(st.Peers), mb.cfg.ID)
		}
		mb.close(t)
	}
}

func TestManagerPoolOfThree(t *testing.T) {
	if testing.Short() {
		t.Skip("three-member manager test skipped in -short mode")
	}
	var ms []*member
	for i := 1; i <= 3; i++ {
		mb := newMember(t, fmt.Sprintf("127.0.3.%d", i), fmt.Sprintf("m%d", i))
		mb.open(t)
		ms = append(ms, mb)
	}
	founder := ms[0].m
	pool := leaderState(t, founder, 10*time.Second, "founder's pool", founded(founder)).PoolID

	ctx := ctxFor(t, 60*time.Second)
	for _, mb := range ms[1:] {
		// Each server founded a pool of its own, which Join throws away.
		if own := leaderState(t, mb.m, 10*time.Second, mb.cfg.ID+" founds its own pool", founded(mb.m)); own.PoolID == pool {
			t.Fatalf("%s founded pool %q, the same as the founder's", mb.cfg.ID, own.PoolID)
		}
		if err := mb.m.Join(); err != nil {
			t.Fatalf("Join on %s: %v", mb.cfg.ID, err)
		}
		p, err := founder.AddPeer(ctx, mb.m.ID(), mb.m.Address())
		if err != nil {
			t.Fatalf("AddPeer(%s): %v", mb.cfg.ID, err)
		}
		if !p.Voter || p.ID != mb.m.ID() || p.Address != mb.m.Address() {
			t.Errorf("AddPeer(%s) = %+v, want a voter (the pool wants 3)", mb.cfg.ID, *p)
		}
	}
	converged := func(ms []*member, what string, ok func(*State) error) *State {
		t.Helper()
		var st *State
		await(t, 10*time.Second, what, func() error {
			st = ms[0].m.LocalState()
			if err := ok(st); err != nil {
				return fmt.Errorf("%s: %w", ms[0].cfg.ID, err)
			}
			for _, mb := range ms[1:] {
				if other := mb.m.LocalState(); !reflect.DeepEqual(other, st) {
					return fmt.Errorf("%s has %s, %s has %s", mb.cfg.ID, dump(other), ms[0].cfg.ID, dump(st))
				}
			}
			return nil
		})
		return st
	}
	converged(ms, "three members agree on a pool of three", func(s *State) error {
		if s.PoolID != pool {
			return fmt.Errorf("pool %q, want the founder's %q", s.PoolID, pool)
		}
		for _, mb := range ms {
			if p := s.Peers[mb.m.ID()]; p == nil || !p.Voter || p.Address != mb.m.Address() {
				return fmt.Errorf("peer %s missing or not a voter in %v", mb.m.ID(), s.SortedPeers())
			}
		}
		if len(s.Peers) != 3 {
			return fmt.Errorf("%d peers, want 3", len(s.Peers))
		}
		return nil
	})
	if members, err := founder.Members(); err != nil || len(members) != 3 {
		t.Errorf("Members() = %+v, %v; want three", members, err)
	}

	// Followers answer from their copy only.
	follower := ms[1].m
	if _, err := follower.LeaderState(ctx); !errors.Is(err, ErrNotLeader) {
		t.Errorf("LeaderState on a follower: %v, want %v", err, ErrNotLeader)
	}
	if err := follower.Propose(ctx, setState("gv0", Started)); !errors.Is(err, ErrNotLeader) {
		t.Errorf("Propose on a follower: %v, want %v", err, ErrNotLeader)
	}
	if id, _ := follower.Leader(); id != founder.ID() {
		t.Errorf("follower sees leader %q, want %q", id, founder.ID())
	}
	// A pooled server cannot throw its pool away.
	if err := follower.Join(); !errors.Is(err, ErrBusy) {
		t.Errorf("Join on a pooled server: %v, want %v", err, ErrBusy)
	}

	st, err := founder.LeaderState(ctx)
	if err != nil {
		t.Fatalf("LeaderState: %v", err)
	}
	var specs []BrickSpec
	for _, mb := range ms {
		specs = append(specs, BrickSpec{Host: mb.m.Address(), Path: "/bricks/gv0"})
	}
	v, _, err := PlanCreate(st, CreateRequest{Name: "gv0", Replica: 3, Bricks: specs}, "vol-1", time.Now().Unix())
	if err != nil {
		t.Fatalf("PlanCreate: %v", err)
	}
	if err := founder.Propose(ctx, Command{Op: OpCreate, Volume: v}); err != nil {
		t.Fatalf("Propose create: %v", err)
	}
	converged(ms, "volume on every member", func(s *State) error {
		if !reflect.DeepEqual(s.Volumes["gv0"], v) {
			return fmt.Errorf("gv0 is %s", dump(s.Volumes["gv0"]))
		}
		return nil
	})

	// Closing the leader hands over to another member.
	old := ms[0]
	if !old.m.IsLeader() {
		t.Fatalf("%s should still lead", old.cfg.ID)
	}
	old.close(t)
	rest := ms[1:]
	var leader *member
	await(t, 10*time.Second, "a new leader", func() error {
		for _, mb := range rest {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			_, err := mb.m.LeaderState(ctx)
			cancel()
			if err == nil {
				leader = mb
				return nil
			}
		}
		return errors.New("no member answers as leader")
	})
	if err := leader.m.Propose(ctx, setState("gv0", Started)); err != nil {
		t.Fatalf("Propose on the new leader %s: %v", leader.cfg.ID, err)
	}
	converged(rest, "start seen by the remaining members", func(s *State) error {
		if v := s.Volumes["gv0"]; v == nil || v.State != Started {
			return fmt.Errorf("gv0 is %s", dump(v))
		}
		return nil
	})

	// The old leader comes back as a follower and catches up.
	old.open(t)
	converged(ms, "old leader caught up", func(s *State) error {
		if v := s.Volumes["gv0"]; v == nil || v.State != Started {
			return fmt.Errorf("gv0 is %s", dump(v))
		}
		return nil
	})

	// Detach a follower, which then leaves for a pool of its own.
	var gone *member
	for _, mb := range ms {
		if mb != leader {
			gone = mb
			break
		}
	}
	if err := leader.m.RemovePeer(ctx, gone.m.ID()); err != nil {
		t.Fatalf("RemovePeer(%s): %v", gone.cfg.ID, err)
	}
	if err := leader.m.RemovePeer(ctx, leader.m.ID()); !errors.Is(err, ErrInvalid) {
		t.Errorf("RemovePeer of the leader itself: %v, want %v", err, ErrInvalid)
	}
	if err := gone.m.Leave(); err != nil {
		t.Fatalf("Leave on %s: %v", gone.cfg.ID, err)
	}
	alone := leaderState(t, gone.m, 10*time.Second, "the detached member founds a pool of one", founded(gone.m))
	if alone.PoolID == pool || len(alone.Volumes) != 0 {
		t.Errorf("after Leave: pool %q (old %q), %d volumes; want a new, empty pool", alone.PoolID, pool, len(alone.Volumes))
	}
	var stay []*member
	for _, mb := range ms {
		if mb != gone {
			stay = append(stay, mb)
		}
	}
	converged(stay, "the pool without the detached member", func(s *State) error {
		if _, ok := s.Peers[gone.m.ID()]; ok || len(s.Peers) != 2 || s.PoolID != pool {
			return fmt.Errorf("pool %q peers %v", s.PoolID, s.SortedPeers())
		}
		return nil
	})
	if members, err := leader.m.Members(); err != nil || len(members) != 2 {
		t.Errorf("Members() after RemovePeer = %+v, %v; want two", members, err)
	}
	if err := leader.m.Propose(ctx, setState("gv0", Stopped)); err != nil {
		t.Errorf("Propose in the pool of two: %v", err)
	}
}

// Close must release every connection and goroutine of the member, whether
// or not its caller still holds the Manager. The leader is closed first,
// while its follower still reads from the connections the leader pooled.
func TestManagerCloseReleasesConnections(t *testing.T) {
	before := goleak.IgnoreCurrent()
	a, b := newMember(t, "127.0.3.1", "a"), newMember(t, "127.0.3.2", "b")
	a.open(t)
	b.open(t)
	leaderState(t, a.m, 10*time.Second, "a founds a pool", founded(a.m))
	leaderState(t, b.m, 10*time.Second, "b founds a pool", founded(b.m))
	if err := b.m.Join(); err != nil {
		t.Fatalf("Join: %v", err)
	}
	ctx := ctxFor(t, 30*time.Second)
	if _, err := a.m.AddPeer(ctx, b.m.ID(), b.m.Address()); err != nil {
		t.Fatalf("AddPeer: %v", err)
	}
	for i := range 5 {
		if err := a.m.Propose(ctx, Command{Op: OpAddPeer, Peer: testPeer(fmt.Sprintf("x%d", i), fmt.Sprintf("10.9.9.%d:24007", i), false)}); err != nil {
			t.Fatalf("Propose: %v", err)
		}
	}
	await(t, 10*time.Second, "b catches up", func() error {
		if n := len(b.m.LocalState().Peers); n != 7 {
			return fmt.Errorf("b knows %d peers, want 7", n)
		}
		return nil
	})
	leader := a.m
	a.close(t)
	b.close(t)
	a.ln.Close()
	b.ln.Close()
	if err := goleak.Find(before); err != nil {
		t.Errorf("goroutines outlive Close of both members: %v", err)
	}
	runtime.KeepAlive(leader)
}
