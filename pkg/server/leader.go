package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/proto/dfspb"
	"github.com/dfsproject/dfs/volume"
)

// forwardedKey marks a call that one server forwarded to the leader, so
// that a server that is not the leader (any more) does not pass it on.
const forwardedKey = "dfs-forwarded"

var errPeerUnreachable = errors.New("server: peer unreachable")

func isForwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(forwardedKey)) > 0
}

// viaLeader runs local when this server leads the manager group, and
// otherwise sends the call to the leader with remote. Through an election
// it waits and tries again until ctx ends, so that a CLI command issued
// during a failover succeeds once a new leader is elected.
func viaLeader[T any](s *Server, ctx context.Context, local func(context.Context) (T, error), remote func(context.Context, dfspb.ManagerClient) (T, error)) (T, error) {
	var zero T
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	fwd := isForwarded(ctx)
	var last error = volume.ErrNoLeader
	for {
		if s.mgr.IsLeader() {
			v, err := local(ctx)
			if !errors.Is(err, volume.ErrNotLeader) && !errors.Is(err, volume.ErrNoLeader) {
				return v, toStatus(err)
			}
			last = err
		} else if fwd {
			return zero, status.Error(codes.Unavailable, "server: not the manager leader")
		} else if _, addr := s.mgr.Leader(); addr != "" {
			c, err := s.conn(addr)
			if err != nil {
				return zero, toStatus(err)
			}
			v, err := remote(metadata.AppendToOutgoingContext(ctx, forwardedKey, s.cfg.Listen), dfspb.NewManagerClient(c))
			if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
				return v, err
			}
			last = err
		}
		select {
		case <-ctx.Done():
			return zero, status.Error(codes.Unavailable, fmt.Sprintf("no manager leader could be reached (%v); a majority of the pool's voters must be up", last))
		case <-s.stop:
			return zero, status.Error(codes.Unavailable, "server: shutting down")
		case <-time.After(100 * time.Millisecond):
		}
	}
}
