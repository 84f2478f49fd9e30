package brick

import (
	"context"
	"encoding/hex"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/brick/store"
	"github.com/dfsproject/dfs/pkg/raftgroup"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// File locks live in the store (replicated through Raft, see
// brick/store/locks.go); what lives here is the lease of each client's lock
// session, which is leader state by design: clients renew their sessions
// with the leader (RenewLockSession), the leader remembers when, and a
// session that has locks in the store and was not renewed within the lease
// loses them by an ExpireLockSessionCmd that the leader proposes. Replicas
// never look at a clock while applying. A new leader knows no renewals: it
// starts every session's lease afresh when it first sees it, so a leader
// change delays the expiry of a dead client's locks by at most one lease
// and never drops a live client's.

// DefaultLockLease is how long a client's lock session lives without a
// renewal (Config.LockLease).
const DefaultLockLease = 10 * time.Second

// lockLeases tracks the renewals of lock sessions while the brick leads.
type lockLeases struct {
	b     *Brick
	lease time.Duration
	done  chan struct{}

	mu   sync.Mutex
	term uint64               // the leader term the renewals below belong to
	seen map[string]time.Time // session -> last renewal (or first sighting)
}

// startLockLeases starts the expiry loop; it ends when b.stop is closed.
func startLockLeases(b *Brick, lease time.Duration) *lockLeases {
	if lease <= 0 {
		lease = DefaultLockLease
	}
	l := &lockLeases{b: b, lease: lease, done: make(chan struct{}), seen: make(map[string]time.Time)}
	go l.run()
	return l
}

// wait waits for the expiry loop to end (after b.stop is closed).
func (l *lockLeases) wait() { <-l.done }

func (l *lockLeases) run() {
	defer close(l.done)
	t := time.NewTicker(max(l.lease/10, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-l.b.stop:
			return
		case <-t.C:
			l.sweep()
		}
	}
}

// current returns the renewals of the current term, forgetting those of
// an earlier one. Callers hold mu.
func (l *lockLeases) current(term uint64) map[string]time.Time {
	if term != l.term {
		l.term, l.seen = term, make(map[string]time.Time)
	}
	return l.seen
}

// renew records a renewal of session now.
func (l *lockLeases) renew(session []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.current(l.b.group.Term())[string(session)] = time.Now()
}

// sweep expires the sessions that hold locks and were not renewed within
// the lease. Only the leader acts, once it has applied every entry of
// earlier terms (so that the store names every session with locks).
func (l *lockLeases) sweep() {
	if !l.b.group.IsLeader() {
		l.mu.Lock()
		l.term, l.seen = 0, make(map[string]time.Time)
		l.mu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.lease)
	defer cancel()
	term := l.b.group.Term()
	if err := l.b.group.LeaderReady(ctx); err != nil {
		return
	}
	sessions, err := l.b.store.LockSessions(ctx)
	if err != nil {
		l.b.cfg.Logger.Warn("lock leases: list sessions", "err", err)
		return
	}
	now := time.Now()
	var expired [][]byte
	l.mu.Lock()
	seen := l.current(term)
	holding := make(map[string]bool, len(sessions))
	for _, s := range sessions {
		holding[string(s)] = true
		last, ok := seen[string(s)]
		switch {
		case !ok:
			seen[string(s)] = now
		case now.Sub(last) > l.lease:
			expired = append(expired, s)
		}
	}
	// Renewals of sessions without locks are kept for one lease: their
	// first lock may be on its way.
	for s, last := range seen {
		if !holding[s] && now.Sub(last) > l.lease {
			delete(seen, s)
		}
	}
	l.mu.Unlock()
	for _, s := range expired {
		cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_ExpireLockSession{ExpireLockSession: &dfspb.ExpireLockSessionCmd{Session: s}}}
		if _, err := l.b.propose(ctx, cmd); err != nil {
			l.b.cfg.Logger.Warn("lock leases: expire session", "session", hex.EncodeToString(s), "err", err)
			return
		}
		l.mu.Lock()
		delete(l.current(term), string(s))
		l.mu.Unlock()
		l.b.cfg.Logger.Info("lock session expired: its locks are released", "session", hex.EncodeToString(s), "lease", l.lease)
	}
}

// propose commits cmd through the subvolume's Raft group (leader only) and
// returns the store's result.
func (b *Brick) propose(ctx context.Context, cmd *dfspb.StoreCommand) (*dfspb.StoreResult, error) {
	cmd.NowNs = nowNs()
	data, err := store.EncodeCommand(cmd)
	if err != nil {
		return nil, err
	}
	resp, err := b.group.Apply(ctx, data)
	if err != nil {
		return nil, err
	}
	res, ok := resp.(*dfspb.StoreResult)
	if !ok {
		return nil, status.Errorf(codes.Internal, "store answered %T", resp)
	}
	return res, store.ResultError(res)
}

func (s *service) TestLock(ctx context.Context, req *dfspb.TestLockRequest) (*dfspb.TestLockResponse, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	id, err := idOf(req.Id)
	if err != nil {
		return nil, err
	}
	c, err := s.b.store.TestLock(ctx, id, req.Lock)
	if err != nil {
		r := storeFailure(err)
		return &dfspb.TestLockResponse{Code: r.Code, Message: r.Message}, nil
	}
	return &dfspb.TestLockResponse{Conflict: c}, nil
}

func (s *service) RenewLockSession(ctx context.Context, req *dfspb.RenewLockSessionRequest) (*dfspb.RenewLockSessionResponse, error) {
	if len(req.Session) != 16 {
		return nil, status.Errorf(codes.InvalidArgument, "lock session of %d bytes; sessions have 16", len(req.Session))
	}
	if !s.b.group.IsLeader() {
		return nil, s.b.rpcError(ctx, raftgroup.ErrNotLeader)
	}
	s.b.locks.renew(req.Session)
	return &dfspb.RenewLockSessionResponse{LeaseMs: uint32(s.b.locks.lease / time.Millisecond)}, nil
}
