package server

import (
	"strconv"
	"sync"
	"time"

	"github.com/dfsproject/dfs/brick"
	"github.com/dfsproject/dfs/pkg/wire"
	"github.com/dfsproject/dfs/proto/dfspb"
	"github.com/dfsproject/dfs/volume"
)

// brickHost runs the bricks that the state says this server should run:
// every brick on this server of every started volume. It reconciles after
// each state change. A brick that fails to start stays down, with its
// error shown by `volume status`, until the volume's version changes
// (`volume start VOL force` bumps it), as Gluster leaves a dead brick
// alone until start force.
type brickHost struct {
	s *Server

	mu      sync.Mutex
	running map[string]*hostedBrick // by brickKey
}

type hostedBrick struct {
	volumeID string
	path     string
	port     int
	version  uint64 // volume version when last (re)started
	b        *brick.Brick
	err      error
}

func newBrickHost(s *Server) *brickHost {
	return &brickHost{s: s, running: map[string]*hostedBrick{}}
}

func (h *brickHost) run(stop <-chan struct{}) {
	fsm := h.s.mgr.FSM()
	for {
		changed := fsm.Changed()
		h.reconcile(h.s.mgr.LocalState())
		select {
		case <-stop:
			return
		case <-changed:
		case <-time.After(5 * time.Second):
		}
	}
}

func (h *brickHost) reconcile(st *volume.State) {
	want := map[string]bool{}
	for _, v := range st.Volumes {
		if v.State != volume.Started || v.Disperse > 0 {
			continue
		}
		for _, b := range v.Bricks {
			if b.ServerID != h.s.id {
				continue
			}
			key := brickKey(v.ID, b.Path)
			want[key] = true
			h.mu.Lock()
			hb := h.running[key]
			h.mu.Unlock()
			reserve, _ := strconv.Atoi(v.Option("storage.reserve"))
			if hb != nil && (hb.b != nil || hb.version == v.Version) {
				if hb.b != nil {
					hb.b.SetReservePercent(reserve)
					hb.b.SetScrubConfig(scrubConfigOf(v))
				}
				continue
			}
			hb = &hostedBrick{volumeID: v.ID, path: b.Path, port: b.Port, version: v.Version}
			hb.b, hb.err = brick.Start(brick.Config{
				VolumeID:       v.ID,
				Path:           b.Path,
				Address:        st.BrickAddress(b),
				ID:             b.ID,
				Members:        members(st, v, b.Subvolume),
				Join:           b.Replacement,
				ReservePercent: reserve,
				Logger:         h.s.cfg.Logger.With("volume", v.Name, "brick", b.Path),
				NoSync:         h.s.cfg.NoSync,
				ServerOptions:  append(h.s.cfg.Metrics.ServerOptions(), wire.ServerOptions()...),
			})
			if hb.err != nil {
				h.s.cfg.Logger.Error("brick failed to start", "volume", v.Name, "brick", b.Path, "err", hb.err)
			} else {
				hb.b.SetScrubConfig(scrubConfigOf(v))
				h.s.cfg.Logger.Info("brick started", "volume", v.Name, "brick", b.Path, "port", b.Port)
			}
			h.mu.Lock()
			h.running[key] = hb
			h.mu.Unlock()
		}
	}
	h.mu.Lock()
	var stale []*hostedBrick
	for key, hb := range h.running {
		if !want[key] {
			stale = append(stale, hb)
			delete(h.running, key)
		}
	}
	h.mu.Unlock()
	// A brick leaves the heartbeat (shows offline) when its close begins;
	// its store may stay locked a moment longer (a Raft leadership
	// hand-over first). Keeping it listed until Close returned made
	// volume stop show bricks online for over 30 s in one chaos run.
	for _, hb := range stale {
		if hb.b != nil {
			hb.b.Close()
			h.s.cfg.Logger.Info("brick stopped", "brick", hb.path)
		}
	}
}

// states reports every hosted brick for the heartbeat.
func (h *brickHost) states() []*dfspb.BrickState {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*dfspb.BrickState, 0, len(h.running))
	for _, hb := range h.running {
		bs := &dfspb.BrickState{VolumeId: hb.volumeID, Path: hb.path, Port: uint32(hb.port), Online: hb.b != nil}
		if hb.err != nil {
			bs.Error = hb.err.Error()
		}
		if hb.b != nil {
			bs.Role, bs.LeaderAddress = hb.b.Role()
			bs.AppliedIndex = hb.b.AppliedIndex()
			bs.Scrub = hb.b.ScrubStatus()
		}
		if u, err := brick.DiskUsage(hb.path); err == nil {
			bs.TotalBytes, bs.FreeBytes, bs.TotalInodes, bs.FreeInodes = u.TotalBytes, u.FreeBytes, u.TotalInodes, u.FreeInodes
			bs.FsType, bs.Device = u.FSType, u.Device
		}
		out = append(out, bs)
	}
	return out
}

// closeAll stops every brick.
func (h *brickHost) closeAll() {
	h.mu.Lock()
	all := h.running
	h.running = map[string]*hostedBrick{}
	h.mu.Unlock()
	for _, hb := range all {
		if hb.b != nil {
			hb.b.Close()
		}
	}
}

// members maps the brick ids of one subvolume to their addresses.
func members(st *volume.State, v *volume.Volume, subvolume int) map[string]string {
	out := map[string]string{}
	for _, b := range v.Bricks {
		if b.Subvolume != subvolume {
			continue
		}
		out[b.ID] = st.BrickAddress(b)
	}
	return out
}
