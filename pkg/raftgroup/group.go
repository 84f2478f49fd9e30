// Package raftgroup builds a hashicorp/raft group the way every dfs group
// is built: the Pebble log and stable store of pkg/raftstore, raft's file
// snapshot store, a TCP transport that shares a port with gRPC (pkg/mux),
// timeouts tuned for seconds-long failover, and logs routed to slog.
//
// The volume manager (volume/) and each replica set (brick/) are a Group.
// A Group owns its Raft instance, stores and transport; Close shuts all of
// them down and hands leadership over first when it holds it, so a planned
// stop costs milliseconds instead of an election.
//
// All methods may be called concurrently. Apply never abandons a proposal
// because a caller's context ends: the context only bounds how long the
// caller waits for the answer, never whether the entry is committed.
package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/dfsproject/dfs/pkg/raftstore"
)

// Errors of a group.
var (
	ErrNotLeader = errors.New("raftgroup: not the leader")
	ErrNoLeader  = errors.New("raftgroup: no leader")
	ErrClosed    = errors.New("raftgroup: closed")
	// ErrUnknownOutcome: the leader lost its leadership while a proposal
	// was in flight; a later leader may still commit the entry, or not.
	// The caller must treat the operation as possibly applied.
	ErrUnknownOutcome = errors.New("raftgroup: leadership lost with the proposal in flight")
)

// Config describes one member of a group.
type Config struct {
	// ID is this member's stable id. Required.
	ID string
	// Address is where other members reach this one (host:port). Required.
	Address string
	// Dir holds the log, stable store and snapshots. Required.
	Dir string
	// FSM is the state machine. Required.
	FSM raft.FSM
	// Listener accepts the group's Raft connections. Required.
	Listener net.Listener
	// Dial opens a Raft connection to another member. Required.
	Dial func(address string, timeout time.Duration) (net.Conn, error)
	// Logger receives Raft's and Pebble's logs. Default: discard.
	Logger *slog.Logger
	// HeartbeatTimeout and ElectionTimeout bound failure detection.
	// Default 500 ms each: failover in about 1.2 s. (On a saturated
	// 2-core machine, make bench saw them depose healthy leaders; 1 s
	// each is the candidate fix, not yet validated by the tests.)
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// LeaderLeaseTimeout is how long a leader serves without contact with
	// a majority; it must stay below ElectionTimeout for lease reads.
	// Default 250 ms.
	LeaderLeaseTimeout time.Duration
	// SnapshotThreshold is the number of log entries between snapshots.
	// Default 8192.
	SnapshotThreshold uint64
	// TrailingLogs is how many entries stay in the log after a snapshot,
	// so a briefly absent member catches up from the log. Default 10240.
	TrailingLogs uint64
	// LogBytesBudget bounds the disk space of the log's large entries
	// (chunk data): beyond it, the group snapshots at once and compacts
	// its log down to a few entries (budgetTrailingLogs), whatever
	// TrailingLogs says. A member further behind then catches up from the snapshot.
	// Zero: no bound (only SnapshotThreshold and TrailingLogs).
	LogBytesBudget int64
	// NoSync skips fsync of the log; for tests of other packages only.
	NoSync bool
	// KeepFSMOnStart is for FSMs that persist their own state and know
	// their last applied index: Raft then does not restore the latest
	// snapshot at start, and replays only the log after it (the FSM skips
	// entries it has applied already). Default false (in-memory FSMs).
	KeepFSMOnStart bool
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
	}
}

// Validate reports the first missing or inconsistent field.
func (c Config) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("raftgroup: config: ID is required")
	case c.Address == "":
		return errors.New("raftgroup: config: Address is required")
	case c.Dir == "":
		return errors.New("raftgroup: config: Dir is required")
	case c.FSM == nil:
		return errors.New("raftgroup: config: FSM is required")
	case c.Listener == nil || c.Dial == nil:
		return errors.New("raftgroup: config: Listener and Dial are required")
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return errors.New("raftgroup: config: LeaderLeaseTimeout must not exceed HeartbeatTimeout")
	}
	return nil
}

// Group is one member of a Raft group.
type Group struct {
	cfg       Config
	raft      *raft.Raft
	store     *raftstore.Store
	transport *raft.NetworkTransport

	mu        sync.Mutex
	readyTerm uint64 // the term in which this leader has applied its log

	stopBudget chan struct{} // ends budgetLoop
	budgetDone chan struct{}
}

// budgetEvery is how often the log's space is checked against
// LogBytesBudget.
const budgetEvery = time.Second

// budgetTrailingLogs is how many entries a compaction for the budget
// keeps: a quarter of the budget's worth of 1 MiB entries, 4 to 64.
func (g *Group) budgetTrailingLogs() uint64 {
	return uint64(min(max(g.cfg.LogBytesBudget/(4<<20), 4), 64))
}

// budgetLoop keeps the log's blob segments within cfg.LogBytesBudget.
func (g *Group) budgetLoop() {
	defer close(g.budgetDone)
	t := time.NewTicker(budgetEvery)
	defer t.Stop()
	for {
		select {
		case <-g.stopBudget:
			return
		case <-t.C:
		}
		if used := g.store.BlobBytes(); used > g.cfg.LogBytesBudget {
			if err := g.compactNow(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
				g.cfg.Logger.Warn("log over its space budget; snapshot failed", "bytes", used, "budget", g.cfg.LogBytesBudget, "err", err)
			}
		}
	}
}

// compactNow snapshots and compacts the log to budgetTrailingLogs entries.
func (g *Group) compactNow() error {
	rc := g.raft.ReloadableConfig()
	short := rc
	short.TrailingLogs = min(rc.TrailingLogs, g.budgetTrailingLogs())
	if err := g.raft.ReloadConfig(short); err != nil {
		return err
	}
	defer func() { _ = g.raft.ReloadConfig(rc) }()
	return g.raft.Snapshot().Error()
}

// Open starts this member. It does not bootstrap: see Bootstrap.
func Open(cfg Config) (*Group, error) {
	def := DefaultConfig()
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = def.HeartbeatTimeout
	}
	if cfg.ElectionTimeout == 0 {
		cfg.ElectionTimeout = def.ElectionTimeout
	}
	if cfg.LeaderLeaseTimeout == 0 {
		cfg.LeaderLeaseTimeout = def.LeaderLeaseTimeout
	}
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = def.SnapshotThreshold
	}
	if cfg.TrailingLogs == 0 {
		cfg.TrailingLogs = def.TrailingLogs
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftgroup: %w", err)
	}
	scfg := raftstore.DefaultConfig()
	scfg.Dir = filepath.Join(cfg.Dir, "log")
	scfg.Logger = cfg.Logger
	scfg.NoSync = cfg.NoSync
	if cfg.LogBytesBudget > 0 {
		// Segments go whole: a budget needs several of them.
		scfg.SegmentBytes = min(max(cfg.LogBytesBudget/8, 1<<20), 64<<20)
	}
	store, err := raftstore.Open(scfg)
	if err != nil {
		return nil, err
	}
	hl := hclogger(cfg.Logger)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hl)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("raftgroup: snapshots: %w", err)
	}
	cache, err := raft.NewLogCache(64, store)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("raftgroup: %w", err)
	}
	transport := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &streamLayer{Listener: cfg.Listener, dial: cfg.Dial},
		MaxPool: 4,
		Timeout: 10 * time.Second,
		Logger:  hl,
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.Logger = hl
	rc.NoSnapshotRestoreOnStart = cfg.KeepFSMOnStart
	r, err := raft.NewRaft(rc, cfg.FSM, cache, store, snaps, transport)
	if err != nil {
		transport.Close()
		store.Close()
		return nil, fmt.Errorf("raftgroup: %w", err)
	}
	g := &Group{cfg: cfg, raft: r, store: store, transport: transport, stopBudget: make(chan struct{}), budgetDone: make(chan struct{})}
	if cfg.LogBytesBudget > 0 {
		go g.budgetLoop()
	} else {
		close(g.budgetDone)
	}
	return g, nil
}

// HasState reports whether dir holds a group member's state already.
func HasState(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "log"))
	return err == nil
}

// Bootstrap makes a new group of the given members (id -> address); every
// member must be bootstrapped with the same set, or only one member with
// itself. It fails harmlessly on a member that already has state.
func (g *Group) Bootstrap(members map[string]string) error {
	var servers []raft.Server
	for id, addr := range members {
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr), Suffrage: raft.Voter})
	}
	err := g.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return nil
	}
	return err
}

// Apply proposes data and returns the FSM's response once committed and
// applied. It fails with ErrNotLeader on a follower.
func (g *Group) Apply(ctx context.Context, data []byte) (any, error) {
	timeout := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := g.raft.Apply(data, timeout)
	// Wait for the outcome even when ctx ends: an entry that is on its way
	// will be committed or not regardless of the caller.
	if err := f.Error(); err != nil {
		return nil, translate(err)
	}
	return f.Response(), nil
}

// Snapshot takes a snapshot now and compacts the log behind it (keeping
// TrailingLogs entries).
func (g *Group) Snapshot() error { return translate(g.raft.Snapshot().Error()) }

// Barrier waits until every entry committed before it has been applied.
func (g *Group) Barrier(ctx context.Context) error {
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	return translate(g.raft.Barrier(timeout).Error())
}

// LeaderReady returns nil when this member leads and its state machine has
// applied every entry committed before its term began, so that reads from
// the local state see every acknowledged write. Followers get
// ErrNotLeader. The first call in a term waits for a barrier.
//
// Reads served this way rely on the leader lease: a leader cut off from
// the majority steps down after LeaderLeaseTimeout, before any other
// member can win an election (ElectionTimeout is longer).
func (g *Group) LeaderReady(ctx context.Context) error {
	if !g.IsLeader() {
		return ErrNotLeader
	}
	term := g.raft.CurrentTerm()
	g.mu.Lock()
	ready := g.readyTerm == term
	g.mu.Unlock()
	if ready {
		return nil
	}
	if err := g.Barrier(ctx); err != nil {
		return err
	}
	g.mu.Lock()
	if g.readyTerm < term {
		g.readyTerm = term
	}
	g.mu.Unlock()
	return nil
}

// VerifyLeader confirms with a majority that this member still leads.
func (g *Group) VerifyLeader() error { return translate(g.raft.VerifyLeader().Error()) }

// IsLeader reports whether this member believes it leads.
func (g *Group) IsLeader() bool { return g.raft.State() == raft.Leader }

// Leader returns the leader's id and address, empty when unknown.
func (g *Group) Leader() (id, address string) {
	addr, lid := g.raft.LeaderWithID()
	return string(lid), string(addr)
}

// Term is the current Raft term.
func (g *Group) Term() uint64 { return g.raft.CurrentTerm() }

// LeaderCh reports leadership gains (true) and losses (false) of this member.
func (g *Group) LeaderCh() <-chan bool { return g.raft.LeaderCh() }

// Member is one entry of the group's configuration.
type Member struct {
	ID      string
	Address string
	Voter   bool
}

// Members returns the latest configuration.
func (g *Group) Members() ([]Member, error) {
	f := g.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, translate(err)
	}
	var out []Member
	for _, s := range f.Configuration().Servers {
		out = append(out, Member{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// AddMember adds a voter or non-voter. Leader only.
func (g *Group) AddMember(id, address string, voter bool) error {
	if voter {
		return translate(g.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(address), 0, 30*time.Second).Error())
	}
	return translate(g.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(address), 0, 30*time.Second).Error())
}

// RemoveMember removes a member. Leader only.
func (g *Group) RemoveMember(id string) error {
	return translate(g.raft.RemoveServer(raft.ServerID(id), 0, 30*time.Second).Error())
}

// Stats returns Raft's counters (state, term, indexes) for status output.
func (g *Group) Stats() map[string]string { return g.raft.Stats() }

// Close shuts the member down, handing over leadership first if it leads
// and other voters exist.
func (g *Group) Close() error {
	close(g.stopBudget)
	<-g.budgetDone
	if g.IsLeader() {
		if ms, err := g.Members(); err == nil && countVoters(ms) > 1 {
			_ = g.raft.LeadershipTransfer().Error()
		}
	}
	err := g.raft.Shutdown().Error()
	g.transport.Close()
	// Close also drops the pooled outbound connections, so that the peers'
	// handlers reading them end now rather than at garbage collection.
	g.transport.CloseStreams()
	if cerr := g.store.Close(); err == nil {
		err = cerr
	}
	return err
}

func countVoters(ms []Member) int {
	n := 0
	for _, m := range ms {
		if m.Voter {
			n++
		}
	}
	return n
}

func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %v", ErrClosed, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrNoLeader, err)
	}
	return err
}

// streamLayer adapts a mux sub-listener to raft.StreamLayer.
type streamLayer struct {
	net.Listener
	dial func(string, time.Duration) (net.Conn, error)
}

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.dial(string(addr), timeout)
}

// hclogger routes Raft's hclog output to slog: Raft's INFO chatter goes to
// Debug, its warnings and errors keep their level.
func hclogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclog.Info,
		Output:      slogWriter{l},
		DisableTime: true,
	})
}

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	switch {
	case strings.Contains(line, "[ERROR]"):
		w.l.Error(line)
	case strings.Contains(line, "[WARN]"):
		w.l.Warn(line)
	default:
		w.l.Debug(line)
	}
	return len(p), nil
}

var _ io.Writer = slogWriter{}

// TransferLeadership hands leadership to another voter. Leader only.
func (g *Group) TransferLeadership() error {
	return translate(g.raft.LeadershipTransfer().Error())
}
