package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/dfsproject/dfs/pkg/raftgroup"
)

// ManagerConfig configures this server's member of the manager group.
type ManagerConfig struct {
	// ID is the server's stable peer id. Required.
	ID string
	// Address is the server's host:port, for peers and clients. Required.
	Address string
	// Dir holds the manager's Raft state. Required.
	Dir string
	// Voters is the voter count of a pool this server founds. Default 3.
	Voters int
	// Listen returns a fresh listener for the manager's Raft connections;
	// it is called again after the server joins another pool. Required.
	Listen func() net.Listener
	// Dial opens a Raft connection to a peer. Required.
	Dial func(address string, timeout time.Duration) (net.Conn, error)
	// Logger receives the manager's logs. Default: discard.
	Logger *slog.Logger
	// NoSync skips fsync of the Raft log (tests of other packages only).
	NoSync bool
}

// MaxVoters is the largest manager group that dfs builds.
const MaxVoters = 5

// Validate reports the first bad field.
func (c ManagerConfig) Validate() error {
	switch {
	case c.ID == "" || c.Address == "" || c.Dir == "":
		return Errorf(ErrInvalid, "manager config needs ID, Address and Dir")
	case c.Listen == nil || c.Dial == nil:
		return Errorf(ErrInvalid, "manager config needs Listen and Dial")
	case c.Voters < 1 || c.Voters > MaxVoters:
		return Errorf(ErrInvalid, "voters must be from 1 to %d, not %d", MaxVoters, c.Voters)
	}
	return nil
}

// Manager is this server's member of the volume-manager Raft group.
//
// A server on an empty data dir founds a pool of one. Joining another pool
// (Join) throws that away and waits to be added by the pool's leader;
// Leave does the reverse. Every change goes through Raft on the leader
// (Propose); followers answer from their local copy (LocalState), and the
// leader answers current reads (LeaderState). All methods may be called
// concurrently.
type Manager struct {
	cfg ManagerConfig
	fsm *FSM

	mu    sync.RWMutex
	group *raftgroup.Group

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

const joiningMarker = "joining"

// OpenManager starts the manager member, founding a pool of one when the
// directory is empty.
func OpenManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Voters == 0 {
		cfg.Voters = 3
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, fsm: NewFSM(), stop: make(chan struct{}), done: make(chan struct{})}
	_, err := os.Stat(filepath.Join(cfg.Dir, joiningMarker))
	joining := err == nil
	if err := m.open(!joining); err != nil {
		return nil, err
	}
	go m.run()
	return m, nil
}

func (m *Manager) open(bootstrap bool) error {
	fresh := !raftgroup.HasState(m.cfg.Dir)
	g, err := raftgroup.Open(raftgroup.Config{
		ID:       m.cfg.ID,
		Address:  m.cfg.Address,
		Dir:      m.cfg.Dir,
		FSM:      m.fsm,
		Listener: m.cfg.Listen(),
		Dial:     m.cfg.Dial,
		Logger:   m.cfg.Logger.With("group", "manager"),
		NoSync:   m.cfg.NoSync,
	})
	if err != nil {
		return err
	}
	if fresh && bootstrap {
		if err := g.Bootstrap(map[string]string{m.cfg.ID: m.cfg.Address}); err != nil {
			g.Close()
			return err
		}
	}
	m.group = g
	return nil
}

// run founds the pool record once this member leads a new group.
func (m *Manager) run() {
	defer close(m.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		g := m.current()
		if !g.IsLeader() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := g.LeaderReady(ctx)
		cancel()
		if err != nil {
			continue
		}
		if st, _ := m.fsm.State(); st.PoolID == "" {
			if err := m.found(g); err != nil {
				m.cfg.Logger.Warn("founding the pool failed; will retry", "err", err)
			}
		}
	}
}

// found commits the pool's first state: its id, voter count and this
// server as its first peer. A pool founded already (by a concurrent call)
// is not an error.
func (m *Manager) found(g *raftgroup.Group) error {
	c := Command{Op: OpInit, Time: time.Now().Unix(), PoolID: uuid.NewString(), Voters: m.cfg.Voters,
		Peer: &Peer{ID: m.cfg.ID, Address: m.cfg.Address, Voter: true, Added: time.Now().Unix()}}
	data, _ := json.Marshal(c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := g.Apply(ctx, data)
	if err != nil {
		return m.translate(err)
	}
	if err, ok := resp.(error); ok && !errors.Is(err, ErrExists) {
		return err
	}
	return nil
}

// Close stops the manager member, handing over leadership if it leads.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
		m.mu.Lock()
		defer m.mu.Unlock()
		m.closeErr = m.group.Close()
	})
	return m.closeErr
}

func (m *Manager) current() *raftgroup.Group {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.group
}

// ID is this server's peer id.
func (m *Manager) ID() string { return m.cfg.ID }

// Address is this server's host:port.
func (m *Manager) Address() string { return m.cfg.Address }

// FSM gives access to the local state machine for watchers.
func (m *Manager) FSM() *FSM { return m.fsm }

// IsLeader reports whether this server leads the manager group.
func (m *Manager) IsLeader() bool { return m.current().IsLeader() }

// Leader returns the leader's peer id and address, empty when unknown.
func (m *Manager) Leader() (id, address string) { return m.current().Leader() }

// LocalState returns this server's copy of the state, which may lag.
func (m *Manager) LocalState() *State {
	st, _ := m.fsm.State()
	return st
}

// LeaderState returns the current state; leader only.
//
// A new server founds its pool of one on its first leadership, within
// about 100 ms of starting (foundLoop); a command that comes first (a
// peer probe right after start) founds it here, so that no command sees a
// pool without its first server: a probe then added the new peer as a
// non-voter of a pool of zero voters, and the first server was missing
// from the pool until the loop ran.
func (m *Manager) LeaderState(ctx context.Context) (*State, error) {
	g := m.current()
	if err := g.LeaderReady(ctx); err != nil {
		return nil, m.translate(err)
	}
	if st := m.LocalState(); st.PoolID != "" {
		return st, nil
	}
	if err := m.found(g); err != nil {
		return nil, err
	}
	return m.LocalState(), nil
}

// Propose commits c through Raft and returns the FSM's verdict; leader only.
func (m *Manager) Propose(ctx context.Context, c Command) error {
	if c.Time == 0 {
		c.Time = time.Now().Unix()
	}
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("volume: encode command: %w", err)
	}
	resp, err := m.current().Apply(ctx, data)
	if err != nil {
		return m.translate(err)
	}
	if err, ok := resp.(error); ok {
		return err
	}
	return nil
}

// AddPeer adds a server that has agreed to join (see Join) to the Raft
// group and the pool, as a voter while the pool has fewer than its voter
// count. Leader only.
func (m *Manager) AddPeer(ctx context.Context, id, address string) (*Peer, error) {
	st, err := m.LeaderState(ctx)
	if err != nil {
		return nil, err
	}
	g := m.current()
	members, err := g.Members()
	if err != nil {
		return nil, m.translate(err)
	}
	voters := 0
	for _, mem := range members {
		if mem.Voter && mem.ID != id {
			voters++
		}
	}
	p := &Peer{ID: id, Address: address, Voter: voters < st.Voters, Added: time.Now().Unix()}
	if err := g.AddMember(p.ID, p.Address, p.Voter); err != nil {
		return nil, m.translate(err)
	}
	if err := m.Propose(ctx, Command{Op: OpAddPeer, Peer: p}); err != nil {
		_ = g.RemoveMember(p.ID)
		return nil, err
	}
	return p, nil
}

// RemovePeer takes a server out of the Raft group and the pool, and
// promotes a non-voter when a voter leaves. Leader only.
func (m *Manager) RemovePeer(ctx context.Context, id string) error {
	st, err := m.LeaderState(ctx)
	if err != nil {
		return err
	}
	p, ok := st.Peers[id]
	if !ok {
		return Errorf(ErrNotFound, "peer %s", id)
	}
	if id == m.cfg.ID {
		return Errorf(ErrInvalid, "a server cannot detach itself; run the detach on another server of the pool")
	}
	g := m.current()
	if err := g.RemoveMember(id); err != nil {
		return m.translate(err)
	}
	if err := m.Propose(ctx, Command{Op: OpRemovePeer, Peer: &Peer{ID: id}}); err != nil {
		return err
	}
	if !p.Voter {
		return nil
	}
	for _, cand := range st.SortedPeers() {
		if cand.Voter || cand.ID == id {
			continue
		}
		if err := g.AddMember(cand.ID, cand.Address, true); err != nil {
			return m.translate(err)
		}
		return m.Propose(ctx, Command{Op: OpSetVoter, Peer: &Peer{ID: cand.ID, Voter: true}})
	}
	return nil
}

// Join throws away this server's pool of one so that another pool's leader
// can add it. It refuses when this server has other peers or volumes.
func (m *Manager) Join() error {
	st := m.LocalState()
	if len(st.Volumes) > 0 {
		return Errorf(ErrBusy, "%s has %d volume(s); delete them before it joins another pool", m.cfg.Address, len(st.Volumes))
	}
	for id := range st.Peers {
		if id != m.cfg.ID {
			return Errorf(ErrBusy, "%s is already in a pool of %d servers; detach it there first", m.cfg.Address, len(st.Peers))
		}
	}
	return m.reset(true)
}

// Leave makes this server a pool of one again after it was detached.
func (m *Manager) Leave() error { return m.reset(false) }

func (m *Manager) reset(joining bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.group.Close(); err != nil {
		m.cfg.Logger.Warn("closing manager group for reset", "err", err)
	}
	if err := os.RemoveAll(m.cfg.Dir); err != nil {
		return fmt.Errorf("volume: reset manager state: %w", err)
	}
	if err := os.MkdirAll(m.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("volume: reset manager state: %w", err)
	}
	if joining {
		if err := os.WriteFile(filepath.Join(m.cfg.Dir, joiningMarker), nil, 0o600); err != nil {
			return fmt.Errorf("volume: %w", err)
		}
	}
	m.fsm.reset()
	return m.open(!joining)
}

// Voters reports the ids of the Raft group's voters.
func (m *Manager) Members() ([]raftgroup.Member, error) {
	ms, err := m.current().Members()
	return ms, m.translate(err)
}

func (m *Manager) translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raftgroup.ErrNotLeader):
		return Errorf(ErrNotLeader, "%v", err)
	case errors.Is(err, raftgroup.ErrNoLeader), errors.Is(err, raftgroup.ErrUnknownOutcome):
		return Errorf(ErrNoLeader, "%v", err)
	}
	return err
}

// TransferLeadership hands manager leadership to another voter.
func (m *Manager) TransferLeadership() error {
	return m.translate(m.current().TransferLeadership())
}
