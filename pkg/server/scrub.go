package server

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/brick"
	"github.com/dfsproject/dfs/proto/dfspb"
	"github.com/dfsproject/dfs/volume"
)

// maintService is the Maintenance gRPC service: the scrub status and
// on-demand scrubs of a volume (scrub.go) and fsck (fsck.go). Any server
// answers from its own copy of the state, asking the bricks directly.
type maintService struct {
	dfspb.UnimplementedMaintenanceServer
	s *Server
}

var _ dfspb.MaintenanceServer = (*maintService)(nil)

// brickCallTimeout bounds one question to one brick.
const brickCallTimeout = 5 * time.Second

// scrubConfigOf is the scrub configuration a volume's options ask for.
func scrubConfigOf(v *volume.Volume) brick.ScrubConfig {
	c := brick.DefaultScrubConfig()
	c.Enabled = v.Option("features.scrub") != "Inactive"
	if d, err := volume.ScrubInterval(v.Option("features.scrub-freq")); err == nil {
		c.Interval = d
	}
	c.Rate = volume.ScrubRate(v.Option("features.scrub-throttle"))
	return c
}

// startedVolume finds a started volume in this server's state.
func (s *Server) startedVolume(name string) (*volume.State, *volume.Volume, error) {
	st := s.mgr.LocalState()
	v, ok := st.Volumes[name]
	switch {
	case !ok:
		return nil, nil, volume.Errorf(volume.ErrNotFound, "volume %s does not exist", name)
	case v.State != volume.Started:
		return nil, nil, volume.Errorf(volume.ErrState, "volume %s is not started", name)
	}
	return st, v, nil
}

func (m *maintService) VolumeScrub(ctx context.Context, req *dfspb.VolumeScrubRequest) (*dfspb.VolumeScrubResponse, error) {
	resp, err := m.s.volumeScrub(ctx, req)
	return resp, toStatus(err)
}

// volumeScrub asks every brick of a volume for its scrubber's progress,
// starting a run first with ondemand.
func (s *Server) volumeScrub(ctx context.Context, req *dfspb.VolumeScrubRequest) (*dfspb.VolumeScrubResponse, error) {
	st, v, err := s.startedVolume(req.Name)
	if err != nil {
		return nil, err
	}
	out := &dfspb.VolumeScrubResponse{
		Name:      v.Name,
		Scrub:     v.Option("features.scrub"),
		Throttle:  v.Option("features.scrub-throttle"),
		Frequency: v.Option("features.scrub-freq"),
	}
	if req.Action == dfspb.ScrubAction_SCRUB_ACTION_ONDEMAND && out.Scrub == "Inactive" {
		return nil, volume.Errorf(volume.ErrState, "scrub of volume %s is paused; resume it first ('dfs volume bitrot %s scrub resume')", v.Name, v.Name)
	}
	out.Bricks = make([]*dfspb.BrickScrub, len(v.Bricks))
	var wg sync.WaitGroup
	for i, b := range v.Bricks {
		bs := &dfspb.BrickScrub{Host: b.Host, Path: b.Path, Subvolume: uint32(b.Subvolume)}
		out.Bricks[i] = bs
		addr := st.BrickAddress(b)
		wg.Go(func() {
			bs.Online, bs.Scrub, bs.Error = s.brickScrub(ctx, addr, req.Action == dfspb.ScrubAction_SCRUB_ACTION_ONDEMAND)
		})
	}
	wg.Wait()
	return out, nil
}

// brickScrub asks one brick; a brick that answers but refuses to start a
// run is online with an error.
func (s *Server) brickScrub(ctx context.Context, addr string, ondemand bool) (online bool, p *dfspb.ScrubProgress, errText string) {
	c, err := s.conn(addr)
	if err != nil {
		return false, nil, err.Error()
	}
	cctx, cancel := context.WithTimeout(ctx, brickCallTimeout)
	defer cancel()
	mc := dfspb.NewBrickMaintenanceClient(c)
	p, err = mc.Scrub(cctx, &dfspb.BrickScrubRequest{Ondemand: ondemand})
	if status.Code(err) == codes.FailedPrecondition {
		p, _ = mc.Scrub(cctx, &dfspb.BrickScrubRequest{})
		return true, p, status.Convert(err).Message()
	}
	if err != nil {
		return false, nil, status.Convert(err).Message()
	}
	return true, p, ""
}
