package volume

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// Op names a state change. Commands are JSON so that a log written by one
// version of dfs is read by the next (see docs/operations.md, upgrading).
type Op string

// The state changes the FSM knows.
const (
	OpInit        Op = "init"
	OpAddPeer     Op = "add-peer"
	OpRemovePeer  Op = "remove-peer"
	OpSetVoter    Op = "set-voter"
	OpCreate      Op = "create-volume"
	OpSetState    Op = "set-state"
	OpDelete      Op = "delete-volume"
	OpSetOption   Op = "set-option"
	OpResetOption Op = "reset-option"
	OpReplace     Op = "replace-brick"
)

// Command is one entry of the manager's Raft log.
type Command struct {
	Op Op `json:"op"`
	// Time is the proposer's Unix time, so that Apply is deterministic.
	Time   int64   `json:"time,omitempty"`
	PoolID string  `json:"pool_id,omitempty"`
	Voters int     `json:"voters,omitempty"`
	Peer   *Peer   `json:"peer,omitempty"`
	Volume *Volume `json:"volume,omitempty"`
	// Name of the volume for set-state, delete, set-option, reset-option.
	Name  string    `json:"name,omitempty"`
	State Lifecycle `json:"state,omitempty"`
	Key   string    `json:"key,omitempty"`
	Value string    `json:"value,omitempty"`
	// Brick is the new brick of replace-brick; Key names the old one.
	Brick *Brick `json:"brick,omitempty"`
}

// FSM is the volume manager's state machine. Apply, Snapshot and Restore
// are called by Raft one at a time; State and Watch may be called from any
// goroutine.
type FSM struct {
	mu      sync.RWMutex
	state   *State
	index   uint64
	changed chan struct{} // closed and replaced on every applied change
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an FSM with an empty state.
func NewFSM() *FSM {
	return &FSM{state: NewState(), changed: make(chan struct{})}
}

// State returns a deep copy of the current state and the index it reflects.
func (f *FSM) State() (*State, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Clone(), f.index
}

// Changed returns a channel closed at the next applied change.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// Apply applies one log entry. It returns nil or an error for the proposer.
func (f *FSM) Apply(l *raft.Log) any {
	var c Command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return Errorf(ErrInvalid, "undecodable command at index %d: %v", l.Index, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	err := apply(f.state, &c)
	f.index = l.Index
	if err == nil {
		close(f.changed)
		f.changed = make(chan struct{})
	}
	return err
}

// apply is the state transition; on error s is unchanged.
func apply(s *State, c *Command) error {
	switch c.Op {
	case OpInit:
		if s.PoolID != "" {
			return Errorf(ErrExists, "pool already initialised")
		}
		s.PoolID, s.Voters = c.PoolID, c.Voters
		if c.Peer != nil {
			p := *c.Peer
			s.Peers[p.ID] = &p
		}
	case OpAddPeer:
		if c.Peer == nil || c.Peer.ID == "" {
			return invalidf("add-peer without a peer")
		}
		for _, p := range s.Peers {
			if p.Address == c.Peer.Address && p.ID != c.Peer.ID {
				return Errorf(ErrExists, "address %s belongs to peer %s", p.Address, p.ID)
			}
		}
		p := *c.Peer
		s.Peers[p.ID] = &p
	case OpRemovePeer:
		if c.Peer == nil {
			return invalidf("remove-peer without a peer")
		}
		if _, ok := s.Peers[c.Peer.ID]; !ok {
			return Errorf(ErrNotFound, "peer %s", c.Peer.ID)
		}
		delete(s.Peers, c.Peer.ID)
	case OpSetVoter:
		if c.Peer == nil {
			return invalidf("set-voter without a peer")
		}
		p, ok := s.Peers[c.Peer.ID]
		if !ok {
			return Errorf(ErrNotFound, "peer %s", c.Peer.ID)
		}
		p.Voter = c.Peer.Voter
	case OpCreate:
		if c.Volume == nil {
			return invalidf("create-volume without a volume")
		}
		// Re-check against the state at apply time: two creates may race.
		if _, ok := s.Volumes[c.Volume.Name]; ok {
			return Errorf(ErrExists, "volume %s already exists", c.Volume.Name)
		}
		for _, b := range c.Volume.Bricks {
			if _, ok := s.Peers[b.ServerID]; !ok {
				return invalidf("brick %s: server left the pool", b.Name())
			}
			for _, other := range s.Volumes {
				for _, ob := range other.Bricks {
					if ob.ServerID == b.ServerID && (pathWithin(b.Path, ob.Path) || pathWithin(ob.Path, b.Path)) {
						return invalidf("brick %s overlaps brick %s of volume %s", b.Name(), ob.Name(), other.Name)
					}
				}
			}
		}
		// Ports are assigned again at apply time: a create planned against
		// an older state must not take a port another volume got since.
		v := c.Volume.Clone()
		for i := range v.Bricks {
			v.Bricks[i].Port = 0
		}
		assignPorts(s, v)
		s.Volumes[v.Name] = v
	case OpSetState:
		switch c.State {
		case Created, Started, Stopped:
		default:
			return invalidf("unknown volume state %q", c.State)
		}
		v, ok := s.Volumes[c.Name]
		if !ok {
			return Errorf(ErrNotFound, "volume %s does not exist", c.Name)
		}
		v.State = c.State
		v.Version++
	case OpDelete:
		v, ok := s.Volumes[c.Name]
		if !ok {
			return Errorf(ErrNotFound, "volume %s does not exist", c.Name)
		}
		if v.State == Started {
			return Errorf(ErrState, "volume %s is started; stop it first with 'dfs volume stop %s'", c.Name, c.Name)
		}
		delete(s.Volumes, c.Name)
	case OpSetOption, OpResetOption:
		v, ok := s.Volumes[c.Name]
		if !ok {
			return Errorf(ErrNotFound, "volume %s does not exist", c.Name)
		}
		if c.Op == OpSetOption {
			if v.Options == nil {
				v.Options = map[string]string{}
			}
			v.Options[c.Key] = c.Value
		} else if c.Key == "" {
			v.Options = nil
		} else {
			delete(v.Options, c.Key)
			if len(v.Options) == 0 {
				v.Options = nil
			}
		}
		v.Version++
	case OpReplace:
		v, ok := s.Volumes[c.Name]
		if !ok {
			return Errorf(ErrNotFound, "volume %s does not exist", c.Name)
		}
		if c.Brick == nil {
			return invalidf("replace-brick without a new brick")
		}
		if _, ok := s.Peers[c.Brick.ServerID]; !ok {
			return invalidf("brick %s: server left the pool", c.Brick.Name())
		}
		i := v.brickIndex(c.Key)
		if i < 0 {
			return Errorf(ErrNotFound, "volume %s has no brick %s", c.Name, c.Key)
		}
		nb := *c.Brick
		nb.Subvolume = v.Bricks[i].Subvolume
		nb.Replacement = true
		v.Bricks[i] = nb
		v.Bricks[i].Port = 0
		assignPorts(s, v)
		v.Version++
	default:
		return invalidf("unknown command %q", c.Op)
	}
	return nil
}

// Snapshot captures the state; Persist may run concurrently with Apply.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	st, _ := f.State()
	data, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	return snapshot(data), nil
}

// Restore replaces the state with a snapshot's.
func (f *FSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	st := NewState()
	if err := json.NewDecoder(r).Decode(st); err != nil {
		return fmt.Errorf("volume: restore snapshot: %w", err)
	}
	if st.Peers == nil {
		st.Peers = map[string]*Peer{}
	}
	if st.Volumes == nil {
		st.Volumes = map[string]*Volume{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = st
	f.index = 0
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}

// reset empties the state, for a server that leaves or joins a pool.
func (f *FSM) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = NewState()
	f.index = 0
	close(f.changed)
	f.changed = make(chan struct{})
}
