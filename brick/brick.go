// Package brick is the storage side of dfs: a brick is one directory on a
// server's local disk that belongs to one volume.
//
// This package prepares and checks brick directories (the volume marker
// in BRICK/.dfs/volume-id, the counterpart of Gluster's volume-id xattr)
// and runs a brick: a listener on the brick's own port serving the Brick
// gRPC service. The data plane (the Pebble store, chunks, and the replica
// set's Raft group) lives behind the same Brick type.
//
// A Brick's methods may be called concurrently; Close stops it and waits
// for its goroutines.
package brick

import (
	"context"
	"fmt"
	"log/slog"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"github.com/dfsproject/dfs/pkg/mux"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Config describes one brick to run.
type Config struct {
	// VolumeID is the id of the volume the brick belongs to. Required.
	VolumeID string
	// Path is the brick directory. Required; must carry the volume marker.
	Path string
	// Address is host:port to listen on. Required.
	Address string
	// Logger receives the brick's logs. Default: discard.
	Logger *slog.Logger
}

// Brick is a running brick.
type Brick struct {
	cfg  Config
	ln   *mux.Listener
	srv  *grpc.Server
	done chan struct{}
}

// Start checks the brick directory and starts serving on cfg.Address.
func Start(cfg Config) (*Brick, error) {
	if cfg.VolumeID == "" || cfg.Path == "" || cfg.Address == "" {
		return nil, fmt.Errorf("%w: brick config needs VolumeID, Path and Address", ErrBadPath)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := CheckMarker(cfg.Path, cfg.VolumeID); err != nil {
		return nil, err
	}
	ln, err := mux.Listen(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("brick: listen on %s: %w", cfg.Address, err)
	}
	b := &Brick{cfg: cfg, ln: ln, srv: grpc.NewServer(), done: make(chan struct{})}
	dfspb.RegisterBrickServiceServer(b.srv, &service{b: b})
	go func() {
		defer close(b.done)
		if err := b.srv.Serve(ln.Default()); err != nil {
			cfg.Logger.Warn("brick server stopped", "path", cfg.Path, "err", err)
		}
	}()
	return b, nil
}

// Close stops serving.
func (b *Brick) Close() error {
	b.srv.Stop()
	err := b.ln.Close()
	<-b.done
	return err
}

// Usage is what `volume status detail` shows of a brick's file system.
type Usage struct {
	TotalBytes, FreeBytes, TotalInodes, FreeInodes uint64
	FSType, Device                                 string
}

// DiskUsage reports the file system holding the brick.
func (b *Brick) DiskUsage() (Usage, error) { return DiskUsage(b.cfg.Path) }

// DiskUsage reports the file system holding path.
func DiskUsage(path string) (Usage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return Usage{}, fmt.Errorf("brick: statfs %s: %w", path, err)
	}
	u := Usage{
		TotalBytes:  st.Blocks * uint64(st.Bsize),
		FreeBytes:   st.Bavail * uint64(st.Bsize),
		TotalInodes: st.Files,
		FreeInodes:  st.Ffree,
	}
	u.FSType, u.Device = mountOf(path)
	return u, nil
}

type service struct {
	dfspb.UnimplementedBrickServiceServer
	b *Brick
}

func (s *service) Ping(context.Context, *dfspb.BrickPingRequest) (*dfspb.BrickPingResponse, error) {
	return &dfspb.BrickPingResponse{VolumeId: s.b.cfg.VolumeID, Path: s.b.cfg.Path}, nil
}
