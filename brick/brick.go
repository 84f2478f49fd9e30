// Package brick is the storage side of dfs: a brick is one directory on a
// server's local disk that belongs to one volume, and one member of its
// subvolume's replica set.
//
// This package prepares and checks brick directories (dir.go: the volume
// marker BRICK/.dfs/volume-id, the counterpart of Gluster's volume-id
// xattr) and runs a brick: a listener on the brick's own port that carries
// both the BrickService gRPC API and the Raft traffic of its subvolume
// (pkg/mux), the brick store (brick/store: Pebble metadata, checksummed
// chunk files) and the subvolume's Raft group (pkg/raftgroup) with the
// store as its state machine.
//
// Every mutation is a Raft entry: the leader stamps the time, proposes,
// and answers once the entry is committed on a majority and applied.
// Reads are served by the leader from its store once it has applied every
// entry of earlier terms (raftgroup.LeaderReady); a follower refuses with
// FAILED_PRECONDITION and names the leader in the "dfs-leader" trailer.
// A chunk whose checksum fails on the leader is fetched from another
// member, verified, and rewritten locally before the read is answered.
//
// A Brick's methods may be called concurrently; Close stops it, handing
// over Raft leadership first when it leads.
package brick

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dfsproject/dfs/brick/store"
	"github.com/dfsproject/dfs/pkg/mux"
	"github.com/dfsproject/dfs/pkg/raftgroup"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// raftTag marks a subvolume's Raft connections on the brick's port.
const raftTag = 'R'

// Config describes one brick to run.
type Config struct {
	// VolumeID is the id of the volume the brick belongs to. Required.
	VolumeID string
	// Path is the brick directory. Required; must carry the volume marker.
	Path string
	// Address is host:port to listen on. Required.
	Address string
	// ID names the brick in its subvolume's Raft group. Required.
	ID string
	// Members maps the id of every brick of the subvolume, this one
	// included, to its address. Used to found the group on first start,
	// and to find the other members for repairs.
	Members map[string]string
	// Join makes a brick with no Raft state wait to be added to an
	// existing replica set (replace-brick) instead of founding one.
	Join bool
	// ReservePercent of the brick's file system is kept free: commands
	// that need space fail with NO_SPACE (ENOSPC) below it (the volume
	// option storage.reserve). At least MinReserve is kept either way.
	// Default 0 (MinReserve only).
	ReservePercent int
	// Logger receives the brick's logs. Default: discard.
	Logger *slog.Logger
	// NoSync skips fsyncs (tests that measure nothing about durability).
	NoSync bool
	// SnapshotThreshold and TrailingLogs tune the Raft group's log
	// compaction (raftgroup.Config); zero: its defaults. Tests lower them.
	SnapshotThreshold, TrailingLogs uint64
	// LogBytesBudget bounds the space the Raft log's chunk data may take
	// (raftgroup.Config). Zero: a twentieth of the brick's file system,
	// within [32 MiB, 1 GiB]; negative: no bound.
	LogBytesBudget int64
	// LockLease is how long a client's lock session keeps its locks
	// without a renewal (see locks.go). Default DefaultLockLease (10 s).
	LockLease time.Duration
	// NoStaging sends every chunk write's data through the Raft log, as
	// before chunk data went beside it (stage.go). Default false.
	NoStaging bool
	// ServerOptions are added to the brick's gRPC server (the metrics
	// interceptors of the hosting process). Default: none.
	ServerOptions []grpc.ServerOption
}

// Brick is a running brick.
type Brick struct {
	cfg   Config
	ln    *mux.Listener
	srv   *grpc.Server
	store *store.Store
	group *raftgroup.Group
	done  chan struct{}

	peersMu sync.Mutex
	peers   map[string]*grpc.ClientConn

	versions versionCheck // the replica set's store versions (version.go)

	reservePct atomic.Int32

	scrub *scrubber
	stop  chan struct{}

	locks *lockLeases

	txns     *Coordinator  // transactions across subvolumes (txn.go)
	txnsDone chan struct{} // closed when the recovery loop ends

	refetch *refetcher // chunk data after a snapshot (refetch.go)
	stage   *stager    // chunk data beside the log (stage.go)
}

// Start checks the brick directory, opens its store and Raft group, and
// starts serving on cfg.Address.
func Start(cfg Config) (b *Brick, err error) {
	if cfg.VolumeID == "" || cfg.Path == "" || cfg.Address == "" || cfg.ID == "" {
		return nil, fmt.Errorf("%w: brick config needs VolumeID, Path, Address and ID", ErrBadPath)
	}
	if _, ok := cfg.Members[cfg.ID]; !ok {
		return nil, fmt.Errorf("%w: brick %s is not among the subvolume's members", ErrBadPath, cfg.ID)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := CheckMarker(cfg.Path, cfg.VolumeID); err != nil {
		return nil, err
	}
	b = &Brick{cfg: cfg, done: make(chan struct{}), peers: map[string]*grpc.ClientConn{}, stop: make(chan struct{})}
	b.reservePct.Store(int32(cfg.ReservePercent))
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	b.ln, err = mux.Listen(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("brick: listen on %s: %w", cfg.Address, err)
	}
	cleanup = append(cleanup, func() { b.ln.Close() })
	scfg := store.DefaultConfig()
	scfg.Dir = filepath.Join(cfg.Path, MetaDir, "store")
	scfg.Logger = cfg.Logger
	scfg.NoSync = cfg.NoSync
	b.refetch = newRefetcher(b)
	scfg.OnRestore = b.refetch.wake
	b.store, err = store.Open(scfg)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { b.store.Close() })
	b.stage = newStager(b)
	b.store.SetOnStageMissing(b.stage.missing)
	raftDir := filepath.Join(cfg.Path, MetaDir, "raft")
	fresh := !raftgroup.HasState(raftDir)
	b.group, err = raftgroup.Open(raftgroup.Config{
		ID:       cfg.ID,
		Address:  cfg.Address,
		Dir:      raftDir,
		FSM:      b.store,
		Listener: b.ln.Tagged(raftTag),
		Dial: func(addr string, timeout time.Duration) (net.Conn, error) {
			return mux.DialFrom(cfg.Address, addr, raftTag, timeout)
		},
		Logger:            cfg.Logger,
		NoSync:            cfg.NoSync,
		KeepFSMOnStart:    true,
		SnapshotThreshold: cfg.SnapshotThreshold,
		TrailingLogs:      cfg.TrailingLogs,
		LogBytesBudget:    logBudget(cfg),
	})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { b.group.Close() })
	if fresh && !cfg.Join {
		if err := b.group.Bootstrap(cfg.Members); err != nil {
			return nil, fmt.Errorf("brick: found replica group: %w", err)
		}
	}
	b.locks = startLockLeases(b, cfg.LockLease)
	b.txns, b.txnsDone = NewCoordinator(brickHost{b}, cfg.Logger), make(chan struct{})
	go b.runTxnRecovery(b.txnsDone)
	b.scrub = newScrubber(b.store, b.repairChunk, filepath.Join(cfg.Path, MetaDir), cfg.Logger)
	b.scrub.start(b.stop)
	b.refetch.start()
	b.stage.start()
	b.srv = grpc.NewServer(append([]grpc.ServerOption{grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage)}, cfg.ServerOptions...)...)
	dfspb.RegisterBrickServiceServer(b.srv, &service{b: b})
	dfspb.RegisterBrickMaintenanceServer(b.srv, &maintService{b: b})
	go func() {
		defer close(b.done)
		if err := b.srv.Serve(b.ln.Default()); err != nil && !errors.Is(err, mux.ErrClosed) {
			cfg.Logger.Warn("brick server stopped", "path", cfg.Path, "err", err)
		}
	}()
	return b, nil
}

// maxMessage bounds one gRPC message: a chunk (1 MiB) with room to spare.
const maxMessage = 8 << 20

// Close stops serving, hands over leadership if held, and closes the
// store.
func (b *Brick) Close() error {
	close(b.stop)
	var err error
	b.closeStep("scrubber", b.scrub.close)
	b.closeStep("refetcher", b.refetch.wait)
	b.closeStep("staged writes", b.stage.wait)
	b.closeStep("lock leases", b.locks.wait)
	b.closeStep("transaction coordinator", func() { <-b.txnsDone })
	b.closeStep("raft group", func() { err = b.group.Close() })
	b.closeStep("grpc server", func() {
		b.srv.Stop()
		b.ln.Close()
		<-b.done
	})
	b.peersMu.Lock()
	for _, c := range b.peers {
		c.Close()
	}
	b.peersMu.Unlock()
	b.closeStep("store", func() {
		if serr := b.store.Close(); err == nil {
			err = serr
		}
	})
	return err
}

// closeSlow is how long one step of Close may take before it is logged:
// a brick whose close hangs keeps its store locked, and the log then
// names the step (a goroutine dump, SIGQUIT, shows the rest).
const closeSlow = 10 * time.Second

func (b *Brick) closeStep(name string, f func()) {
	start := time.Now()
	t := time.AfterFunc(closeSlow, func() {
		b.cfg.Logger.Warn("brick close is slow", "path", b.cfg.Path, "waiting for", name, "after", time.Since(start).Round(time.Second))
	})
	f()
	if t.Stop() {
		return
	}
	b.cfg.Logger.Warn("brick close step done", "path", b.cfg.Path, "step", name, "took", time.Since(start).Round(time.Millisecond))
}

// Role reports the brick's Raft role (Leader, Follower, Candidate) and
// the leader's address as this brick knows it.
func (b *Brick) Role() (role, leader string) {
	_, leader = b.group.Leader()
	return b.group.Stats()["state"], leader
}

// RaftStats is hashicorp/raft's Stats of the brick's group: state,
// term, last_log_index, commit_index, applied_index and more, as strings.
func (b *Brick) RaftStats() map[string]string { return b.group.Stats() }

// MinReserve is the space a brick keeps free whatever storage.reserve
// says: room for the chunk writes in flight, which the Raft log and the
// chunk files both hold, and for Pebble's compactions.
const MinReserve = 32 << 20

// SetReservePercent changes the percentage of the file system kept free.
func (b *Brick) SetReservePercent(p int) { b.reservePct.Store(int32(p)) }

// checkSpace fails with store.ErrNoSpace when the brick's file system has
// less than its reserve available. Only the leader checks, before it
// proposes: every replica then applies the command, and replicas of one
// set are alike in size.
func (b *Brick) checkSpace() error {
	u, err := b.DiskUsage()
	if err != nil {
		return nil // no figure: let the write try
	}
	reserve := u.TotalBytes * uint64(b.reservePct.Load()) / 100
	if reserve < MinReserve {
		reserve = MinReserve
	}
	if u.AvailBytes < reserve {
		return fmt.Errorf("%w: %s has %d MiB available, below its reserve of %d MiB (storage.reserve)", store.ErrNoSpace, b.cfg.Path, u.AvailBytes>>20, reserve>>20)
	}
	return nil
}

// AppliedIndex is the Raft index up to which the brick's store is current.
func (b *Brick) AppliedIndex() uint64 { return b.store.AppliedIndex() }

// peer returns a client connection to another member.
func (b *Brick) peer(addr string) (dfspb.BrickServiceClient, error) {
	b.peersMu.Lock()
	defer b.peersMu.Unlock()
	c, ok := b.peers[addr]
	if !ok {
		var err error
		c, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage)),
			grpc.WithContextDialer(mux.ContextDialer(b.cfg.Address)))
		if err != nil {
			return nil, err
		}
		b.peers[addr] = c
	}
	return dfspb.NewBrickServiceClient(c), nil
}

// Usage is what `volume status detail` shows of a brick's file system.
type Usage struct {
	TotalBytes, FreeBytes, AvailBytes, TotalInodes, FreeInodes uint64
	FSType, Device                                             string
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
		FreeBytes:   st.Bfree * uint64(st.Bsize),
		AvailBytes:  st.Bavail * uint64(st.Bsize),
		TotalInodes: st.Files,
		FreeInodes:  st.Ffree,
	}
	u.FSType, u.Device = mountOf(path)
	return u, nil
}

func nowNs() int64 { return time.Now().UnixNano() }

// logBudget is cfg.LogBytesBudget, or its default for the brick's file
// system: the log keeps chunk data until compaction, and on a small brick
// it must not take the space writes need (a full brick must recover as
// soon as files are removed).
func logBudget(cfg Config) int64 {
	switch {
	case cfg.LogBytesBudget > 0:
		return cfg.LogBytesBudget
	case cfg.LogBytesBudget < 0:
		return 0
	}
	u, err := DiskUsage(cfg.Path)
	if err != nil {
		return 1 << 30
	}
	return min(max(int64(u.TotalBytes/20), 32<<20), 1<<30)
}
