package server

import (
	"sync"
	"time"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// tracker is the leader's view of which servers and bricks are alive,
// built from heartbeats. It is not replicated: a new leader starts empty
// and learns within one heartbeat interval.
type tracker struct {
	stale time.Duration

	mu      sync.Mutex
	servers map[string]beat
}

type beat struct {
	at      time.Time
	pid     int64
	address string
	bricks  map[string]*dfspb.BrickState // by volume id + path
}

func newTracker(stale time.Duration) *tracker {
	return &tracker{stale: stale, servers: map[string]beat{}}
}

func brickKey(volumeID, path string) string { return volumeID + "\x00" + path }

func (t *tracker) record(req *dfspb.HeartbeatRequest, now time.Time) {
	b := beat{at: now, pid: req.Pid, address: req.Address, bricks: map[string]*dfspb.BrickState{}}
	for _, bs := range req.Bricks {
		b.bricks[brickKey(bs.VolumeId, bs.Path)] = bs
	}
	t.mu.Lock()
	t.servers[req.ServerId] = b
	t.mu.Unlock()
}

// alive reports whether the server was heard from recently, and when.
func (t *tracker) alive(serverID string, now time.Time) (ok bool, lastSeen time.Duration, known bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, known := t.servers[serverID]
	if !known {
		return false, 0, false
	}
	age := now.Sub(b.at)
	return age <= t.stale, age, true
}

// brick returns the last reported state of a brick and its server's pid,
// or nil when its server is silent.
func (t *tracker) brick(serverID, volumeID, path string, now time.Time) (*dfspb.BrickState, int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.servers[serverID]
	if !ok || now.Sub(b.at) > t.stale {
		return nil, 0
	}
	return b.bricks[brickKey(volumeID, path)], b.pid
}
