// Package server is a dfs server: the process that runs on every node of
// the pool (`dfs server`).
//
// A Server listens on one address (host:port, 24007 by default) for gRPC
// and for the volume manager's Raft traffic (see pkg/mux). It runs:
//
//   - its member of the volume-manager Raft group (volume.Manager);
//   - the Manager gRPC service for the CLI and clients: changes and
//     current reads are forwarded to the manager leader, layouts are
//     served from the local copy of the state;
//   - the Peer service that other servers call (probe, brick checks);
//   - every brick of every started volume that lives on this server,
//     each on a port of its own (bricks.go);
//   - a heartbeat that reports those bricks to the leader each second.
//     The leader's tracker turns heartbeats into the online/offline
//     column of `volume status`.
//   - /metrics and /debug/pprof/ over HTTP on the same port (metrics.go).
//
// Domain errors become gRPC status codes in one place (errors.go).
// Start returns once the server is serving; Close stops everything. All
// methods may be called concurrently.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dfsproject/dfs/pkg/metrics"
	"github.com/dfsproject/dfs/pkg/mux"
	"github.com/dfsproject/dfs/proto/dfspb"
	"github.com/dfsproject/dfs/volume"
)

// DefaultPort is the port of a dfs server, Gluster's 24007.
const DefaultPort = "24007"

// raftTag marks manager Raft connections on the server's port.
const raftTag = 'R'

// Config configures a server.
type Config struct {
	// Listen is the host:port this server listens on and is known by to
	// peers and clients. Default "127.0.0.1:24007".
	Listen string
	// DataDir holds the server's identity and manager state. Default
	// "/var/lib/dfs".
	DataDir string
	// Voters is the manager voter count of a pool this server founds
	// (1 to 5). Default 3.
	Voters int
	// HeartbeatInterval is how often bricks are reported to the leader;
	// a server silent for three intervals shows offline. Default 1 s.
	HeartbeatInterval time.Duration
	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger
	// NoSync skips fsync of Raft logs; only for tests that measure nothing
	// about durability.
	NoSync bool
	// Metrics receives the metrics of the server and its bricks, and is
	// served on the server's port. Default: a registry of its own.
	Metrics *metrics.Registry
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:" + DefaultPort, DataDir: "/var/lib/dfs", Voters: 3, HeartbeatInterval: time.Second}
}

// Validate reports the first bad field.
func (c Config) Validate() error {
	host, port, err := net.SplitHostPort(c.Listen)
	switch {
	case err != nil:
		return fmt.Errorf("server: listen address %q is not HOST:PORT: %v", c.Listen, err)
	case host == "" || host == "0.0.0.0" || host == "::":
		return fmt.Errorf("server: listen address %q needs the host name or address that peers and clients use", c.Listen)
	case port == "":
		return fmt.Errorf("server: listen address %q has no port", c.Listen)
	case c.DataDir == "":
		return errors.New("server: data directory is required")
	case c.Voters < 1 || c.Voters > volume.MaxVoters:
		return fmt.Errorf("server: voters must be from 1 to %d", volume.MaxVoters)
	case c.HeartbeatInterval <= 0:
		return errors.New("server: heartbeat interval must be positive")
	}
	return nil
}

// Server is a running dfs server.
type Server struct {
	cfg     Config
	id      string
	ln      *mux.Listener
	grpc    *grpc.Server
	mgr     *volume.Manager
	tracker *tracker
	bricks  *brickHost
	http    *http.Server
	gauges  *metrics.GaugeSet

	connsMu sync.Mutex
	conns   map[string]*grpc.ClientConn

	stop  chan struct{}
	loops sync.WaitGroup // heartbeat and brick loops
	serve sync.WaitGroup // the gRPC server
}

// Start opens the data directory, joins or founds the manager group and
// starts serving.
func Start(cfg Config) (*Server, error) {
	def := DefaultConfig()
	if cfg.Listen == "" {
		cfg.Listen = def.Listen
	}
	if cfg.DataDir == "" {
		cfg.DataDir = def.DataDir
	}
	if cfg.Voters == 0 {
		cfg.Voters = def.Voters
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = def.HeartbeatInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("server: data directory: %w", err)
	}
	id, err := loadIdentity(cfg.DataDir, cfg.Listen, cfg.Logger)
	if err != nil {
		return nil, err
	}
	ln, err := mux.Listen(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("server: listen on %s: %w (is another dfs server running there?)", cfg.Listen, err)
	}
	s := &Server{
		cfg:     cfg,
		id:      id,
		ln:      ln,
		grpc:    grpc.NewServer(cfg.Metrics.ServerOptions()...),
		tracker: newTracker(3 * cfg.HeartbeatInterval),
		conns:   map[string]*grpc.ClientConn{},
		stop:    make(chan struct{}),
	}
	s.mgr, err = volume.OpenManager(volume.ManagerConfig{
		ID:      id,
		Address: cfg.Listen,
		Dir:     filepath.Join(cfg.DataDir, "manager"),
		Voters:  cfg.Voters,
		Listen:  func() net.Listener { return ln.Tagged(raftTag) },
		Dial: func(addr string, timeout time.Duration) (net.Conn, error) {
			return mux.DialFrom(cfg.Listen, addr, raftTag, timeout)
		},
		Logger: cfg.Logger,
		NoSync: cfg.NoSync,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.bricks = newBrickHost(s)
	dfspb.RegisterManagerServer(s.grpc, &managerService{s: s})
	dfspb.RegisterPeerServiceServer(s.grpc, &peerService{s: s})
	dfspb.RegisterMaintenanceServer(s.grpc, &maintService{s: s})
	s.serve.Add(1)
	go func() {
		defer s.serve.Done()
		if err := s.grpc.Serve(ln.Default()); err != nil && !errors.Is(err, mux.ErrClosed) {
			cfg.Logger.Error("grpc server stopped", "err", err)
		}
	}()
	if s.gauges, err = cfg.Metrics.RegisterGauges(gauges, s.readGauges); err != nil {
		cfg.Logger.Warn("server gauges not reported (another server shares the registry)", "err", err)
	}
	s.http = cfg.Metrics.HTTPServer()
	s.serve.Add(1)
	go func() {
		defer s.serve.Done()
		if err := s.http.Serve(ln.HTTP()); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, mux.ErrClosed) {
			cfg.Logger.Error("metrics server stopped", "err", err)
		}
	}()
	s.loops.Add(2)
	go func() { defer s.loops.Done(); s.heartbeatLoop() }()
	go func() { defer s.loops.Done(); s.bricks.run(s.stop) }()
	cfg.Logger.Info("dfs server started", "address", cfg.Listen, "id", id, "data", cfg.DataDir)
	return s, nil
}

// ID is the server's peer id.
func (s *Server) ID() string { return s.id }

// Address is the server's host:port.
func (s *Server) Address() string { return s.cfg.Listen }

// Close stops the bricks, hands over manager leadership if held, and stops
// serving.
func (s *Server) Close() error {
	s.http.Close()
	if s.gauges != nil {
		s.gauges.Unregister()
	}
	close(s.stop)
	s.loops.Wait()
	s.bricks.closeAll()
	err := s.mgr.Close()
	s.grpc.Stop()
	s.ln.Close()
	s.serve.Wait()
	s.connsMu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.connsMu.Unlock()
	return err
}

// conn returns a shared client connection to another server.
func (s *Server) conn(addr string) (*grpc.ClientConn, error) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	if c, ok := s.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(mux.ContextDialer(s.cfg.Listen)))
	if err != nil {
		return nil, err
	}
	s.conns[addr] = c
	return c, nil
}

func (s *Server) peerClient(addr string) (dfspb.PeerServiceClient, error) {
	c, err := s.conn(addr)
	if err != nil {
		return nil, err
	}
	return dfspb.NewPeerServiceClient(c), nil
}

// heartbeatLoop reports this server's bricks to the manager leader.
func (s *Server) heartbeatLoop() {
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		req := &dfspb.HeartbeatRequest{ServerId: s.id, Address: s.cfg.Listen, Pid: int64(os.Getpid()), Bricks: s.bricks.states()}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HeartbeatInterval)
		_, err := (&managerService{s: s}).Heartbeat(ctx, req)
		cancel()
		if err != nil {
			s.cfg.Logger.Debug("heartbeat not delivered", "err", err)
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

type identity struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// loadIdentity reads the server's id from DataDir/server.json, making one
// on first start.
func loadIdentity(dir, addr string, log *slog.Logger) (string, error) {
	p := filepath.Join(dir, "server.json")
	b, err := os.ReadFile(p)
	if err == nil {
		var id identity
		if err := json.Unmarshal(b, &id); err != nil || id.ID == "" {
			return "", fmt.Errorf("server: %s is damaged: %v", p, err)
		}
		if id.Address != addr {
			log.Warn("server address changed since the last start; peers know it by the old one", "old", id.Address, "new", addr)
		}
		return id.ID, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("server: %w", err)
	}
	id := identity{ID: uuid.NewString(), Address: addr}
	b, _ = json.Marshal(id)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return "", fmt.Errorf("server: write identity: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("server: write identity: %w", err)
	}
	return id.ID, nil
}
