package brick

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/brick/store"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// maintService is the BrickMaintenance gRPC service: the scrubber's
// status and on-demand runs, and the store walk that fsck reads.
type maintService struct {
	dfspb.UnimplementedBrickMaintenanceServer
	b *Brick
}

var _ dfspb.BrickMaintenanceServer = (*maintService)(nil)

func (m *maintService) Scrub(ctx context.Context, req *dfspb.BrickScrubRequest) (*dfspb.ScrubProgress, error) {
	if req.Ondemand {
		if err := m.b.scrub.startNow(); err != nil {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
	}
	return m.b.scrub.progress(), nil
}

// WalkStore streams the leader's store: fsck must read applied, current
// state, which only the leader is sure to have.
func (m *maintService) WalkStore(_ *dfspb.WalkStoreRequest, stream grpc.ServerStreamingServer[dfspb.WalkStoreResponse]) error {
	ctx := stream.Context()
	if err := m.b.group.LeaderReady(ctx); err != nil {
		return m.b.rpcError(ctx, err)
	}
	err := m.b.store.Walk(ctx, store.DefaultWalkPage, func(p *dfspb.WalkStoreResponse) error {
		return stream.Send(p)
	})
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Errorf(codes.Unavailable, "brick %s: walk: %v", m.b.cfg.Address, err)
	}
	return nil
}
