package server

// Monitoring: the server's metrics registry serves /metrics and
// /debug/pprof/ on the server's own port (HTTP GET and HEAD, see
// pkg/mux), counts every gRPC call of the server and of its bricks, and
// reads the gauges below at each scrape.

import (
	"strconv"

	"github.com/dfsproject/dfs/brick"
	"github.com/dfsproject/dfs/pkg/metrics"
)

var brickLabels = []string{"volume", "brick"}

// gauges are what a server reports of its manager member and its bricks.
// A brick is labelled by its volume's name and its path on this server
// (the server itself is Prometheus's instance label).
var gauges = []metrics.Gauge{
	{Name: "dfs_manager_is_leader", Help: "1 if this server leads the volume-manager Raft group, else 0."},
	{Name: "dfs_manager_peers", Help: "Members (voters and non-voters) of the volume-manager Raft group, as this server knows them."},
	{Name: "dfs_brick_up", Help: "1 if the brick runs on this server, 0 if it failed to start (see volume status).", Labels: brickLabels},
	{Name: "dfs_brick_is_leader", Help: "1 if the brick leads its subvolume's Raft group, else 0.", Labels: brickLabels},
	{Name: "dfs_brick_raft_term", Help: "Current Raft term of the brick's subvolume group.", Labels: brickLabels},
	{Name: "dfs_brick_last_log_index", Help: "Index of the last entry in the brick's Raft log.", Labels: brickLabels},
	{Name: "dfs_brick_commit_index", Help: "Highest Raft index the brick knows to be committed.", Labels: brickLabels},
	{Name: "dfs_brick_applied_index", Help: "Raft index up to which the brick's store is current.", Labels: brickLabels},
	{Name: "dfs_brick_free_bytes", Help: "Free bytes of the file system holding the brick.", Labels: brickLabels},
	{Name: "dfs_brick_size_bytes", Help: "Size in bytes of the file system holding the brick.", Labels: brickLabels},
}

// readGauges reports the gauges; it runs at every scrape.
func (s *Server) readGauges(set metrics.SetFunc) {
	set("dfs_manager_is_leader", bool01(s.mgr.IsLeader()))
	if ms, err := s.mgr.Members(); err == nil {
		set("dfs_manager_peers", float64(len(ms)))
	}
	names := map[string]string{} // volume id -> name
	for _, v := range s.mgr.LocalState().Volumes {
		names[v.ID] = v.Name
	}
	s.bricks.mu.Lock()
	hosted := make([]*hostedBrick, 0, len(s.bricks.running))
	for _, hb := range s.bricks.running {
		hosted = append(hosted, hb)
	}
	s.bricks.mu.Unlock()
	for _, hb := range hosted {
		vol := names[hb.volumeID]
		if vol == "" {
			vol = hb.volumeID
		}
		set("dfs_brick_up", bool01(hb.b != nil), vol, hb.path)
		if u, err := brick.DiskUsage(hb.path); err == nil {
			set("dfs_brick_free_bytes", float64(u.FreeBytes), vol, hb.path)
			set("dfs_brick_size_bytes", float64(u.TotalBytes), vol, hb.path)
		}
		if hb.b == nil {
			continue
		}
		st := hb.b.RaftStats()
		set("dfs_brick_is_leader", bool01(st["state"] == "Leader"), vol, hb.path)
		for gauge, key := range map[string]string{
			"dfs_brick_raft_term":      "term",
			"dfs_brick_last_log_index": "last_log_index",
			"dfs_brick_commit_index":   "commit_index",
		} {
			if n, err := strconv.ParseUint(st[key], 10, 64); err == nil {
				set(gauge, float64(n), vol, hb.path)
			}
		}
		set("dfs_brick_applied_index", float64(hb.b.AppliedIndex()), vol, hb.path)
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
