package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/brick"
	"github.com/dfsproject/dfs/volume"
)

// toStatus translates a domain error into a gRPC status: the one place
// where that happens. Status errors (from a forwarded call) pass through.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, volume.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, volume.ErrExists):
		code = codes.AlreadyExists
	case errors.Is(err, volume.ErrInvalid), errors.Is(err, brick.ErrBadPath):
		code = codes.InvalidArgument
	case errors.Is(err, volume.ErrState), errors.Is(err, volume.ErrBusy),
		errors.Is(err, brick.ErrInUse), errors.Is(err, brick.ErrNotEmpty),
		errors.Is(err, brick.ErrWrongOwner), errors.Is(err, brick.ErrNoMarker),
		errors.Is(err, errPeerUnreachable):
		code = codes.FailedPrecondition
	case errors.Is(err, volume.ErrUnsupported):
		code = codes.Unimplemented
	case errors.Is(err, volume.ErrNotLeader), errors.Is(err, volume.ErrNoLeader):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}
