package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/brick/store"
	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
	"github.com/dfsproject/dfs/volume"
)

func (m *maintService) VolumeFsck(ctx context.Context, req *dfspb.VolumeFsckRequest) (*dfspb.VolumeFsckResponse, error) {
	resp, err := m.s.volumeFsck(ctx, req)
	return resp, toStatus(err)
}

// volumeFsck reads the store of every subvolume's leader (WalkStore) and
// checks them together (store.Checker): entries against inodes, link
// counts, placement by the layout, chunks and stray records.
func (s *Server) volumeFsck(ctx context.Context, req *dfspb.VolumeFsckRequest) (*dfspb.VolumeFsckResponse, error) {
	st, v, err := s.startedVolume(req.Name)
	if err != nil {
		return nil, err
	}
	if v.Disperse > 0 {
		return nil, volume.Errorf(volume.ErrUnsupported, "fsck of disperse volumes is not supported")
	}
	l := &layout.Layout{VolumeID: v.ID, Version: v.Version, Partitions: v.Partitions, Subvolumes: v.Subvolumes()}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("volume %s: %w", v.Name, err)
	}
	c := store.NewChecker(l)
	for sv := range v.Subvolumes() {
		var addrs []string
		for _, b := range v.Bricks {
			if b.Subvolume == sv {
				addrs = append(addrs, st.BrickAddress(b))
			}
		}
		pages, err := s.walkSubvolume(ctx, addrs)
		if err != nil {
			return nil, volume.Errorf(volume.ErrState, "subvolume %d: %v", sv, err)
		}
		for _, p := range pages {
			c.Add(sv, p)
		}
	}
	r := c.Result()
	return &dfspb.VolumeFsckResponse{
		Name: v.Name, Subvolumes: uint32(v.Subvolumes()),
		Inodes: r.Inodes, Entries: r.Entries, Chunks: r.Chunks,
		Problems: r.Problems, Notes: r.Notes,
	}, nil
}

// walkSubvolume reads the whole walk of a subvolume's leader, trying each
// member in turn through an election for up to 15 s.
func (s *Server) walkSubvolume(ctx context.Context, addrs []string) ([]*dfspb.WalkStoreResponse, error) {
	var last error = errors.New("no member")
	deadline := time.Now().Add(15 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		for _, addr := range addrs {
			pages, err := s.walkBrick(ctx, addr)
			if err == nil {
				return pages, nil
			}
			last = fmt.Errorf("%s: %s", addr, status.Convert(err).Message())
			if c := status.Code(err); c != codes.FailedPrecondition && c != codes.Unavailable {
				return nil, last
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("no leader could be read: %w", last)
}

func (s *Server) walkBrick(ctx context.Context, addr string) ([]*dfspb.WalkStoreResponse, error) {
	c, err := s.conn(addr)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := dfspb.NewBrickMaintenanceClient(c).WalkStore(ctx, &dfspb.WalkStoreRequest{})
	if err != nil {
		return nil, err
	}
	var pages []*dfspb.WalkStoreResponse
	for {
		p, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return pages, nil
		}
		if err != nil {
			return nil, err
		}
		pages = append(pages, p)
	}
}
