package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Volume is an open dfs volume. Create it with Open and release it with
// Close. All methods may be called concurrently.
type Volume struct {
	cfg    Config
	logger *slog.Logger

	topo atomic.Pointer[topology]

	// bg is the context of background work (layout watch, chunk writes
	// of buffered files); cancelled by Close.
	bg     context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	conns connPool

	leaderMu sync.Mutex
	leaders  map[int]string       // subvolume -> last known leader brick address
	suspects map[string]time.Time // brick address -> end of its time out of the rotation (route.go)

	openMu sync.Mutex
	open   map[layout.ID]*openInode // files with open handles

	locks lockState // the lock session (locks.go)

	postOps postOps // directories' attributes from operations' answers (postop.go)
}

// topology is one version of the volume layout in the form the client uses.
// It is immutable once published.
type topology struct {
	layout   *layout.Layout
	bricks   [][]string // subvolume -> brick addresses host:port
	servers  []string   // manager servers the layout lists
	state    dfspb.VolumeState
	failover time.Duration
	deleted  bool
}

// Open fetches the volume's layout from the first server of cfg.Servers
// that answers and starts watching it for changes. It fails with an error
// wrapping ErrNoVolume if the volume does not exist, ErrNotStarted if it is
// not started, and ErrUnavailable (listing every server and why) if no
// server answers. ctx bounds only Open itself.
func Open(ctx context.Context, cfg Config) (*Volume, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Servers = append([]string(nil), cfg.Servers...)
	for i, s := range cfg.Servers {
		cfg.Servers[i], _ = normalizeServer(s)
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	v := &Volume{
		cfg:     cfg,
		logger:  cfg.Logger.With("volume", cfg.Volume),
		bg:      bg,
		cancel:  cancel,
		leaders: make(map[int]string),
		open:    make(map[layout.ID]*openInode),
	}
	v.conns.opts = cfg.DialOptions
	lay, err := v.fetchLayout(ctx)
	if err == nil {
		var top *topology
		if top, err = v.makeTopology(lay); err == nil {
			v.topo.Store(top)
			err = v.ensureRoot(ctx)
		}
	}
	if err != nil {
		cancel()
		v.conns.closeAll()
		return nil, err
	}
	v.wg.Add(1)
	go v.watchLayout()
	return v, nil
}

// Close stops the layout watch and background writes and closes every
// connection. Files still open lose their unflushed data. Close waits for
// the volume's goroutines; a second Close is a no-op.
func (v *Volume) Close() error {
	v.endLockSession()
	if v.closed.Swap(true) {
		return nil
	}
	v.cancel()
	v.wg.Wait()
	v.conns.closeAll()
	return nil
}

// Name returns the volume's name.
func (v *Volume) Name() string { return v.cfg.Volume }

// Config returns the volume's configuration with defaults filled in.
func (v *Volume) Config() Config { return v.cfg }

// LayoutVersion returns the version of the layout in use.
func (v *Volume) LayoutVersion() uint64 { return v.topo.Load().layout.Version }

// fetchLayout asks each configured server for the layout until one
// answers.
func (v *Volume) fetchLayout(ctx context.Context) (*dfspb.VolumeLayout, error) {
	var fails []string
	for _, addr := range v.cfg.Servers {
		conn, err := v.conns.get(addr)
		if err != nil {
			fails = append(fails, err.Error())
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, v.cfg.CallTimeout)
		lay, err := dfspb.NewManagerClient(conn).GetLayout(cctx, &dfspb.GetLayoutRequest{Volume: v.cfg.Volume})
		cancel()
		if err == nil {
			return lay, nil
		}
		if ctx.Err() != nil {
			return nil, ctxError(ctx, "fetch layout")
		}
		st, _ := status.FromError(err)
		switch st.Code() {
		case codes.NotFound:
			return nil, fmt.Errorf("%w: %s (server %s)", ErrNoVolume, st.Message(), addr)
		case codes.FailedPrecondition:
			return nil, fmt.Errorf("%w: %s (server %s)", ErrNotStarted, st.Message(), addr)
		}
		fails = append(fails, fmt.Sprintf("%s (%s)", addr, st.Message()))
	}
	return nil, fmt.Errorf("%w: no dfs server answered: %s", ErrUnavailable, strings.Join(fails, "; "))
}

// makeTopology checks a layout received from a server and converts it.
func (v *Volume) makeTopology(l *dfspb.VolumeLayout) (*topology, error) {
	top := &topology{
		layout: &layout.Layout{
			VolumeID:   l.VolumeId,
			Version:    l.Version,
			Partitions: make([]int, len(l.Partitions)),
			Subvolumes: len(l.Subvolumes),
		},
		bricks:  make([][]string, len(l.Subvolumes)),
		servers: l.Servers,
		state:   l.State,
	}
	for i, p := range l.Partitions {
		top.layout.Partitions[i] = int(p)
	}
	if err := top.layout.Validate(); err != nil {
		return nil, fmt.Errorf("%w: layout of %s from server: %v", ErrIO, l.VolumeName, err)
	}
	for i, sv := range l.Subvolumes {
		if int(sv.Index) != i || len(sv.Bricks) == 0 {
			return nil, fmt.Errorf("%w: layout of %s: subvolume %d malformed", ErrIO, l.VolumeName, i)
		}
		for _, b := range sv.Bricks {
			top.bricks[i] = append(top.bricks[i], net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))))
		}
	}
	top.failover = v.cfg.FailoverTimeout
	if top.failover == 0 {
		ping := DefaultPingTimeout
		if s, ok := l.Options["network.ping-timeout"]; ok {
			if n, err := strconv.Atoi(s); err == nil && n > 0 {
				ping = time.Duration(n) * time.Second
			}
		}
		top.failover = ping + failoverSlack
	}
	return top, nil
}

// watchLayout keeps a WatchLayout stream open to some server and swaps in
// every newer layout, until Close.
func (v *Volume) watchLayout() {
	defer v.wg.Done()
	backoff := 100 * time.Millisecond
	next := 0
	for v.bg.Err() == nil {
		servers := v.watchServers()
		addr := servers[next%len(servers)]
		next++
		if v.watchOnce(addr) {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-v.bg.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// watchServers is the configured servers followed by those the layout
// lists, without duplicates.
func (v *Volume) watchServers() []string {
	seen := make(map[string]bool)
	var out []string
	for _, s := range append(append([]string(nil), v.cfg.Servers...), v.topo.Load().servers...) {
		if n, err := normalizeServer(s); err == nil && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// watchOnce follows one stream until it fails; it reports whether the
// stream delivered anything.
func (v *Volume) watchOnce(addr string) bool {
	ctx, cancel := context.WithCancel(v.bg)
	defer cancel()
	req := &dfspb.GetLayoutRequest{Volume: v.cfg.Volume, AfterVersion: v.topo.Load().layout.Version}
	conn, err := v.conns.get(addr)
	if err != nil {
		return false
	}
	stream, err := dfspb.NewManagerClient(conn).WatchLayout(ctx, req)
	if err != nil {
		return false
	}
	got := false
	for {
		l, err := stream.Recv()
		if err != nil {
			if status.Code(err) == codes.NotFound {
				v.markDeleted()
			}
			if v.bg.Err() == nil {
				v.logger.Debug("layout watch ended", "server", addr, "err", err)
			}
			return got
		}
		got = true
		v.applyLayout(l)
	}
}

// applyLayout publishes l if it is newer than the layout in use.
func (v *Volume) applyLayout(l *dfspb.VolumeLayout) {
	cur := v.topo.Load()
	if l.Version <= cur.layout.Version && !cur.deleted {
		return
	}
	top, err := v.makeTopology(l)
	if err != nil {
		v.logger.Warn("ignoring bad layout", "version", l.Version, "err", err)
		return
	}
	if v.topo.CompareAndSwap(cur, top) {
		v.logger.Info("layout changed", "version", top.layout.Version, "state", top.state.String())
	}
}

func (v *Volume) markDeleted() {
	cur := v.topo.Load()
	if cur.deleted {
		return
	}
	top := *cur
	top.deleted = true
	if v.topo.CompareAndSwap(cur, &top) {
		v.logger.Warn("volume was deleted")
	}
}

// ensureRoot creates the root directory's inode if the volume is new.
// CreateInode is idempotent, so racing clients are harmless.
func (v *Volume) ensureRoot(ctx context.Context) error {
	_, err := v.GetAttr(ctx, v.Root())
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	if v.cfg.ReadOnly {
		return fmt.Errorf("%w: volume has no root directory yet", ErrReadOnly)
	}
	root := layout.RootID
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_CreateInode{CreateInode: &dfspb.CreateInodeCmd{
		Attr: &dfspb.Attr{Id: root[:], Type: dfspb.FileType_FILE_TYPE_DIR, Mode: 0o755},
	}}}
	_, _, err = v.mutate(ctx, v.subOfDir(root), "create root", cmd)
	return err
}

// Statfs sums the space and inode counts of one brick (the leader) of every
// subvolume; replicas hold the same data, as Gluster reports.
func (v *Volume) Statfs(ctx context.Context) (StatfsOut, error) {
	top := v.topo.Load()
	type res struct {
		r   *dfspb.StatfsResponse
		err error
	}
	out := make([]res, len(top.bricks))
	var wg sync.WaitGroup
	for sub := range top.bricks {
		wg.Go(func() {
			_, err := v.call(ctx, sub, "statfs", func(ctx context.Context, c dfspb.BrickServiceClient, o callOpts) error {
				r, err := c.Statfs(ctx, &dfspb.StatfsRequest{}, o...)
				out[sub].r = r
				return err
			})
			out[sub].err = err
		})
	}
	wg.Wait()
	var s StatfsOut
	for _, r := range out {
		if r.err != nil {
			return StatfsOut{}, r.err
		}
		s.TotalBytes += r.r.TotalBytes
		s.FreeBytes += r.r.FreeBytes
		s.AvailBytes += r.r.AvailBytes
		s.TotalInodes += r.r.TotalInodes
		s.FreeInodes += r.r.FreeInodes
	}
	return s, nil
}

// StatfsOut is the space and inode usage of a volume.
type StatfsOut struct {
	TotalBytes, FreeBytes, AvailBytes uint64
	TotalInodes, FreeInodes           uint64
}
