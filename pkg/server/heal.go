package server

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/proto/dfspb"
	"github.com/dfsproject/dfs/volume"
)

func (m *managerService) VolumeHeal(ctx context.Context, req *dfspb.VolumeHealRequest) (*dfspb.VolumeHealResponse, error) {
	return viaLeader(m.s, ctx, func(ctx context.Context) (*dfspb.VolumeHealResponse, error) { return m.s.volumeHeal(ctx, req) },
		func(ctx context.Context, c dfspb.ManagerClient) (*dfspb.VolumeHealResponse, error) {
			return c.VolumeHeal(ctx, req)
		})
}

func (m *managerService) VolumeReplaceBrick(ctx context.Context, req *dfspb.VolumeReplaceBrickRequest) (*dfspb.VolumeReplaceBrickResponse, error) {
	return viaLeader(m.s, ctx, func(ctx context.Context) (*dfspb.VolumeReplaceBrickResponse, error) {
		return m.s.volumeReplaceBrick(ctx, req)
	},
		func(ctx context.Context, c dfspb.ManagerClient) (*dfspb.VolumeReplaceBrickResponse, error) {
			return c.VolumeReplaceBrick(ctx, req)
		})
}

// volumeHeal reports, per brick, how far it is behind the most advanced
// member of its replica set: in a Raft replica set, healing is a member
// applying the log entries (or the snapshot) it missed, so the entries it
// has still to apply are its pending heals. With full it also starts a
// scrub of every online brick.
func (s *Server) volumeHeal(ctx context.Context, req *dfspb.VolumeHealRequest) (*dfspb.VolumeHealResponse, error) {
	st, err := s.mgr.LeaderState(ctx)
	if err != nil {
		return nil, err
	}
	v, ok := st.Volumes[req.Name]
	switch {
	case !ok:
		return nil, volume.Errorf(volume.ErrNotFound, "volume %s does not exist", req.Name)
	case v.State != volume.Started:
		return nil, volume.Errorf(volume.ErrState, "volume %s is not started", req.Name)
	case v.Replica < 2:
		return nil, volume.Errorf(volume.ErrInvalid, "volume %s is not a replicate volume; heal is for replicated volumes", req.Name)
	}
	now := time.Now()
	out := &dfspb.VolumeHealResponse{}
	best := map[int]uint64{}
	for _, b := range v.Bricks {
		hb := &dfspb.HealBrick{Host: b.Host, Path: b.Path, Subvolume: uint32(b.Subvolume)}
		if rep, _ := s.tracker.brick(b.ServerID, v.ID, b.Path, now); rep != nil && rep.Online {
			hb.Online, hb.Role, hb.AppliedIndex, hb.Scrub = true, rep.Role, rep.AppliedIndex, rep.Scrub
			if rep.AppliedIndex > best[b.Subvolume] {
				best[b.Subvolume] = rep.AppliedIndex
			}
			if req.Full {
				if st := s.startScrub(ctx, st.BrickAddress(b)); st != nil {
					hb.Scrub = st
				}
			}
		}
		out.Bricks = append(out.Bricks, hb)
	}
	for _, hb := range out.Bricks {
		if hb.Online {
			hb.Pending = best[int(hb.Subvolume)] - hb.AppliedIndex
		}
	}
	return out, nil
}

func (s *Server) startScrub(ctx context.Context, addr string) *dfspb.ScrubStatus {
	c, err := s.conn(addr)
	if err != nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, peerCallTimeout)
	defer cancel()
	resp, err := dfspb.NewBrickServiceClient(c).Scrub(cctx, &dfspb.ScrubRequest{})
	if err != nil {
		s.cfg.Logger.Warn("could not start a scrub", "brick", addr, "err", err)
		return nil
	}
	return resp.Status
}

// volumeReplaceBrick replaces a (typically dead) brick: the new directory
// is checked and marked, the volume record changes (the new brick waits
// to join, the old one is stopped wherever it still runs), then the
// replica set's leader removes the old member from its Raft group and
// adds the new one, which catches up from a snapshot and the log.
func (s *Server) volumeReplaceBrick(ctx context.Context, req *dfspb.VolumeReplaceBrickRequest) (*dfspb.VolumeReplaceBrickResponse, error) {
	st, err := s.mgr.LeaderState(ctx)
	if err != nil {
		return nil, err
	}
	rreq := volume.ReplaceRequest{Name: req.Name, Force: req.Force}
	rreq.Old = volume.BrickSpec{Host: req.GetOld().GetHost(), Path: req.GetOld().GetPath()}
	rreq.New = volume.BrickSpec{Host: req.GetNew().GetHost(), Path: req.GetNew().GetPath()}
	oldID, nb, err := volume.PlanReplace(st, rreq)
	if err != nil {
		return nil, err
	}
	v := st.Volumes[req.Name]
	if v.State != volume.Started {
		return nil, volume.Errorf(volume.ErrState, "volume %s is not started; replace-brick moves data through the running replica set, so start it first", req.Name)
	}
	// Prepare the new directory on its server (as a one-brick volume view).
	view := &volume.Volume{ID: v.ID, Name: v.Name, Bricks: []volume.Brick{*nb}}
	done, err := s.prepareBricks(ctx, st, view)
	if err != nil {
		s.releaseBricks(ctx, st, view, done, false)
		return nil, err
	}
	if err := s.mgr.Propose(ctx, volume.Command{Op: volume.OpReplace, Name: req.Name, Key: oldID, Brick: nb}); err != nil {
		s.releaseBricks(ctx, st, view, done, false)
		return nil, err
	}
	st, err = s.mgr.LeaderState(ctx)
	if err != nil {
		return nil, err
	}
	v = st.Volumes[req.Name]
	var added volume.Brick
	var others []string
	for _, b := range v.Bricks {
		if b.ID == nb.ID {
			added = b
		} else if b.Subvolume == nb.Subvolume {
			others = append(others, st.BrickAddress(b))
		}
	}
	if err := s.changeMembers(ctx, others, &dfspb.ChangeMembersRequest{RemoveId: oldID, AddId: added.ID, AddAddress: st.BrickAddress(added)}); err != nil {
		return nil, volume.Errorf(volume.ErrState, "the volume now lists %s, but its replica set did not take it yet: %v", added.Name(), err)
	}
	return &dfspb.VolumeReplaceBrickResponse{}, nil
}

// changeMembers sends a membership change to every member in turn until
// the leader takes it, retrying through elections for up to 30 s.
func (s *Server) changeMembers(ctx context.Context, addrs []string, req *dfspb.ChangeMembersRequest) error {
	var last error = fmt.Errorf("no member of the replica set answered")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, addr := range addrs {
			c, err := s.conn(addr)
			if err != nil {
				last = err
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 35*time.Second)
			_, err = dfspb.NewBrickServiceClient(c).ChangeMembers(cctx, req)
			cancel()
			if err == nil {
				return nil
			}
			last = err
			if status.Code(err) != codes.FailedPrecondition && status.Code(err) != codes.Unavailable {
				return err
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return last
}
