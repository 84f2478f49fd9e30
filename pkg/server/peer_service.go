package server

import (
	"context"

	"github.com/dfsproject/dfs/brick"
	"github.com/dfsproject/dfs/proto/dfspb"
	"github.com/dfsproject/dfs/volume"
)

// peerService implements the Peer gRPC service that servers call on each
// other.
type peerService struct {
	dfspb.UnimplementedPeerServiceServer
	s *Server
}

var _ dfspb.PeerServiceServer = (*peerService)(nil)

func (p *peerService) Identity(ctx context.Context, _ *dfspb.IdentityRequest) (*dfspb.IdentityResponse, error) {
	st := p.s.mgr.LocalState()
	return &dfspb.IdentityResponse{
		ServerId:    p.s.id,
		Address:     p.s.cfg.Listen,
		PoolId:      st.PoolID,
		PoolSize:    uint32(len(st.Peers)),
		VolumeCount: uint32(len(st.Volumes)),
	}, nil
}

func (p *peerService) Join(ctx context.Context, req *dfspb.JoinRequest) (*dfspb.JoinResponse, error) {
	st := p.s.mgr.LocalState()
	if st.PoolID == req.PoolId {
		return &dfspb.JoinResponse{ServerId: p.s.id}, nil
	}
	p.s.cfg.Logger.Info("joining pool", "pool", req.PoolId, "leader", req.LeaderAddress)
	if err := p.s.mgr.Join(); err != nil {
		return nil, toStatus(err)
	}
	return &dfspb.JoinResponse{ServerId: p.s.id}, nil
}

func (p *peerService) Leave(ctx context.Context, req *dfspb.LeaveRequest) (*dfspb.LeaveResponse, error) {
	st := p.s.mgr.LocalState()
	if _, still := st.Peers[p.s.id]; still && st.PoolID == req.PoolId && len(st.Peers) > 1 {
		return nil, toStatus(volume.Errorf(volume.ErrState, "this server is still a member of pool %s", req.PoolId))
	}
	p.s.cfg.Logger.Info("detached from pool; starting a pool of one", "pool", req.PoolId)
	p.s.bricks.closeAll()
	if err := p.s.mgr.Leave(); err != nil {
		return nil, toStatus(err)
	}
	return &dfspb.LeaveResponse{}, nil
}

// PrepareBricks checks and marks every path, or none: on the first failure
// it releases the ones it had prepared.
func (p *peerService) PrepareBricks(ctx context.Context, req *dfspb.PrepareBricksRequest) (*dfspb.PrepareBricksResponse, error) {
	out := &dfspb.PrepareBricksResponse{}
	var done []string
	for _, path := range req.Paths {
		created, err := brick.Prepare(path, req.VolumeId)
		if err != nil {
			for _, d := range done {
				_ = brick.Release(d, req.VolumeId, false, contains(out.Created, d))
			}
			return nil, toStatus(err)
		}
		done = append(done, path)
		if created {
			out.Created = append(out.Created, path)
		}
	}
	return out, nil
}

func (p *peerService) ReleaseBricks(ctx context.Context, req *dfspb.ReleaseBricksRequest) (*dfspb.ReleaseBricksResponse, error) {
	var first error
	for _, path := range req.Paths {
		if err := brick.Release(path, req.VolumeId, req.Purge, contains(req.RemoveDirs, path)); err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return nil, toStatus(first)
	}
	return &dfspb.ReleaseBricksResponse{}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
