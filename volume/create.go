package volume

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/dfsproject/dfs/pkg/layout"
)

// Limits and defaults of volume creation.
const (
	// DefaultPartitions is the partition count of a new volume's layout.
	DefaultPartitions = 1024
	// FirstBrickPort is the lowest port handed to a brick, as in Gluster.
	FirstBrickPort = 49152
	maxNameLen     = 64
	maxReplica     = 16
	maxDisperse    = 32
)

// CreateRequest is `dfs volume create` after argument parsing.
type CreateRequest struct {
	Name       string
	Replica    int
	Disperse   int
	Redundancy int
	Bricks     []BrickSpec
	Force      bool
	Partitions int
}

// BrickSpec is one HOST:/PATH argument.
type BrickSpec struct {
	Host string
	Path string
}

// PlanCreate checks req against the pool and returns the volume to record,
// with warnings to show the admin. It is pure: the brick directories are
// checked by their servers afterwards.
func PlanCreate(s *State, req CreateRequest, id string, now int64) (*Volume, []string, error) {
	var warnings []string
	if err := CheckName(req.Name); err != nil {
		return nil, nil, err
	}
	if _, ok := s.Volumes[req.Name]; ok {
		return nil, nil, Errorf(ErrExists, "volume %s already exists", req.Name)
	}
	if len(req.Bricks) == 0 {
		return nil, nil, invalidf("no bricks given; name at least one HOST:/PATH")
	}
	v := &Volume{ID: id, Name: req.Name, State: Created, Created: now, Version: 1}
	switch {
	case req.Replica != 0 && (req.Disperse != 0 || req.Redundancy != 0):
		return nil, nil, invalidf("replica and disperse cannot be combined")
	case req.Replica != 0:
		if req.Replica < 2 || req.Replica > maxReplica {
			return nil, nil, invalidf("replica count must be from 2 to %d, not %d", maxReplica, req.Replica)
		}
		v.Replica = req.Replica
		if req.Replica == 2 {
			warnings = append(warnings, "Replica 2 volumes cannot write while one brick of a pair is down (a majority of 2 is 2). Use replica 3 to keep writing through the loss of a brick.")
		}
	case req.Disperse != 0 || req.Redundancy != 0:
		n, m := req.Disperse, req.Redundancy
		if n == 0 {
			n = len(req.Bricks)
		}
		if n < 3 || n > maxDisperse {
			return nil, nil, invalidf("disperse count must be from 3 to %d, not %d", maxDisperse, n)
		}
		if m == 0 {
			m = (n - 1) / 2
			if m > n/3 && n > 4 {
				m = n / 3
			}
			if m < 1 {
				m = 1
			}
			warnings = append(warnings, fmt.Sprintf("Redundancy not given; using %d (each set survives the loss of %d bricks).", m, m))
		}
		if m < 1 || 2*m >= n {
			return nil, nil, invalidf("redundancy must be at least 1 and less than half the disperse count (%d), not %d", n, m)
		}
		v.Disperse, v.Redundancy = n, m
	}
	set := v.SetSize()
	if len(req.Bricks)%set != 0 {
		return nil, nil, invalidf("%d bricks is not a multiple of the %s count %d", len(req.Bricks), setKind(v), set)
	}

	type placed struct {
		server, path string
	}
	var seen []placed
	for i, spec := range req.Bricks {
		p, err := s.PeerByAddress(spec.Host)
		if errors.Is(err, ErrInvalid) {
			return nil, nil, invalidf("brick %s:%s: more than one server of the pool is on host %s; give HOST:PORT", spec.Host, spec.Path, spec.Host)
		}
		if err != nil {
			return nil, nil, invalidf("brick %s:%s: host %s is not in the pool; add it with 'dfs peer probe %s'", spec.Host, spec.Path, spec.Host, spec.Host)
		}
		clean, err := checkBrickPath(spec.Path)
		if err != nil {
			return nil, nil, invalidf("brick %s:%s: %v", spec.Host, spec.Path, err)
		}
		for _, o := range seen {
			if o.server != p.ID {
				continue
			}
			switch {
			case o.path == clean:
				return nil, nil, invalidf("brick %s:%s is given twice", spec.Host, clean)
			case pathWithin(clean, o.path) || pathWithin(o.path, clean):
				return nil, nil, invalidf("bricks %s:%s and %s:%s are nested; a brick cannot hold another", spec.Host, o.path, spec.Host, clean)
			}
		}
		for _, other := range s.SortedVolumes() {
			for _, b := range other.Bricks {
				if b.ServerID == p.ID && (pathWithin(clean, b.Path) || pathWithin(b.Path, clean)) {
					return nil, nil, invalidf("brick %s:%s overlaps brick %s of volume %s", spec.Host, clean, b.Name(), other.Name)
				}
			}
		}
		seen = append(seen, placed{p.ID, clean})
		v.Bricks = append(v.Bricks, Brick{ID: fmt.Sprintf("b%d", i), ServerID: p.ID, Host: spec.Host, Path: clean, Subvolume: i / set})
	}
	if set > 1 {
		for sv := 0; sv < len(v.Bricks)/set; sv++ {
			servers := map[string]bool{}
			for _, b := range v.Bricks[sv*set : (sv+1)*set] {
				if servers[b.ServerID] && !req.Force {
					return nil, nil, invalidf("subvolume %d has two bricks on server %s: losing that server loses both; add 'force' to create it anyway", sv, b.Host)
				}
				servers[b.ServerID] = true
			}
		}
	}
	parts := req.Partitions
	if parts == 0 {
		parts = DefaultPartitions
	}
	l, err := layout.New(id, parts, v.Subvolumes())
	if err != nil {
		return nil, nil, invalidf("partitions: %v", err)
	}
	v.Partitions = l.Partitions
	assignPorts(s, v)
	return v, warnings, nil
}

// CheckName validates a volume name with Gluster's rules.
func CheckName(name string) error {
	switch {
	case name == "":
		return invalidf("volume name is empty")
	case len(name) > maxNameLen:
		return invalidf("volume name %q is longer than %d characters", name, maxNameLen)
	case name == "all" || name == "help":
		return invalidf("%q is reserved and cannot name a volume", name)
	case name[0] == '-':
		return invalidf("volume name %q cannot start with '-'", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return invalidf("volume name %q may hold only letters, digits, '-' and '_'", name)
		}
	}
	return nil
}

func checkBrickPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("path must be absolute")
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "." {
			return "", fmt.Errorf("path may not contain . or ..")
		}
	}
	clean := path.Clean(p)
	if clean == "/" {
		return "", fmt.Errorf("the root directory cannot be a brick")
	}
	if len(clean) > 1024 {
		return "", fmt.Errorf("path longer than 1024 bytes")
	}
	return clean, nil
}

func setKind(v *Volume) string {
	if v.Disperse > 0 {
		return "disperse"
	}
	return "replica"
}

// assignPorts gives each brick of v without a port (Port 0) the lowest
// port that no other brick uses on the same host (servers may share a
// host on different ports). Bricks with a port keep it.
func assignPorts(s *State, v *Volume) {
	hostOf := func(serverID string) string {
		if p, ok := s.Peers[serverID]; ok {
			return p.Host()
		}
		return serverID
	}
	used := map[string]map[int]bool{}
	mark := func(host string, port int) {
		if used[host] == nil {
			used[host] = map[int]bool{}
		}
		used[host][port] = true
	}
	for _, other := range s.Volumes {
		if other.Name == v.Name {
			continue
		}
		for _, b := range other.Bricks {
			mark(hostOf(b.ServerID), b.Port)
		}
	}
	for _, b := range v.Bricks {
		if b.Port != 0 {
			mark(hostOf(b.ServerID), b.Port)
		}
	}
	for i := range v.Bricks {
		b := &v.Bricks[i]
		if b.Port != 0 {
			continue
		}
		host := hostOf(b.ServerID)
		port := FirstBrickPort
		for used[host][port] {
			port++
		}
		b.Port = port
		mark(host, port)
	}
}

func invalidf(format string, args ...any) error {
	return Errorf(ErrInvalid, "%s", fmt.Sprintf(format, args...))
}

// ReplaceRequest is `dfs volume replace-brick VOL OLD NEW commit force`.
type ReplaceRequest struct {
	Name     string
	Old, New BrickSpec
	Force    bool
}

// PlanReplace checks a replace-brick against the state and returns the
// id of the old brick and the new brick to record (its port is assigned
// when the change is applied).
func PlanReplace(s *State, req ReplaceRequest) (oldID string, nb *Brick, err error) {
	v, ok := s.Volumes[req.Name]
	if !ok {
		return "", nil, Errorf(ErrNotFound, "volume %s does not exist", req.Name)
	}
	if v.Disperse > 0 || v.Replica < 2 {
		return "", nil, invalidf("replace-brick needs a replicated volume; %s is %s", req.Name, v.Type())
	}
	if !req.Force {
		return "", nil, invalidf("only 'commit force' is supported: dfs volume replace-brick %s OLD NEW commit force", req.Name)
	}
	oldPeer, err := s.PeerByAddress(req.Old.Host)
	var old *Brick
	if err == nil {
		for i, b := range v.Bricks {
			if b.ServerID == oldPeer.ID && b.Path == req.Old.Path {
				old = &v.Bricks[i]
			}
		}
	}
	if old == nil {
		return "", nil, invalidf("%s:%s is not a brick of volume %s ('dfs volume info %s' lists them)", req.Old.Host, req.Old.Path, req.Name, req.Name)
	}
	p, err := s.PeerByAddress(req.New.Host)
	if err != nil {
		return "", nil, invalidf("brick %s:%s: host %s is not in the pool; add it with 'dfs peer probe %s'", req.New.Host, req.New.Path, req.New.Host, req.New.Host)
	}
	clean, err := checkBrickPath(req.New.Path)
	if err != nil {
		return "", nil, invalidf("brick %s:%s: %v", req.New.Host, req.New.Path, err)
	}
	for _, other := range s.SortedVolumes() {
		for _, b := range other.Bricks {
			if b.ServerID == p.ID && (pathWithin(clean, b.Path) || pathWithin(b.Path, clean)) {
				return "", nil, invalidf("brick %s:%s overlaps brick %s of volume %s", req.New.Host, clean, b.Name(), other.Name)
			}
		}
	}
	return old.ID, &Brick{ID: v.NextBrickID(), ServerID: p.ID, Host: req.New.Host, Path: clean, Subvolume: old.Subvolume, Replacement: true}, nil
}
