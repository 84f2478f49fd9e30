package volume

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// Sentinel errors of the volume manager. The RPC layer maps them to gRPC
// codes in one place; callers test them with errors.Is.
var (
	ErrNotFound    = errors.New("volume: not found")
	ErrExists      = errors.New("volume: already exists")
	ErrInvalid     = errors.New("volume: invalid argument")
	ErrState       = errors.New("volume: wrong state")
	ErrBusy        = errors.New("volume: in use")
	ErrNotLeader   = errors.New("volume: not the manager leader")
	ErrNoLeader    = errors.New("volume: no manager leader")
	ErrNotPooled   = errors.New("volume: server not in a pool")
	ErrUnsupported = errors.New("volume: not supported yet")
)

// Errorf returns an error of the given kind (one of the sentinels above)
// whose message is the formatted text alone, without the sentinel's
// prefix: the message reaches the admin verbatim, errors.Is still sees
// the kind.
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// Lifecycle states of a volume.
type Lifecycle string

const (
	Created Lifecycle = "Created"
	Started Lifecycle = "Started"
	Stopped Lifecycle = "Stopped"
)

// State is everything the volume manager knows, replicated by Raft. Only
// the FSM changes it; readers get deep copies.
type State struct {
	// PoolID names the trusted pool; set when the first server bootstraps.
	PoolID string `json:"pool_id"`
	// Voters is how many peers vote in the manager group (1 to 5).
	Voters  int                `json:"voters"`
	Peers   map[string]*Peer   `json:"peers"`   // by peer id
	Volumes map[string]*Volume `json:"volumes"` // by volume name
}

// Peer is one dfs server of the pool.
type Peer struct {
	ID      string `json:"id"`
	Address string `json:"address"` // host:port of its gRPC and Raft listener
	Voter   bool   `json:"voter"`
	// Added is the Unix time the peer joined, set by the proposer.
	Added int64 `json:"added"`
}

// Host is the peer's host without the port.
func (p *Peer) Host() string {
	h, _, err := net.SplitHostPort(p.Address)
	if err != nil {
		return p.Address
	}
	return h
}

// Volume is one volume's durable description.
type Volume struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Replica    int               `json:"replica,omitempty"`
	Disperse   int               `json:"disperse,omitempty"`
	Redundancy int               `json:"redundancy,omitempty"`
	State      Lifecycle         `json:"state"`
	Bricks     []Brick           `json:"bricks"`
	Options    map[string]string `json:"options,omitempty"`
	// Partitions[p] is the subvolume that holds partition p.
	Partitions []int `json:"partitions"`
	Created    int64 `json:"created"`
	// Version of the volume's layout; bumped by every change to the volume.
	Version uint64 `json:"version"`
}

// Brick is one brick of a volume, in command-line order.
type Brick struct {
	// ID names the brick in its subvolume's Raft group: b0, b1, ... in
	// command-line order; a replacement brick gets the next free number.
	ID        string `json:"id"`
	ServerID  string `json:"server_id"`
	Host      string `json:"host"`
	Path      string `json:"path"`
	Port      int    `json:"port"`
	Subvolume int    `json:"subvolume"`
	// Replacement marks a brick that joined an existing replica set
	// (replace-brick): it waits to be added to the set's Raft group and
	// never founds one.
	Replacement bool `json:"replacement,omitempty"`
}

// Name is the brick as the CLI writes it: host:/path.
func (b Brick) Name() string { return b.Host + ":" + b.Path }

// brickIndex finds a brick by id, or -1.
func (v *Volume) brickIndex(id string) int {
	for i, b := range v.Bricks {
		if b.ID == id {
			return i
		}
	}
	return -1
}

// NextBrickID is the id a new brick of v gets: b<N> with N one above the
// highest in use.
func (v *Volume) NextBrickID() string {
	max := -1
	for _, b := range v.Bricks {
		var n int
		if _, err := fmt.Sscanf(b.ID, "b%d", &n); err == nil && n > max {
			max = n
		}
	}
	return fmt.Sprintf("b%d", max+1)
}

// SetSize is the number of bricks in one subvolume.
func (v *Volume) SetSize() int {
	switch {
	case v.Disperse > 0:
		return v.Disperse
	case v.Replica > 0:
		return v.Replica
	}
	return 1
}

// Subvolumes is the number of subvolumes (replica or disperse sets).
func (v *Volume) Subvolumes() int { return len(v.Bricks) / v.SetSize() }

// Type is Gluster's name for the volume's shape.
func (v *Volume) Type() string {
	distributed := v.Subvolumes() > 1
	switch {
	case v.Disperse > 0 && distributed:
		return "Distributed-Disperse"
	case v.Disperse > 0:
		return "Disperse"
	case v.Replica > 1 && distributed:
		return "Distributed-Replicate"
	case v.Replica > 1:
		return "Replicate"
	}
	return "Distribute"
}

// Option returns the effective value of key: set or default.
func (v *Volume) Option(key string) string {
	if val, ok := v.Options[key]; ok {
		return val
	}
	if o, ok := LookupOption(key); ok {
		return o.Default
	}
	return ""
}

// NewState returns an empty state.
func NewState() *State {
	return &State{Peers: map[string]*Peer{}, Volumes: map[string]*Volume{}}
}

// Clone returns a deep copy of s.
func (s *State) Clone() *State {
	c := &State{PoolID: s.PoolID, Voters: s.Voters, Peers: make(map[string]*Peer, len(s.Peers)), Volumes: make(map[string]*Volume, len(s.Volumes))}
	for id, p := range s.Peers {
		cp := *p
		c.Peers[id] = &cp
	}
	for name, v := range s.Volumes {
		c.Volumes[name] = v.Clone()
	}
	return c
}

// Clone returns a deep copy of v.
func (v *Volume) Clone() *Volume {
	c := *v
	c.Bricks = append([]Brick(nil), v.Bricks...)
	c.Partitions = append([]int(nil), v.Partitions...)
	if v.Options != nil {
		c.Options = make(map[string]string, len(v.Options))
		for k, val := range v.Options {
			c.Options[k] = val
		}
	}
	return &c
}

// PeerByAddress finds a peer by host:port, or by host alone when exactly
// one peer has that host.
func (s *State) PeerByAddress(addr string) (*Peer, error) {
	var byHost []*Peer
	for _, p := range s.Peers {
		if p.Address == addr {
			return p, nil
		}
		if p.Host() == addr {
			byHost = append(byHost, p)
		}
	}
	switch len(byHost) {
	case 0:
		return nil, ErrNotFound
	case 1:
		return byHost[0], nil
	}
	return nil, ErrInvalid
}

// BrickHost is the host a brick listens on: its server's, whatever form
// the admin typed when creating the volume.
func (s *State) BrickHost(b Brick) string {
	if p, ok := s.Peers[b.ServerID]; ok {
		return p.Host()
	}
	return b.Host
}

// BrickAddress is the host:port a brick listens on.
func (s *State) BrickAddress(b Brick) string {
	return net.JoinHostPort(s.BrickHost(b), strconv.Itoa(b.Port))
}

// SortedPeers returns the peers ordered by address.
func (s *State) SortedPeers() []*Peer {
	out := make([]*Peer, 0, len(s.Peers))
	for _, p := range s.Peers {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// SortedVolumes returns the volumes ordered by name.
func (s *State) SortedVolumes() []*Volume {
	out := make([]*Volume, 0, len(s.Volumes))
	for _, v := range s.Volumes {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// BricksOn lists the bricks of every volume hosted by the peer.
func (s *State) BricksOn(peerID string) []string {
	var out []string
	for _, v := range s.SortedVolumes() {
		for _, b := range v.Bricks {
			if b.ServerID == peerID {
				out = append(out, v.Name+" "+b.Name())
			}
		}
	}
	return out
}

// pathWithin reports whether a is b or lies under b (both clean, absolute).
func pathWithin(a, b string) bool {
	return a == b || strings.HasPrefix(a, strings.TrimSuffix(b, "/")+"/")
}
