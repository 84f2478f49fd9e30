// Package clienttest runs an in-process fake of a dfs volume, for the tests
// of pkg/client and fuse/.
//
// The fake is real code behind the client's seam: per subvolume, one or
// more gRPC BrickService servers on 127.0.4.x, of which one (the "leader")
// applies every StoreCommand directly to a real brick/store.Store and
// serves reads from it, while the others answer FAILED_PRECONDITION with
// the leader's address in the dfs-leader trailer, as real followers do;
// and a Manager serving GetLayout and WatchLayout. There is no Raft: a
// subvolume's store is applied to in order under a mutex, with increasing
// log indexes. Faults can be injected per brick (calls failing with
// UNAVAILABLE before or after applying, a brick stopped and restarted) and
// leadership moved, to exercise the client's routing and retries.
package clienttest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/brick"
	"github.com/dfsproject/dfs/brick/store"
	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// LeaderTrailer is the trailer naming a subvolume's leader
// (client.LeaderTrailer; not imported to keep this package free of the
// client).
const LeaderTrailer = "dfs-leader"

// Options configures a fake volume. Zero fields take their defaults.
type Options struct {
	// Volume is the volume name. Default "gv0".
	Volume string
	// Subvolumes is the number of subvolumes. Default 2.
	Subvolumes int
	// Replicas is the number of bricks per subvolume; brick 0 starts as
	// the leader. Default 1.
	Replicas int
	// Partitions is the layout's partition count. Default 64.
	Partitions int
	// Logger receives the stores' logs. Default: discard.
	Logger *slog.Logger
}

// Cluster is a running fake volume. Its servers stop when the test ends.
type Cluster struct {
	Manager    *Manager
	Subvolumes []*Subvolume
	// VolumeID is the id in the layout.
	VolumeID string
	// Volume is the volume name.
	Volume string
}

// Start starts a fake volume and registers its shutdown with t.Cleanup.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Volume == "" {
		opts.Volume = "gv0"
	}
	if opts.Subvolumes == 0 {
		opts.Subvolumes = 2
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Partitions == 0 {
		opts.Partitions = 64
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{VolumeID: "vol-" + layout.NewID().String()[:8], Volume: opts.Volume}
	lay, err := layout.New(c.VolumeID, opts.Partitions, opts.Subvolumes)
	if err != nil {
		t.Fatalf("clienttest: layout: %v", err)
	}
	vl := &dfspb.VolumeLayout{
		VolumeId: c.VolumeID, VolumeName: opts.Volume, Version: 1, Type: "Distribute",
		ReplicaCount: uint32(opts.Replicas), State: dfspb.VolumeState_VOLUME_STATE_STARTED,
		Options: map[string]string{},
	}
	for _, p := range lay.Partitions {
		vl.Partitions = append(vl.Partitions, uint32(p))
	}
	ip := 10
	for i := range opts.Subvolumes {
		cfg := store.DefaultConfig()
		cfg.Dir = t.TempDir()
		cfg.NoSync = true
		cfg.Logger = opts.Logger.With("subvolume", i)
		st, err := store.Open(cfg)
		if err != nil {
			t.Fatalf("clienttest: open store: %v", err)
		}
		sv := &Subvolume{Index: i, store: st, conns: map[string]*grpc.ClientConn{}}
		sv.coord = brick.NewCoordinator(txnHost{sv}, cfg.Logger)
		t.Cleanup(func() { _ = st.Close() })
		t.Cleanup(sv.closeConns)
		pb := &dfspb.Subvolume{Index: uint32(i)}
		for r := range opts.Replicas {
			b := &Brick{sub: sv, pos: r}
			if err := b.listen(fmt.Sprintf("127.0.4.%d:0", ip)); err != nil {
				t.Fatalf("clienttest: %v", err)
			}
			ip++
			t.Cleanup(b.Stop)
			sv.Bricks = append(sv.Bricks, b)
			host, port, _ := net.SplitHostPort(b.Addr)
			pn, _ := strconv.Atoi(port)
			pb.Bricks = append(pb.Bricks, &dfspb.BrickEndpoint{Host: host, Port: uint32(pn), Path: fmt.Sprintf("/fake/s%d/b%d", i, r)})
		}
		vl.Subvolumes = append(vl.Subvolumes, pb)
		c.Subvolumes = append(c.Subvolumes, sv)
	}
	m, err := startManager(vl)
	if err != nil {
		t.Fatalf("clienttest: %v", err)
	}
	t.Cleanup(m.Stop)
	c.Manager = m
	return c
}

// Servers returns the manager's address, for client.Config.Servers.
func (c *Cluster) Servers() []string { return []string{c.Manager.Addr} }

// Subvolume is one fake replica set: one store, several bricks.
type Subvolume struct {
	Index  int
	Bricks []*Brick

	store  *store.Store
	mu     sync.Mutex // serializes Apply, as Raft does
	index  uint64
	leader atomic.Int32 // position of the leading brick; -1 for none

	renewals atomic.Int64

	coord   *brick.Coordinator // transactions across subvolumes (RunTxn)
	connsMu sync.Mutex
	conns   map[string]*grpc.ClientConn // to other subvolumes' bricks
}

// Txns returns the subvolume's transaction coordinator, the real one of
// package brick running against the fake (tests install hooks on it, and
// call Recover as a new leader would).
func (s *Subvolume) Txns() *brick.Coordinator { return s.coord }

// txnHost is a fake subvolume as the TxnHost of its coordinator.
type txnHost struct{ s *Subvolume }

func (h txnHost) Propose(_ context.Context, cmd *dfspb.StoreCommand) (*dfspb.StoreResult, error) {
	return h.s.apply(cmd)
}

func (h txnHost) Store() *store.Store { return h.s.store }

func (h txnHost) Peer(addr string) (dfspb.BrickServiceClient, error) {
	h.s.connsMu.Lock()
	defer h.s.connsMu.Unlock()
	c, ok := h.s.conns[addr]
	if !ok {
		var err error
		if c, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return nil, err
		}
		h.s.conns[addr] = c
	}
	return dfspb.NewBrickServiceClient(c), nil
}

func (s *Subvolume) closeConns() {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	for _, c := range s.conns {
		_ = c.Close()
	}
}

// RunTxn runs a transaction with this subvolume as coordinator, with the
// coordinator of package brick.
func (b *Brick) RunTxn(ctx context.Context, req *dfspb.RunTxnRequest) (*dfspb.RunTxnResponse, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	in := req.GetIntent()
	if in == nil || len(in.TxnId) != 16 {
		return nil, status.Error(codes.InvalidArgument, "RunTxn needs an intent with a 16-byte transaction id")
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), brick.TxnRunTimeout)
	defer cancel()
	resp, err := brick.TxnResponse(b.sub.coord.Run(dctx, in))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "clienttest: transaction: %v", err)
	}
	b.mutations.Add(1)
	if take(&b.loseAnswers) {
		return nil, status.Error(codes.Unavailable, "clienttest: answer lost")
	}
	return resp, nil
}

// Store returns the subvolume's store, for inspection.
func (s *Subvolume) Store() *store.Store { return s.store }

// SetLeader makes brick pos the leader; -1 means no leader (an election:
// every brick answers FAILED_PRECONDITION without a hint).
func (s *Subvolume) SetLeader(pos int) { s.leader.Store(int32(pos)) }

// Applied returns how many commands the subvolume applied.
func (s *Subvolume) Applied() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index
}

func (s *Subvolume) apply(cmd *dfspb.StoreCommand) (*dfspb.StoreResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd.NowNs = time.Now().UnixNano()
	data, err := store.EncodeCommand(cmd)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "encode: %v", err)
	}
	s.index++
	r := s.store.Apply(&raft.Log{Index: s.index, Term: 1, Type: raft.LogCommand, Data: data})
	res, ok := r.(*dfspb.StoreResult)
	if !ok {
		return nil, status.Errorf(codes.Internal, "store answered %T", r)
	}
	return res, nil
}

// Brick is one fake brick: a gRPC BrickService server.
type Brick struct {
	dfspb.UnimplementedBrickServiceServer
	// Addr is the brick's host:port; it keeps it across Stop and Restart.
	Addr string

	sub *Subvolume
	pos int

	mu  sync.Mutex
	srv *grpc.Server
	wg  sync.WaitGroup

	failNext    atomic.Int32
	loseAnswers atomic.Int32
	calls       atomic.Int64
	mutations   atomic.Int64
	reads       atomic.Int64 // ReadInline and ReadChunk calls
}

func (b *Brick) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	b.Addr = ln.Addr().String()
	srv := grpc.NewServer()
	dfspb.RegisterBrickServiceServer(srv, b)
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		_ = srv.Serve(ln)
	}()
	return nil
}

// Stop stops the brick's server (connections are refused).
func (b *Brick) Stop() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		srv.Stop()
		b.wg.Wait()
	}
}

// Restart serves again on the same address after Stop.
func (b *Brick) Restart() error {
	b.Stop()
	return b.listen(b.Addr)
}

// FailNext makes the next n calls to this brick fail with UNAVAILABLE
// before doing anything.
func (b *Brick) FailNext(n int) { b.failNext.Store(int32(n)) }

// LoseNextAnswers makes the next n Mutate (or RunTxn) calls apply their
// command (run their transaction) and then fail with UNAVAILABLE, as when
// the answer of a committed command is lost (an ambiguous failure).
func (b *Brick) LoseNextAnswers(n int) { b.loseAnswers.Store(int32(n)) }

// Calls returns how many RPCs the brick received.
func (b *Brick) Calls() int64 { return b.calls.Load() }

// Mutations returns how many commands the brick applied.
func (b *Brick) Mutations() int64 { return b.mutations.Load() }

// Reads returns how many ReadInline and ReadChunk calls reached b.
func (b *Brick) Reads() int64 { return b.reads.Load() }

// take decrements a positive counter and reports whether it did.
func take(c *atomic.Int32) bool {
	for {
		n := c.Load()
		if n <= 0 {
			return false
		}
		if c.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// check is every call's gate: injected failures, then leadership.
func (b *Brick) check(ctx context.Context) error {
	b.calls.Add(1)
	if take(&b.failNext) {
		return status.Error(codes.Unavailable, "clienttest: injected failure")
	}
	lead := int(b.sub.leader.Load())
	if lead != b.pos {
		if lead >= 0 && lead < len(b.sub.Bricks) {
			_ = grpc.SetTrailer(ctx, metadata.Pairs(LeaderTrailer, b.sub.Bricks[lead].Addr))
		}
		return status.Errorf(codes.FailedPrecondition, "brick %s is not the leader of its replica set", b.Addr)
	}
	return nil
}

func idOf(b []byte) (layout.ID, error) {
	var id layout.ID
	if len(b) != len(id) {
		return id, status.Errorf(codes.InvalidArgument, "id of %d bytes", len(b))
	}
	copy(id[:], b)
	return id, nil
}

// failure turns a store error into a result code and message.
func failure(err error) (dfspb.StoreErrorCode, string) {
	return dfspb.StoreErrorCode(store.Code(err)), err.Error()
}

// Mutate applies one command.
func (b *Brick) Mutate(ctx context.Context, cmd *dfspb.StoreCommand) (*dfspb.StoreResult, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if cmd.GetOp() == nil {
		return nil, status.Error(codes.InvalidArgument, "store command without an operation")
	}
	res, err := b.sub.apply(cmd)
	if err != nil {
		return nil, err
	}
	b.mutations.Add(1)
	if take(&b.loseAnswers) {
		return nil, status.Error(codes.Unavailable, "clienttest: answer lost")
	}
	return res, nil
}

// GetAttr reads an inode's attributes.
func (b *Brick) GetAttr(ctx context.Context, req *dfspb.GetAttrRequest) (*dfspb.StoreResult, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	id, err := idOf(req.Id)
	if err != nil {
		return nil, err
	}
	if req.WithData {
		a, data, ok, err := b.sub.store.GetAttrData(ctx, id)
		if err != nil {
			code, msg := failure(err)
			return &dfspb.StoreResult{Code: code, Message: msg}, nil
		}
		return &dfspb.StoreResult{Attr: a, Data: data, HasData: ok}, nil
	}
	a, err := b.sub.store.GetAttr(ctx, id)
	if err != nil {
		code, msg := failure(err)
		return &dfspb.StoreResult{Code: code, Message: msg}, nil
	}
	return &dfspb.StoreResult{Attr: a}, nil
}

// Lookup reads a directory entry.
func (b *Brick) Lookup(ctx context.Context, req *dfspb.LookupRequest) (*dfspb.StoreResult, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	parent, err := idOf(req.Parent)
	if err != nil {
		return nil, err
	}
	d, err := b.sub.store.Lookup(ctx, parent, req.Name)
	if err != nil {
		code, msg := failure(err)
		return &dfspb.StoreResult{Code: code, Message: msg}, nil
	}
	return &dfspb.StoreResult{Dirent: d, Attr: d.GetAttr()}, nil
}

// defaultReadDirLimit is the brick's page size when the caller gives none.
const defaultReadDirLimit = 1024

// ReadDir reads a page of directory entries.
func (b *Brick) ReadDir(ctx context.Context, req *dfspb.ReadDirRequest) (*dfspb.ReadDirResponse, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	dir, err := idOf(req.Dir)
	if err != nil {
		return nil, err
	}
	limit := int(req.Limit)
	if limit <= 0 || limit > defaultReadDirLimit {
		limit = defaultReadDirLimit
	}
	entries, eof, err := b.sub.store.ReadDir(ctx, dir, req.After, limit)
	if err != nil {
		code, msg := failure(err)
		return &dfspb.ReadDirResponse{Code: code, Message: msg}, nil
	}
	return &dfspb.ReadDirResponse{Entries: entries, Eof: eof}, nil
}

// ReadInline reads inline file data.
func (b *Brick) ReadInline(ctx context.Context, req *dfspb.ReadInlineRequest) (*dfspb.ReadResponse, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	b.reads.Add(1)
	id, err := idOf(req.Id)
	if err != nil {
		return nil, err
	}
	data, err := b.sub.store.ReadInline(ctx, id, int64(req.Offset), int(req.Length))
	if err != nil {
		code, msg := failure(err)
		return &dfspb.ReadResponse{Code: code, Message: msg}, nil
	}
	return &dfspb.ReadResponse{Data: data}, nil
}

// ReadChunk reads part of a chunk.
func (b *Brick) ReadChunk(ctx context.Context, req *dfspb.ReadChunkRequest) (*dfspb.ReadResponse, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	b.reads.Add(1)
	file, err := idOf(req.File)
	if err != nil {
		return nil, err
	}
	data, err := b.sub.store.ReadChunk(ctx, file, req.Index, int64(req.Offset), int(req.Length))
	if err != nil {
		code, msg := failure(err)
		return &dfspb.ReadResponse{Code: code, Message: msg}, nil
	}
	return &dfspb.ReadResponse{Data: data}, nil
}

// GetXattr reads an extended attribute.
func (b *Brick) GetXattr(ctx context.Context, req *dfspb.GetXattrRequest) (*dfspb.XattrResponse, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	id, err := idOf(req.Id)
	if err != nil {
		return nil, err
	}
	v, err := b.sub.store.GetXattr(ctx, id, req.Name)
	if err != nil {
		code, msg := failure(err)
		return &dfspb.XattrResponse{Code: code, Message: msg}, nil
	}
	return &dfspb.XattrResponse{Value: v}, nil
}

// ListXattr lists extended attribute names.
func (b *Brick) ListXattr(ctx context.Context, req *dfspb.GetAttrRequest) (*dfspb.XattrResponse, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	id, err := idOf(req.Id)
	if err != nil {
		return nil, err
	}
	names, err := b.sub.store.ListXattr(ctx, id)
	if err != nil {
		code, msg := failure(err)
		return &dfspb.XattrResponse{Code: code, Message: msg}, nil
	}
	return &dfspb.XattrResponse{Names: names}, nil
}

// Statfs reports the store's file system usage.
func (b *Brick) Statfs(ctx context.Context, _ *dfspb.StatfsRequest) (*dfspb.StatfsResponse, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	s, err := b.sub.store.Statfs(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &dfspb.StatfsResponse{TotalBytes: s.TotalBytes, FreeBytes: s.FreeBytes, AvailBytes: s.AvailBytes, TotalInodes: s.TotalFiles, FreeInodes: s.FreeFiles}, nil
}

// TestLock answers F_GETLK from the store.
func (b *Brick) TestLock(ctx context.Context, req *dfspb.TestLockRequest) (*dfspb.TestLockResponse, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	id, err := idOf(req.Id)
	if err != nil {
		return nil, err
	}
	c, err := b.sub.store.TestLock(ctx, id, req.Lock)
	if err != nil {
		code, msg := failure(err)
		return &dfspb.TestLockResponse{Code: code, Message: msg}, nil
	}
	return &dfspb.TestLockResponse{Conflict: c}, nil
}

// LockLease is the lease the fake announces to RenewLockSession. The fake
// does not expire sessions by itself; tests do it with ExpireLockSession.
const LockLease = 400 * time.Millisecond

// RenewLockSession counts the renewal (Subvolume.Renewals).
func (b *Brick) RenewLockSession(ctx context.Context, req *dfspb.RenewLockSessionRequest) (*dfspb.RenewLockSessionResponse, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if len(req.Session) != 16 {
		return nil, status.Errorf(codes.InvalidArgument, "lock session of %d bytes", len(req.Session))
	}
	b.sub.renewals.Add(1)
	return &dfspb.RenewLockSessionResponse{LeaseMs: uint32(LockLease / time.Millisecond)}, nil
}

// Renewals returns how many lock session renewals the subvolume received.
func (s *Subvolume) Renewals() int64 { return s.renewals.Load() }

// ExpireLockSessions expires every lock session that holds locks in the
// subvolume, as a brick leader does with sessions that stopped renewing.
func (s *Subvolume) ExpireLockSessions(ctx context.Context) error {
	sessions, err := s.store.LockSessions(ctx)
	if err != nil {
		return err
	}
	for _, sess := range sessions {
		res, err := s.apply(&dfspb.StoreCommand{Op: &dfspb.StoreCommand_ExpireLockSession{ExpireLockSession: &dfspb.ExpireLockSessionCmd{Session: sess}}})
		if err != nil {
			return err
		}
		if err := store.ResultError(res); err != nil {
			return err
		}
	}
	return nil
}

// Ping answers always.
func (b *Brick) Ping(context.Context, *dfspb.BrickPingRequest) (*dfspb.BrickPingResponse, error) {
	return &dfspb.BrickPingResponse{}, nil
}

// Manager is a fake of the manager service's layout calls.
type Manager struct {
	dfspb.UnimplementedManagerServer
	// Addr is the manager's host:port.
	Addr string

	srv *grpc.Server
	wg  sync.WaitGroup

	mu      sync.Mutex
	layout  *dfspb.VolumeLayout
	deleted bool
	changed chan struct{}
	calls   atomic.Int64
}

func startManager(vl *dfspb.VolumeLayout) (*Manager, error) {
	ln, err := net.Listen("tcp", "127.0.4.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for manager: %w", err)
	}
	m := &Manager{Addr: ln.Addr().String(), layout: vl, changed: make(chan struct{}), srv: grpc.NewServer()}
	vl.Servers = []string{m.Addr}
	dfspb.RegisterManagerServer(m.srv, m)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		_ = m.srv.Serve(ln)
	}()
	return m, nil
}

// Stop stops the manager.
func (m *Manager) Stop() {
	m.srv.Stop()
	m.wg.Wait()
}

// Layout returns a copy of the current layout.
func (m *Manager) Layout() *dfspb.VolumeLayout {
	m.mu.Lock()
	defer m.mu.Unlock()
	return proto.Clone(m.layout).(*dfspb.VolumeLayout)
}

// Update changes the layout with fn, bumps its version and notifies
// watchers.
func (m *Manager) Update(fn func(*dfspb.VolumeLayout)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := proto.Clone(m.layout).(*dfspb.VolumeLayout)
	if l.Options == nil {
		l.Options = map[string]string{}
	}
	fn(l)
	l.Version = m.layout.Version + 1
	m.layout = l
	close(m.changed)
	m.changed = make(chan struct{})
}

// Calls returns how many RPCs the manager received.
func (m *Manager) Calls() int64 { return m.calls.Load() }

// GetLayout answers as a dfs server does.
func (m *Manager) GetLayout(_ context.Context, req *dfspb.GetLayoutRequest) (*dfspb.VolumeLayout, error) {
	m.calls.Add(1)
	l := m.Layout()
	switch {
	case req.Volume != l.VolumeName:
		return nil, status.Errorf(codes.NotFound, "volume %s does not exist", req.Volume)
	case l.State != dfspb.VolumeState_VOLUME_STATE_STARTED:
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not started; start it with 'dfs volume start %s'", req.Volume, req.Volume)
	}
	return l, nil
}

// WatchLayout streams the layout and every newer version.
func (m *Manager) WatchLayout(req *dfspb.GetLayoutRequest, stream dfspb.Manager_WatchLayoutServer) error {
	m.calls.Add(1)
	sent := req.AfterVersion
	for {
		m.mu.Lock()
		l, changed := proto.Clone(m.layout).(*dfspb.VolumeLayout), m.changed
		m.mu.Unlock()
		if req.Volume != l.VolumeName {
			return status.Errorf(codes.NotFound, "volume %s does not exist", req.Volume)
		}
		if l.Version > sent {
			if err := stream.Send(l); err != nil {
				return err
			}
			sent = l.Version
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-changed:
		}
	}
}
