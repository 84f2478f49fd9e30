package client

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// LeaderTrailer is the gRPC trailer in which a brick that is not its
// subvolume's leader names the leader (host:port), when it knows it.
const LeaderTrailer = "dfs-leader"

// Retry pacing while a subvolume elects a leader.
const (
	minBackoff = 25 * time.Millisecond
	maxBackoff = 500 * time.Millisecond
	// maxHops is how many leader hints are followed in a row without
	// pausing (hints can be stale during an election).
	maxHops = 3
	// maxMessage bounds a received message: chunks are 1 MiB, readdir
	// pages a few hundred KiB.
	maxMessage = 16 << 20
)

// callOpts are the options an rpcFunc must pass to its RPC.
type callOpts = []grpc.CallOption

// rpcFunc performs one attempt of an RPC on brick c, passing o.
type rpcFunc func(ctx context.Context, c dfspb.BrickServiceClient, o callOpts) error

// call runs fn against the leader of subvolume sub. It starts with the
// last brick known to lead; a brick that answers FAILED_PRECONDITION (not
// the leader) is left for the leader it names in the dfs-leader trailer, a
// brick that is unreachable or times out for the next brick of the
// subvolume, pausing 25 ms doubling to 500 ms between rounds while a new
// leader is elected. It gives up with ErrUnavailable after the failover
// timeout, and returns at once when ctx ends or on any other RPC error
// (ErrIO).
//
// ambiguous reports that some failed attempt may have reached the leader
// (timeout, connection lost): for a Mutate, that attempt may have been
// committed even though its answer was lost.
func (v *Volume) call(ctx context.Context, sub int, what string, fn rpcFunc) (ambiguous bool, err error) {
	start := time.Now()
	pause := minBackoff
	hops := 0
	var last error
	var tried string
	for {
		if v.closed.Load() {
			return ambiguous, fmt.Errorf("%w: %s", ErrClosed, what)
		}
		top := v.topo.Load()
		switch {
		case top.deleted:
			return ambiguous, fmt.Errorf("%w: volume %s was deleted", ErrNoVolume, v.cfg.Volume)
		case top.state == dfspb.VolumeState_VOLUME_STATE_STOPPED:
			return ambiguous, fmt.Errorf("%w: volume %s is stopped", ErrUnavailable, v.cfg.Volume)
		case sub >= len(top.bricks):
			return ambiguous, fmt.Errorf("%w: subvolume %d is not in layout version %d", ErrStale, sub, top.layout.Version)
		}
		addr := v.leader(sub)
		if addr == "" || v.suspect(addr) {
			addr = v.nextBrick(top.bricks[sub], tried)
		}
		tried = addr
		conn, err := v.conns.get(addr)
		if err != nil {
			return ambiguous, fmt.Errorf("%w: %s: %v", ErrIO, what, err)
		}
		var tr metadata.MD
		cctx, cancel := context.WithTimeout(ctx, v.cfg.CallTimeout)
		w := v.watchLeader(cctx, cancel, top.bricks[sub], addr)
		err = fn(cctx, dfspb.NewBrickServiceClient(conn), callOpts{grpc.Trailer(&tr)})
		moved := w.stop()
		cancel()
		if err == nil {
			v.setLeader(sub, addr)
			return ambiguous, nil
		}
		if v.closed.Load() {
			return true, fmt.Errorf("%w: %s", ErrClosed, what)
		}
		if ctx.Err() != nil {
			// The attempt was cut short; it may have been sent.
			return true, ctxError(ctx, what)
		}
		if moved != "" {
			// The other bricks follow a new leader while addr kept
			// silent: leave it (the attempt may have been applied).
			ambiguous = true
			v.markSuspect(addr)
			v.dropLeader(sub, addr)
			v.setLeader(sub, moved)
			last = err
			v.logger.Debug("leader moved during a call", "op", what, "subvolume", sub, "from", addr, "to", moved)
			if time.Since(start) < top.failover {
				continue
			}
		}
		switch status.Code(err) {
		case codes.FailedPrecondition:
			v.dropLeader(sub, addr)
			if hint := tr.Get(LeaderTrailer); len(hint) > 0 && hint[0] != "" && hint[0] != addr && !v.suspect(hint[0]) && hops < maxHops {
				v.setLeader(sub, hint[0])
				hops++
				last = err
				continue
			}
		case codes.DeadlineExceeded:
			// No answer within CallTimeout: hung or cut off.
			v.markSuspect(addr)
			ambiguous = true
			v.dropLeader(sub, addr)
		case codes.Unavailable, codes.Canceled, codes.Aborted:
			ambiguous = true
			v.dropLeader(sub, addr)
		default:
			return ambiguous, fmt.Errorf("%w: %s on brick %s: %v", ErrIO, what, addr, err)
		}
		last = err
		if time.Since(start) >= top.failover {
			return ambiguous, fmt.Errorf("%w: subvolume %d: %s: no leader answered within %v: %v", ErrUnavailable, sub, what, top.failover, last)
		}
		v.logger.Debug("retrying", "op", what, "subvolume", sub, "brick", addr, "err", err)
		select {
		case <-ctx.Done():
			return ambiguous, ctxError(ctx, what)
		case <-v.bg.Done():
			return ambiguous, fmt.Errorf("%w: %s", ErrClosed, what)
		case <-time.After(pause):
		}
		pause = min(2*pause, maxBackoff)
		hops = 0
	}
}

// nextBrick returns the brick after prev in bricks (the first if prev is
// not one of them), passing over suspect bricks unless all are.
func (v *Volume) nextBrick(bricks []string, prev string) string {
	i := slices.Index(bricks, prev)
	for k := 1; k <= len(bricks); k++ {
		if b := bricks[(i+k)%len(bricks)]; !v.suspect(b) {
			return b
		}
	}
	return bricks[(i+1)%len(bricks)]
}

// Leader watch: an attempt that has not been answered within probeAfter
// asks the subvolume's other bricks whom they follow, every probeEvery.
// When they name another leader, the attempt is abandoned for it, so a
// hung or cut-off leader costs about one election, not CallTimeout.
const (
	probeAfter = time.Second
	probeEvery = 500 * time.Millisecond
	// suspectFor is how long a brick that hung stays out of the rotation
	// and its name in leader hints is ignored (followers keep naming a
	// lost leader until they elect another).
	suspectFor = 3 * time.Second
)

// leaderWatch watches one attempt (see watchLeader).
type leaderWatch struct {
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	moved string
}

// stop ends the watch and returns the leader the other bricks named, if
// the attempt was abandoned for it.
func (w *leaderWatch) stop() string {
	close(w.done)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.moved
}

// watchLeader starts watching an attempt on addr, one of bricks, whose
// context ctx is cancelled by cancel.
func (v *Volume) watchLeader(ctx context.Context, cancel context.CancelFunc, bricks []string, addr string) *leaderWatch {
	w := &leaderWatch{done: make(chan struct{})}
	if len(bricks) < 2 {
		return w
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTimer(probeAfter)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if other := v.probeLeader(ctx, bricks, addr); other != "" {
				w.mu.Lock()
				w.moved = other
				w.mu.Unlock()
				cancel()
				return
			}
			t.Reset(probeEvery)
		}
	}()
	return w
}

// probeLeader asks the bricks other than addr (in parallel, briefly)
// whom they follow, and returns a leader other than addr that one of
// them claims to be or names, or "" while they all still follow addr (or
// nobody answers).
func (v *Volume) probeLeader(ctx context.Context, bricks []string, addr string) string {
	type view struct{ brick, leader, role string }
	views := make(chan view, len(bricks))
	asked := 0
	for _, b := range bricks {
		if b == addr {
			continue
		}
		conn, err := v.conns.get(b)
		if err != nil {
			continue
		}
		asked++
		go func() {
			pctx, cancel := context.WithTimeout(ctx, probeEvery)
			defer cancel()
			st, err := dfspb.NewBrickServiceClient(conn).Status(pctx, &dfspb.BrickStatusRequest{})
			if err != nil {
				views <- view{brick: b}
				return
			}
			views <- view{brick: b, leader: st.GetLeaderAddress(), role: st.GetRole()}
		}()
	}
	named := ""
	for range asked {
		vw := <-views
		switch {
		case strings.EqualFold(vw.role, "leader"):
			return vw.brick
		case vw.leader != "" && vw.leader != addr:
			named = vw.leader
		}
	}
	return named
}

// suspect reports whether addr hung recently (see suspectFor).
func (v *Volume) suspect(addr string) bool {
	v.leaderMu.Lock()
	defer v.leaderMu.Unlock()
	until, ok := v.suspects[addr]
	return ok && time.Now().Before(until)
}

// markSuspect puts addr out of the rotation for suspectFor.
func (v *Volume) markSuspect(addr string) {
	v.leaderMu.Lock()
	defer v.leaderMu.Unlock()
	if v.suspects == nil {
		v.suspects = make(map[string]time.Time)
	}
	v.suspects[addr] = time.Now().Add(suspectFor)
}

func (v *Volume) leader(sub int) string {
	v.leaderMu.Lock()
	defer v.leaderMu.Unlock()
	return v.leaders[sub]
}

func (v *Volume) setLeader(sub int, addr string) {
	v.leaderMu.Lock()
	v.leaders[sub] = addr
	v.leaderMu.Unlock()
}

// dropLeader forgets addr as the leader of sub (if it still is).
func (v *Volume) dropLeader(sub int, addr string) {
	v.leaderMu.Lock()
	if v.leaders[sub] == addr {
		delete(v.leaders, sub)
	}
	v.leaderMu.Unlock()
}

// mutate commits cmd on subvolume sub. A store error in the result comes
// back as err (wrapping a sentinel) together with the result. ambiguous is
// as for call: the caller decides what an error after an ambiguous attempt
// means (see the package documentation, Retries).
func (v *Volume) mutate(ctx context.Context, sub int, what string, cmd *dfspb.StoreCommand) (res *dfspb.StoreResult, ambiguous bool, err error) {
	if v.cfg.ReadOnly {
		return nil, false, fmt.Errorf("%w: %s", ErrReadOnly, what)
	}
	epoch := v.postOps.start()
	ambiguous, err = v.call(ctx, sub, what, func(ctx context.Context, c dfspb.BrickServiceClient, o callOpts) error {
		r, err := c.Mutate(ctx, cmd, o...)
		res = r
		return err
	})
	if err != nil {
		v.postOps.afterMutate(epoch, cmd, nil)
		return nil, ambiguous, err
	}
	if err := codeError(res.GetCode(), res.GetMessage()); err != nil {
		v.postOps.afterMutate(epoch, cmd, nil)
		return res, ambiguous, fmt.Errorf("%s: %w", what, err)
	}
	v.postOps.afterMutate(epoch, cmd, res)
	return res, ambiguous, nil
}

// subOfDir is the subvolume holding the entries of directory id (and the
// inodes whose locator is id).
func (v *Volume) subOfDir(id layout.ID) int { return v.topo.Load().layout.SubvolumeOfDir(id) }

// subOfChunk is the subvolume holding chunk index of file.
func (v *Volume) subOfChunk(file layout.ID, index uint64) int {
	return v.topo.Load().layout.SubvolumeOfChunk(file, index)
}

// subvolumes is the number of subvolumes in the current layout.
func (v *Volume) subvolumes() int { return v.topo.Load().layout.Subvolumes }

// connPool holds one gRPC connection per address, shared by every caller.
type connPool struct {
	// opts come before the pool's own dial options (Config.DialOptions).
	opts   []grpc.DialOption
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

func (p *connPool) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, append(slices.Clip(p.opts),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)),
		// Reconnect quickly to a brick that comes back: failover is
		// measured in seconds.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
	)...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	if p.conns == nil {
		p.conns = make(map[string]*grpc.ClientConn)
	}
	p.conns[addr] = c
	return c, nil
}

func (p *connPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// isAmbiguous reports whether a failed RPC may have reached the brick and
// been acted on (its answer was lost).
func isAmbiguous(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted:
		return true
	}
	return false
}
