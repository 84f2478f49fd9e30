package server

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/proto/dfspb"
	"github.com/dfsproject/dfs/volume"
)

// managerService implements the Manager gRPC service. Each method forwards
// to the leader (viaLeader) unless it can answer from local state.
type managerService struct {
	dfspb.UnimplementedManagerServer
	s *Server
}

var _ dfspb.ManagerServer = (*managerService)(nil)

// peerCallTimeout bounds one call from the leader to another server.
const peerCallTimeout = 5 * time.Second

func (m *managerService) PeerProbe(ctx context.Context, req *dfspb.PeerProbeRequest) (*dfspb.PeerProbeResponse, error) {
	return viaLeader(m.s, ctx, func(ctx context.Context) (*dfspb.PeerProbeResponse, error) { return m.s.peerProbe(ctx, req) },
		func(ctx context.Context, c dfspb.ManagerClient) (*dfspb.PeerProbeResponse, error) {
			return c.PeerProbe(ctx, req)
		})
}

func (m *managerService) PeerDetach(ctx context.Context, req *dfspb.PeerDetachRequest) (*dfspb.PeerDetachResponse, error) {
	return viaLeader(m.s, ctx, func(ctx context.Context) (*dfspb.PeerDetachResponse, error) { return m.s.peerDetach(ctx, req) },
		func(ctx context.Context, c dfspb.ManagerClient) (*dfspb.PeerDetachResponse, error) {
			return c.PeerDetach(ctx, req)
		})
}

func (m *managerService) PeerList(ctx context.Context, req *dfspb.PeerListRequest) (*dfspb.PeerListResponse, error) {
	return viaLeader(m.s, ctx, m.s.peerList,
		func(ctx context.Context, c dfspb.ManagerClient) (*dfspb.PeerListResponse, error) {
			return c.PeerList(ctx, req)
		})
}

func (m *managerService) VolumeCreate(ctx context.Context, req *dfspb.VolumeCreateRequest) (*dfspb.VolumeCreateResponse, error) {
	return viaLeader(m.s, ctx, func(ctx context.Context) (*dfspb.VolumeCreateResponse, error) { return m.s.volumeCreate(ctx, req) },
		func(ctx context.Context, c dfspb.ManagerClient) (*dfspb.VolumeCreateResponse, error) {
			return c.VolumeCreate(ctx, req)
		})
}

func (m *managerService) VolumeStart(ctx context.Context, req *dfspb.VolumeStartRequest) (*dfspb.VolumeStartResponse, error) {
	return viaLeader(m.s, ctx, func(ctx context.Context) (*dfspb.VolumeStartResponse, error) { return m.s.volumeStart(ctx, req) },
		func(ctx context.Context, c dfspb.ManagerClient) (*dfspb.VolumeStartResponse, error) {
			return c.VolumeStart(ctx, req)
		})
}

func (m *managerService) VolumeStop(ctx context.Context, req *dfspb.VolumeStopRequest) (*dfspb.VolumeStopResponse, error) {
	return viaLeader(m.s, ctx, func(ctx context.Context) (*dfspb.VolumeStopResponse, error) { return m.s.volumeStop(ctx, req) },
		func(ctx context.Context, c dfspb.ManagerClient) (*dfspb.VolumeStopResponse, error) {
			return c.VolumeStop(ctx, req)
		})
}

func (m *managerService) VolumeDelete(ctx context.Context, req *dfspb.VolumeDeleteRequest) (*dfspb.VolumeDeleteResponse, error) {
	return viaLeader(m.s, ctx, func(ctx context.Context) (*dfspb.VolumeDeleteResponse, error) { return m.s.volumeDelete(ctx, req) },
		func(ctx context.Context, c dfspb.ManagerClient) (*dfspb.VolumeDeleteResponse, error) {
			return c.VolumeDelete(ctx, req)
		})
}

func (m *managerService) VolumeInfo(ctx context.Context, req *dfspb.VolumeInfoRequest) (*dfspb.VolumeInfoResponse, error) {
	return viaLeader(m.s, ctx, func(ctx context.Context) (*dfspb.VolumeInfoResponse, error) { return m.s.volumeInfo(ctx, req) },
		func(ctx context.Context, c dfspb.ManagerClient) (*dfspb.VolumeInfoResponse, error) {
			return c.VolumeInfo(ctx, req)
		})
}

func (m *managerService) VolumeStatus(ctx context.Context, req *dfspb.VolumeStatusRequest) (*dfspb.VolumeStatusResponse, error) {
	return viaLeader(m.s, ctx, func(ctx context.Context) (*dfspb.VolumeStatusResponse, error) { return m.s.volumeStatus(ctx, req) },
		func(ctx context.Context, c dfspb.ManagerClient) (*dfspb.VolumeStatusResponse, error) {
			return c.VolumeStatus(ctx, req)
		})
}

func (m *managerService) VolumeSet(ctx context.Context, req *dfspb.VolumeSetRequest) (*dfspb.VolumeSetResponse, error) {
	return viaLeader(m.s, ctx, func(ctx context.Context) (*dfspb.VolumeSetResponse, error) { return m.s.volumeSet(ctx, req) },
		func(ctx context.Context, c dfspb.ManagerClient) (*dfspb.VolumeSetResponse, error) {
			return c.VolumeSet(ctx, req)
		})
}

func (m *managerService) VolumeGet(ctx context.Context, req *dfspb.VolumeGetRequest) (*dfspb.VolumeGetResponse, error) {
	return viaLeader(m.s, ctx, func(ctx context.Context) (*dfspb.VolumeGetResponse, error) { return m.s.volumeGet(ctx, req) },
		func(ctx context.Context, c dfspb.ManagerClient) (*dfspb.VolumeGetResponse, error) {
			return c.VolumeGet(ctx, req)
		})
}

func (m *managerService) VolumeReset(ctx context.Context, req *dfspb.VolumeResetRequest) (*dfspb.VolumeResetResponse, error) {
	return viaLeader(m.s, ctx, func(ctx context.Context) (*dfspb.VolumeResetResponse, error) { return m.s.volumeReset(ctx, req) },
		func(ctx context.Context, c dfspb.ManagerClient) (*dfspb.VolumeResetResponse, error) {
			return c.VolumeReset(ctx, req)
		})
}

func (m *managerService) Heartbeat(ctx context.Context, req *dfspb.HeartbeatRequest) (*dfspb.HeartbeatResponse, error) {
	return viaLeader(m.s, ctx, func(ctx context.Context) (*dfspb.HeartbeatResponse, error) {
		m.s.tracker.record(req, time.Now())
		return &dfspb.HeartbeatResponse{}, nil
	}, func(ctx context.Context, c dfspb.ManagerClient) (*dfspb.HeartbeatResponse, error) {
		return c.Heartbeat(ctx, req)
	})
}

// GetLayout answers from this server's copy of the state: layouts change
// rarely and carry a version, so a client that sees an old one learns the
// new one from WatchLayout moments later.
func (m *managerService) GetLayout(ctx context.Context, req *dfspb.GetLayoutRequest) (*dfspb.VolumeLayout, error) {
	st := m.s.mgr.LocalState()
	v, ok := st.Volumes[req.Volume]
	if !ok {
		return nil, m.notFound(ctx, req.Volume)
	}
	if v.State != volume.Started {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not started; start it with 'dfs volume start %s'", req.Volume, req.Volume)
	}
	return layoutToProto(st, v), nil
}

// WatchLayout streams the volume's layout: the current one, then each new
// version, including stop (state STOPPED). It ends when the volume is
// deleted (NotFound) or the client goes away.
func (m *managerService) WatchLayout(req *dfspb.GetLayoutRequest, stream dfspb.Manager_WatchLayoutServer) error {
	fsm := m.s.mgr.FSM()
	sent := req.AfterVersion
	for {
		changed := fsm.Changed()
		st := m.s.mgr.LocalState()
		v, ok := st.Volumes[req.Volume]
		if !ok {
			if err := m.notFound(stream.Context(), req.Volume); status.Code(err) != codes.Unavailable {
				return err
			}
			// Not known here yet (a server that restarted replays the
			// pool's log): wait for the state to change.
			select {
			case <-stream.Context().Done():
				return stream.Context().Err()
			case <-m.s.stop:
				return status.Error(codes.Unavailable, "server shutting down")
			case <-changed:
			}
			continue
		}
		if v.Version > sent {
			if err := stream.Send(layoutToProto(st, v)); err != nil {
				return err
			}
			sent = v.Version
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-m.s.stop:
			return status.Error(codes.Unavailable, "server shutting down")
		case <-changed:
		}
	}
}

// notFound is the answer for a volume this server's state does not hold:
// NotFound once the manager leader confirms it does not exist, Unavailable
// when the leader knows it (this server lags: it restarted and has not
// replayed the pool's log yet, and a client told NotFound would take the
// volume for deleted) or cannot be asked.
func (m *managerService) notFound(ctx context.Context, name string) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := m.VolumeInfo(cctx, &dfspb.VolumeInfoRequest{Name: name})
	switch status.Code(err) {
	case codes.NotFound:
		return status.Errorf(codes.NotFound, "volume %s does not exist", name)
	case codes.OK:
		return status.Errorf(codes.Unavailable, "volume %s: this server's state is behind the pool's; try another server or again", name)
	}
	return status.Errorf(codes.Unavailable, "volume %s: not in this server's state, and the manager leader cannot confirm it: %v", name, err)
}

// normalizeAddress adds the default port to a bare host.
func normalizeAddress(addr string) (string, error) {
	if addr == "" {
		return "", volume.Errorf(volume.ErrInvalid, "empty host")
	}
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr, nil
	}
	return net.JoinHostPort(addr, DefaultPort), nil
}

func (s *Server) peerProbe(ctx context.Context, req *dfspb.PeerProbeRequest) (*dfspb.PeerProbeResponse, error) {
	addr, err := normalizeAddress(req.Address)
	if err != nil {
		return nil, err
	}
	st, err := s.mgr.LeaderState(ctx)
	if err != nil {
		return nil, err
	}
	if p, err := st.PeerByAddress(addr); err == nil {
		return &dfspb.PeerProbeResponse{Peer: s.peerToProto(st, p), Already: true}, nil
	}
	pc, err := s.peerClient(addr)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, peerCallTimeout)
	defer cancel()
	id, err := pc.Identity(cctx, &dfspb.IdentityRequest{})
	if err != nil {
		return nil, volume.Errorf(errPeerUnreachable, "cannot reach a dfs server at %s (%s); start it there with 'dfs server --listen %s'", addr, status.Convert(err).Message(), addr)
	}
	if p, ok := st.Peers[id.ServerId]; ok {
		return &dfspb.PeerProbeResponse{Peer: s.peerToProto(st, p), Already: true}, nil
	}
	if id.PoolSize > 1 {
		return nil, volume.Errorf(volume.ErrBusy, "%s is already in another pool of %d servers; detach it there first", addr, id.PoolSize)
	}
	if id.VolumeCount > 0 {
		return nil, volume.Errorf(volume.ErrBusy, "%s has %d volume(s) of its own; delete them before it joins this pool", addr, id.VolumeCount)
	}
	if _, err := pc.Join(cctx, &dfspb.JoinRequest{PoolId: st.PoolID, LeaderAddress: s.cfg.Listen}); err != nil {
		return nil, volume.Errorf(volume.ErrBusy, "%s refused to join: %s", addr, status.Convert(err).Message())
	}
	p, err := s.mgr.AddPeer(ctx, id.ServerId, id.Address)
	if err != nil {
		return nil, err
	}
	st, _ = s.mgr.LeaderState(ctx)
	if st == nil {
		st = volume.NewState()
	}
	return &dfspb.PeerProbeResponse{Peer: s.peerToProto(st, p)}, nil
}

func (s *Server) peerDetach(ctx context.Context, req *dfspb.PeerDetachRequest) (*dfspb.PeerDetachResponse, error) {
	addr, err := normalizeAddress(req.Address)
	if err != nil {
		return nil, err
	}
	st, err := s.mgr.LeaderState(ctx)
	if err != nil {
		return nil, err
	}
	p, err := st.PeerByAddress(addr)
	if err != nil {
		p, err = st.PeerByAddress(req.Address)
	}
	if err != nil {
		return nil, volume.Errorf(volume.ErrNotFound, "%s is not in the pool ('dfs pool list' shows the peers)", req.Address)
	}
	if bricks := st.BricksOn(p.ID); len(bricks) > 0 && !req.Force {
		return nil, volume.Errorf(volume.ErrBusy, "%s hosts %d brick(s) (%s); move them with replace-brick first, or add 'force'", p.Address, len(bricks), bricks[0])
	}
	if p.ID == s.id {
		if len(st.Peers) == 1 {
			return nil, volume.Errorf(volume.ErrInvalid, "%s is the only server of the pool", p.Address)
		}
		// The leader cannot remove itself cleanly; hand over and let the
		// next leader do it (viaLeader retries).
		if err := s.mgr.TransferLeadership(); err != nil {
			return nil, err
		}
		return nil, volume.ErrNotLeader
	}
	if err := s.mgr.RemovePeer(ctx, p.ID); err != nil {
		return nil, err
	}
	if pc, err := s.peerClient(p.Address); err == nil {
		cctx, cancel := context.WithTimeout(ctx, peerCallTimeout)
		if _, err := pc.Leave(cctx, &dfspb.LeaveRequest{PoolId: st.PoolID}); err != nil {
			s.cfg.Logger.Warn("detached peer was not told to leave; it will still believe it is pooled until restarted with an empty data dir", "peer", p.Address, "err", err)
		}
		cancel()
	}
	return &dfspb.PeerDetachResponse{}, nil
}

func (s *Server) peerList(ctx context.Context) (*dfspb.PeerListResponse, error) {
	st, err := s.mgr.LeaderState(ctx)
	if err != nil {
		return nil, err
	}
	out := &dfspb.PeerListResponse{PoolId: st.PoolID, LeaderId: s.id}
	for _, p := range st.SortedPeers() {
		out.Peers = append(out.Peers, s.peerToProto(st, p))
	}
	return out, nil
}

func (s *Server) peerToProto(st *volume.State, p *volume.Peer) *dfspb.Peer {
	out := &dfspb.Peer{Id: p.ID, Address: p.Address, Voter: p.Voter, LastSeenSeconds: -1}
	if p.ID == s.id {
		out.Connected, out.Leader, out.LastSeenSeconds = true, s.mgr.IsLeader(), 0
		return out
	}
	ok, age, known := s.tracker.alive(p.ID, time.Now())
	out.Connected = ok
	if known {
		out.LastSeenSeconds = int64(age.Seconds())
	}
	return out
}

func (s *Server) volumeCreate(ctx context.Context, req *dfspb.VolumeCreateRequest) (*dfspb.VolumeCreateResponse, error) {
	st, err := s.mgr.LeaderState(ctx)
	if err != nil {
		return nil, err
	}
	creq := volume.CreateRequest{Name: req.Name, Replica: int(req.Replica), Disperse: int(req.Disperse), Redundancy: int(req.Redundancy), Force: req.Force, Partitions: int(req.Partitions)}
	for _, b := range req.Bricks {
		creq.Bricks = append(creq.Bricks, volume.BrickSpec{Host: b.Host, Path: b.Path})
	}
	v, warnings, err := volume.PlanCreate(st, creq, uuid.NewString(), time.Now().Unix())
	if err != nil {
		return nil, err
	}
	prepared, err := s.prepareBricks(ctx, st, v)
	if err != nil {
		s.releaseBricks(ctx, st, v, prepared, false)
		return nil, err
	}
	if err := s.mgr.Propose(ctx, volume.Command{Op: volume.OpCreate, Volume: v}); err != nil {
		s.releaseBricks(ctx, st, v, prepared, false)
		return nil, err
	}
	return &dfspb.VolumeCreateResponse{Volume: volumeToProto(v), Warnings: warnings}, nil
}

// prepared records, per server, the brick directories that server created.
type prepared map[string][]string

// prepareBricks asks every server of the volume to check and mark its
// brick directories. It returns what was prepared so far, for rollback.
func (s *Server) prepareBricks(ctx context.Context, st *volume.State, v *volume.Volume) (prepared, error) {
	done := prepared{}
	for _, serverID := range serversOf(v) {
		p := st.Peers[serverID]
		pc, err := s.peerClient(p.Address)
		if err != nil {
			return done, err
		}
		cctx, cancel := context.WithTimeout(ctx, peerCallTimeout)
		resp, err := pc.PrepareBricks(cctx, &dfspb.PrepareBricksRequest{VolumeId: v.ID, Paths: pathsOn(v, serverID)})
		cancel()
		if err != nil {
			st := status.Convert(err)
			if st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded {
				return done, volume.Errorf(errPeerUnreachable, "server %s hosting bricks is not reachable: %s", p.Address, st.Message())
			}
			return done, status.Error(st.Code(), fmt.Sprintf("on %s: %s", p.Host(), st.Message()))
		}
		done[serverID] = resp.Created
	}
	return done, nil
}

// releaseBricks undoes prepareBricks (purge false) or empties the bricks
// of a deleted volume (purge true), on every server in done.
func (s *Server) releaseBricks(ctx context.Context, st *volume.State, v *volume.Volume, done prepared, purge bool) error {
	var first error
	for serverID, created := range done {
		p, ok := st.Peers[serverID]
		if !ok {
			continue
		}
		pc, err := s.peerClient(p.Address)
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, peerCallTimeout)
			_, err = pc.ReleaseBricks(cctx, &dfspb.ReleaseBricksRequest{VolumeId: v.ID, Paths: pathsOn(v, serverID), Purge: purge, RemoveDirs: created})
			cancel()
		}
		if err != nil {
			s.cfg.Logger.Warn("releasing bricks failed", "server", p.Address, "volume", v.Name, "err", err)
			if first == nil {
				first = err
			}
		}
	}
	return first
}

func serversOf(v *volume.Volume) []string {
	var out []string
	seen := map[string]bool{}
	for _, b := range v.Bricks {
		if !seen[b.ServerID] {
			seen[b.ServerID] = true
			out = append(out, b.ServerID)
		}
	}
	return out
}

func pathsOn(v *volume.Volume, serverID string) []string {
	var out []string
	for _, b := range v.Bricks {
		if b.ServerID == serverID {
			out = append(out, b.Path)
		}
	}
	return out
}

func (s *Server) volumeStart(ctx context.Context, req *dfspb.VolumeStartRequest) (*dfspb.VolumeStartResponse, error) {
	st, err := s.mgr.LeaderState(ctx)
	if err != nil {
		return nil, err
	}
	v, ok := st.Volumes[req.Name]
	switch {
	case !ok:
		return nil, volume.Errorf(volume.ErrNotFound, "volume %s does not exist", req.Name)
	case v.Disperse > 0:
		return nil, volume.Errorf(volume.ErrUnsupported, "volume %s is a disperse volume; erasure coding is not implemented yet, so it cannot be started (it stays recorded and can be started once a dfs release with erasure coding is installed)", req.Name)
	case v.State == volume.Started && !req.Force:
		return nil, volume.Errorf(volume.ErrState, "volume %s already started (use 'force' to restart bricks that are down)", req.Name)
	}
	// With force, re-proposing Started bumps the version, which makes every
	// server retry the bricks that failed to start.
	if err := s.mgr.Propose(ctx, volume.Command{Op: volume.OpSetState, Name: req.Name, State: volume.Started}); err != nil {
		return nil, err
	}
	s.awaitBricks(ctx, v, 5*time.Second)
	return &dfspb.VolumeStartResponse{}, nil
}

// awaitBricks waits, within limit, until every brick of v is reported
// online, so that `volume start` followed by `volume status` shows them up.
func (s *Server) awaitBricks(ctx context.Context, v *volume.Volume, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		all := true
		for _, b := range v.Bricks {
			if bs, _ := s.tracker.brick(b.ServerID, v.ID, b.Path, time.Now()); bs == nil || !bs.Online {
				all = false
				break
			}
		}
		if all {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) volumeStop(ctx context.Context, req *dfspb.VolumeStopRequest) (*dfspb.VolumeStopResponse, error) {
	st, err := s.mgr.LeaderState(ctx)
	if err != nil {
		return nil, err
	}
	v, ok := st.Volumes[req.Name]
	switch {
	case !ok:
		return nil, volume.Errorf(volume.ErrNotFound, "volume %s does not exist", req.Name)
	case v.State != volume.Started && !req.Force:
		return nil, volume.Errorf(volume.ErrState, "volume %s is not started", req.Name)
	}
	if err := s.mgr.Propose(ctx, volume.Command{Op: volume.OpSetState, Name: req.Name, State: volume.Stopped}); err != nil {
		return nil, err
	}
	return &dfspb.VolumeStopResponse{}, nil
}

func (s *Server) volumeDelete(ctx context.Context, req *dfspb.VolumeDeleteRequest) (*dfspb.VolumeDeleteResponse, error) {
	st, err := s.mgr.LeaderState(ctx)
	if err != nil {
		return nil, err
	}
	v, ok := st.Volumes[req.Name]
	if !ok {
		return nil, volume.Errorf(volume.ErrNotFound, "volume %s does not exist", req.Name)
	}
	if v.State == volume.Started {
		return nil, volume.Errorf(volume.ErrState, "volume %s is started; stop it first with 'dfs volume stop %s'", req.Name, req.Name)
	}
	now := time.Now()
	for _, id := range serversOf(v) {
		if id == s.id {
			continue
		}
		if ok, _, _ := s.tracker.alive(id, now); !ok {
			return nil, volume.Errorf(errPeerUnreachable, "server %s, which hosts bricks of %s, is down; bring it back (or detach it with force) before deleting, so its bricks are cleaned up", st.Peers[id].Address, req.Name)
		}
	}
	if err := s.mgr.Propose(ctx, volume.Command{Op: volume.OpDelete, Name: req.Name}); err != nil {
		return nil, err
	}
	all := prepared{}
	for _, id := range serversOf(v) {
		all[id] = nil
	}
	if err := s.releaseBricks(ctx, st, v, all, true); err != nil {
		s.cfg.Logger.Warn("volume deleted, but a brick directory could not be emptied", "volume", v.Name, "err", err)
	}
	return &dfspb.VolumeDeleteResponse{}, nil
}

func (s *Server) volumeInfo(ctx context.Context, req *dfspb.VolumeInfoRequest) (*dfspb.VolumeInfoResponse, error) {
	st, err := s.mgr.LeaderState(ctx)
	if err != nil {
		return nil, err
	}
	out := &dfspb.VolumeInfoResponse{}
	if req.Name != "" && req.Name != "all" {
		v, ok := st.Volumes[req.Name]
		if !ok {
			return nil, volume.Errorf(volume.ErrNotFound, "volume %s does not exist", req.Name)
		}
		out.Volumes = append(out.Volumes, volumeToProto(v))
		return out, nil
	}
	for _, v := range st.SortedVolumes() {
		out.Volumes = append(out.Volumes, volumeToProto(v))
	}
	return out, nil
}

func (s *Server) volumeStatus(ctx context.Context, req *dfspb.VolumeStatusRequest) (*dfspb.VolumeStatusResponse, error) {
	st, err := s.mgr.LeaderState(ctx)
	if err != nil {
		return nil, err
	}
	var vols []*volume.Volume
	if req.Name != "" && req.Name != "all" {
		v, ok := st.Volumes[req.Name]
		if !ok {
			return nil, volume.Errorf(volume.ErrNotFound, "volume %s does not exist", req.Name)
		}
		vols = append(vols, v)
	} else {
		vols = st.SortedVolumes()
	}
	now := time.Now()
	out := &dfspb.VolumeStatusResponse{}
	for _, v := range vols {
		e := &dfspb.VolumeStatusEntry{Name: v.Name, State: lifecycleToProto(v.State)}
		for i := 0; i < v.Subvolumes(); i++ {
			e.Subvolumes = append(e.Subvolumes, &dfspb.SubvolumeStatus{Index: uint32(i)})
		}
		for _, b := range v.Bricks {
			bs := &dfspb.BrickStatus{Host: b.Host, Path: b.Path, Subvolume: uint32(b.Subvolume), ServerId: b.ServerID}
			if rep, pid := s.tracker.brick(b.ServerID, v.ID, b.Path, now); rep != nil {
				bs.Online, bs.Error = rep.Online, rep.Error
				if rep.Online {
					bs.Port, bs.Pid, bs.Role = rep.Port, pid, rep.Role
					if rep.Role == "Leader" {
						e.Subvolumes[b.Subvolume].Leader = b.Name()
					}
				}
				if req.Detail {
					bs.TotalBytes, bs.FreeBytes, bs.TotalInodes, bs.FreeInodes = rep.TotalBytes, rep.FreeBytes, rep.TotalInodes, rep.FreeInodes
					bs.FsType, bs.Device = rep.FsType, rep.Device
				}
			} else if v.State == volume.Started {
				bs.Error = "server not reachable"
			}
			e.Bricks = append(e.Bricks, bs)
			sv := e.Subvolumes[b.Subvolume]
			sv.Members = append(sv.Members, b.Name())
		}
		out.Volumes = append(out.Volumes, e)
	}
	return out, nil
}

func (s *Server) volumeSet(ctx context.Context, req *dfspb.VolumeSetRequest) (*dfspb.VolumeSetResponse, error) {
	val, err := volume.CheckOption(req.Key, req.Value)
	if err != nil {
		return nil, err
	}
	if err := s.mgr.Propose(ctx, volume.Command{Op: volume.OpSetOption, Name: req.Name, Key: req.Key, Value: val}); err != nil {
		return nil, err
	}
	return &dfspb.VolumeSetResponse{}, nil
}

func (s *Server) volumeGet(ctx context.Context, req *dfspb.VolumeGetRequest) (*dfspb.VolumeGetResponse, error) {
	st, err := s.mgr.LeaderState(ctx)
	if err != nil {
		return nil, err
	}
	v, ok := st.Volumes[req.Name]
	if !ok {
		return nil, volume.Errorf(volume.ErrNotFound, "volume %s does not exist", req.Name)
	}
	out := &dfspb.VolumeGetResponse{}
	for _, o := range volume.Options() {
		if req.Key != "" && req.Key != "all" && req.Key != o.Key {
			continue
		}
		_, set := v.Options[o.Key]
		out.Options = append(out.Options, &dfspb.VolumeOption{Key: o.Key, Value: v.Option(o.Key), Default: o.Default, Description: o.Description, Set: set})
	}
	if len(out.Options) == 0 {
		return nil, volume.Errorf(volume.ErrInvalid, "unknown option %q; 'dfs volume get %s all' lists the options", req.Key, req.Name)
	}
	return out, nil
}

func (s *Server) volumeReset(ctx context.Context, req *dfspb.VolumeResetRequest) (*dfspb.VolumeResetResponse, error) {
	key := req.Key
	if key == "all" {
		key = ""
	}
	if key != "" {
		if _, ok := volume.LookupOption(key); !ok {
			return nil, volume.Errorf(volume.ErrInvalid, "unknown option %q; 'dfs volume get %s all' lists the options", key, req.Name)
		}
	}
	if err := s.mgr.Propose(ctx, volume.Command{Op: volume.OpResetOption, Name: req.Name, Key: key}); err != nil {
		return nil, err
	}
	return &dfspb.VolumeResetResponse{}, nil
}
