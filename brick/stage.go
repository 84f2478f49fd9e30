package brick

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/brick/store"
	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/pkg/raftgroup"
	"github.com/dfsproject/dfs/pkg/wire"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Chunk data beside the Raft log (docs/decisions/0011).
//
// A large chunk write whose range covers whole blocks does not travel
// through the Raft log. The leader gives it a stage id, writes its bytes
// to a staging file on itself and, in parallel, pushes them to every other
// member (StageChunk), each of which writes and fdatasyncs them too. Once
// a majority of the voters (the leader counting) holds them durably, the
// leader proposes the WriteChunkCmd without data: stage id, length, the
// data's CRC-32C and the CRC-32C of every block (brick/store/stage.go
// applies it). It does not wait for the slowest member. Acknowledged =
// entry committed on a majority's log and bytes synced on a majority: any
// two majorities intersect, so a majority always holds the bytes, and a
// member that applies the entry without them marks the blocks bad and
// repairs them from a peer at once (the repair queue below), as it does
// for a corrupt block; a leader repairs a bad block before it serves it.
//
// Everything else (small writes, unaligned ones, writes ending inside a
// block of older data) goes through the log as before.

const (
	// stageMinBytes is the smallest write staged beside the log.
	stageMinBytes = 64 << 10
	// stageTimeout bounds one push to a member.
	stageTimeout = 10 * time.Second
	// stagePeerInflight bounds the pushes in flight to one member: a
	// member that falls behind (stopped, cut off) is skipped past it and
	// repairs what it missed.
	stagePeerInflight = 16
	// stagePeerStreams bounds the pushes to one member that are on the
	// wire at once; the others queue, in order. gRPC interleaves the
	// frames of concurrent calls on a connection, so eight 1 MiB pushes
	// sent together all arrive at the end of the eighth MiB: each write
	// then waits for the whole batch, and the slower follower often
	// applied an entry before its push had even arrived (a wasted push
	// and a repair from a peer). Two keep the member's network and disk
	// both busy.
	stagePeerStreams = 2
	// stageOrphanAge is the age past which a staging file whose entry
	// never came is removed.
	stageOrphanAge = 10 * time.Minute
	// stageSweepEvery is how often orphans are looked for.
	stageSweepEvery = time.Minute
	// repairDelay is the pause between applying a chunk without its data
	// and fetching it, so that the peers have applied the entry too.
	repairDelay = 100 * time.Millisecond
	// repairMaxDelay caps the backoff of a failing repair.
	repairMaxDelay = 5 * time.Second
	// repairTries is how often a chunk is tried before it is left to the
	// scrub and the refetcher.
	repairTries = 100
	// repairPending bounds the repair queue; past it a full refetch pass
	// runs instead.
	repairPending = 1 << 16
)

// pushResult is a push's outcome on one member.
type pushResult struct {
	voter bool
	err   error
}

// errBehind: a member with stagePeerInflight pushes outstanding is skipped.
var errBehind = errors.New("brick: member is behind on staged writes")

type chunkRef struct {
	file  layout.ID
	index uint64
}

type pendingRepair struct {
	due   time.Time
	tries int
}

// stager pushes staged writes to the members and repairs the chunks this
// member applied without their staged bytes. Safe for concurrent use.
type stager struct {
	b *Brick

	mu       sync.Mutex
	inflight map[string]int           // pushes outstanding, by member address
	streams  map[string]chan struct{} // pushes on the wire, by member address
	pending  map[chunkRef]*pendingRepair

	kick chan struct{}
	wg   sync.WaitGroup

	repaired atomic.Int64 // chunks repaired after applying without data
}

func newStager(b *Brick) *stager {
	return &stager{b: b, inflight: map[string]int{}, streams: map[string]chan struct{}{}, pending: map[chunkRef]*pendingRepair{}, kick: make(chan struct{}, 1)}
}

// stageable returns cmd's WriteChunkCmd when its data goes beside the log:
// at least stageMinBytes, starting on a block boundary, and ending on one
// or at or past the chunk's current end (so every block's new checksum
// depends only on the new data; the store checks again when it applies).
func (b *Brick) stageable(ctx context.Context, cmd *dfspb.StoreCommand) *dfspb.WriteChunkCmd {
	wc := cmd.GetWriteChunk()
	if b.cfg.NoStaging || wc == nil || len(wc.Data) < stageMinBytes {
		return nil
	}
	file, err := idOf(wc.File)
	if err != nil {
		return nil
	}
	bs := int64(b.store.BlockSize())
	off, end := int64(wc.Offset), int64(wc.Offset)+int64(len(wc.Data))
	if off%bs != 0 {
		return nil
	}
	if end%bs != 0 {
		info, err := b.store.ChunkInfo(ctx, file, wc.Index)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil || end < int64(info.Length):
			return nil
		}
	}
	return wc
}

// checkClientWrite refuses a command that names staged data itself: only a
// leader stages.
func checkClientWrite(cmd *dfspb.StoreCommand) error {
	if wc := cmd.GetWriteChunk(); wc != nil && (len(wc.StageId) > 0 || wc.Length != 0 || wc.DataCrc != 0 || len(wc.BlockCrcs) > 0) {
		return status.Error(codes.InvalidArgument, "a write chunk command from a client carries no stage fields")
	}
	return nil
}

// mutateStaged stages wc's data on a majority, then proposes cmd without
// it. A store that refuses the staged form (STALE: a write extending the
// chunk came first, so the last block keeps old bytes) gets it again with
// the data, through the log.
func (b *Brick) mutateStaged(ctx context.Context, cmd *dfspb.StoreCommand, wc *dfspb.WriteChunkCmd) (*dfspb.StoreResult, error) {
	data := wc.Data
	id := make([]byte, store.StageIDLen)
	if _, err := rand.Read(id); err != nil {
		return nil, status.Errorf(codes.Internal, "stage id: %v", err)
	}
	crc, blocks := b.store.StageChecksums(data)
	// The data's buffer came from the codec's pool (pkg/wire); it goes
	// back once the pushes that outlive this call are done with it too.
	buf := &sharedData{data: data}
	buf.refs.Store(1)
	defer buf.release()
	if err := b.stage.push(ctx, id, buf, crc); err != nil {
		switch {
		case errors.Is(err, store.ErrNoSpace):
			return storeFailure(err), nil
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return nil, b.rpcError(ctx, err)
		}
		return nil, status.Errorf(codes.Unavailable, "brick %s: %v", b.cfg.Address, err)
	}
	wc.Data, wc.StageId, wc.Length, wc.DataCrc, wc.BlockCrcs = nil, id, uint32(len(data)), crc, blocks
	res, err := b.commitCmd(ctx, cmd)
	if status.Code(err) == codes.FailedPrecondition {
		// Not the leader any more, and the entry was not proposed (an
		// outcome-unknown loss is Aborted): no member will apply it, so
		// its staging files go now rather than at the orphan sweep. The
		// client retries on the new leader with a new stage id.
		if members, merr := b.group.Members(); merr == nil {
			b.stage.drop(ctx, id, members)
		}
		return res, err
	}
	if err == nil && res.Code == dfspb.StoreErrorCode_STORE_ERROR_CODE_STALE {
		b.cfg.Logger.Debug("staged write refused by the store; resending it through the log", "msg", res.Message)
		wc.Data, wc.StageId, wc.Length, wc.DataCrc, wc.BlockCrcs = data, nil, 0, 0, nil
		return b.commitCmd(ctx, cmd)
	}
	return res, err
}

// push writes data as staging file id on this member and every other, and
// returns once a majority of the voters holds it durably. Pushes to the
// slower members go on in the background (bounded by stageTimeout). When
// no majority can be had, the staging files are removed and the error
// wraps store.ErrNoSpace if a member refused for want of space.
func (st *stager) push(ctx context.Context, id []byte, buf *sharedData, crc uint32) error {
	b := st.b
	data := buf.data
	members, err := b.group.Members()
	if err != nil {
		return err
	}
	voters := 0
	for _, m := range members {
		if m.Voter {
			voters++
		}
	}
	need := voters/2 + 1
	results := make(chan pushResult, len(members))
	// The pushes outlive a caller that gives up, until they end; a member
	// that holds a file nobody names drops it when it sweeps orphans.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stageTimeout)
	for _, m := range members {
		switch {
		case m.ID == b.cfg.ID:
			buf.refs.Add(1)
			go func() {
				defer buf.release()
				results <- pushResult{m.Voter, b.store.Stage(pctx, id, data)}
			}()
		case !st.acquire(m.Address):
			results <- pushResult{m.Voter, fmt.Errorf("member %s: %w", m.Address, errBehind)}
		default:
			buf.refs.Add(1)
			go func() {
				defer buf.release()
				defer st.release(m.Address)
				results <- pushResult{m.Voter, st.pushTo(pctx, m.Address, id, data, crc)}
			}()
		}
	}
	drain := func(left int) {
		for range left {
			<-results
		}
		cancel()
	}
	ok, noSpace := 0, false
	var last error
	for i := range len(members) {
		var r pushResult
		select {
		case r = <-results:
		case <-ctx.Done():
			go drain(len(members) - i)
			st.drop(ctx, id, members)
			return ctx.Err()
		}
		if r.err == nil {
			if r.voter {
				ok++
			}
			if ok >= need {
				go drain(len(members) - i - 1)
				return nil
			}
			continue
		}
		noSpace = noSpace || errors.Is(r.err, store.ErrNoSpace)
		last = r.err
	}
	cancel()
	st.drop(ctx, id, members)
	if noSpace {
		return fmt.Errorf("%w: staged write held by %d of %d members, %d needed: %v", store.ErrNoSpace, ok, voters, need, last)
	}
	return fmt.Errorf("staged write held by %d of %d members, %d needed: %w", ok, voters, need, last)
}

// sharedData is a chunk write's data with the number of its users: the
// write itself and the pushes under way. The last one out hands the
// buffer back to the codec's pool.
type sharedData struct {
	data []byte
	refs atomic.Int32
}

func (d *sharedData) release() {
	if d.refs.Add(-1) == 0 {
		wire.Recycle(d.data)
	}
}

func (st *stager) acquire(addr string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.inflight[addr] >= stagePeerInflight {
		return false
	}
	st.inflight[addr]++
	return true
}

func (st *stager) release(addr string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.inflight[addr]--
}

// stream waits for one of the member's stagePeerStreams (in the order
// asked, as channel sends are served) and returns its release.
func (st *stager) stream(ctx context.Context, addr string) (func(), error) {
	st.mu.Lock()
	sem, ok := st.streams[addr]
	if !ok {
		sem = make(chan struct{}, stagePeerStreams)
		st.streams[addr] = sem
	}
	st.mu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (st *stager) pushTo(ctx context.Context, addr string, id, data []byte, crc uint32) error {
	c, err := st.b.peer(addr)
	if err != nil {
		return fmt.Errorf("member %s: %w", addr, err)
	}
	done, err := st.stream(ctx, addr)
	if err != nil {
		return fmt.Errorf("member %s: waiting to push: %w", addr, err)
	}
	defer done()
	// The codec sends data without copying it (the brick's peer
	// connections are not dialled with it).
	resp, err := c.StageChunk(ctx, &dfspb.StageChunkRequest{StageId: id, Data: data, Crc: crc}, grpc.ForceCodecV2(wire.Codec()))
	if err != nil {
		return fmt.Errorf("member %s: %w", addr, err)
	}
	if resp.Code != dfspb.StoreErrorCode_STORE_ERROR_CODE_OK {
		return fmt.Errorf("member %s: %w (%s)", addr, store.ErrorCode(resp.Code).Err(), resp.Message)
	}
	return nil
}

// drop removes the staging files of a write that was not proposed, here
// at once and on the other members in the background (what a drop misses,
// the orphan sweep removes).
func (st *stager) drop(ctx context.Context, id []byte, members []raftgroup.Member) {
	b := st.b
	if err := b.store.Unstage(id); err != nil {
		b.cfg.Logger.Warn("remove staging file", "err", err)
	}
	for _, m := range members {
		if m.ID == b.cfg.ID {
			continue
		}
		go func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if c, err := b.peer(m.Address); err == nil {
				_, _ = c.StageChunk(dctx, &dfspb.StageChunkRequest{StageId: id, Drop: true})
			}
		}()
	}
}

// StageChunk writes (or drops) a staging file for the leader.
func (s *service) StageChunk(ctx context.Context, req *dfspb.StageChunkRequest) (*dfspb.StageChunkResponse, error) {
	if len(req.StageId) != store.StageIDLen {
		return nil, status.Errorf(codes.InvalidArgument, "stage id of %d bytes; ids have %d", len(req.StageId), store.StageIDLen)
	}
	if req.Drop {
		if err := s.b.store.Unstage(req.StageId); err != nil {
			r := storeFailure(err)
			return &dfspb.StageChunkResponse{Code: r.Code, Message: r.Message}, nil
		}
		return &dfspb.StageChunkResponse{}, nil
	}
	if got := s.b.store.CRC(req.Data); got != req.Crc {
		return nil, status.Errorf(codes.InvalidArgument, "staged data of %d bytes has CRC-32C %08x, the leader sent %08x", len(req.Data), got, req.Crc)
	}
	err := s.b.writeSpace()
	if err == nil {
		err = s.b.store.Stage(ctx, req.StageId, req.Data)
	}
	// Written (or refused): the codec's buffer is free for the next push.
	wire.Recycle(req.Data)
	req.Data = nil
	if err != nil {
		r := storeFailure(err)
		return &dfspb.StageChunkResponse{Code: r.Code, Message: r.Message}, nil
	}
	return &dfspb.StageChunkResponse{}, nil
}

// missing is the store's SetOnStageMissing hook: queue the chunk for a
// repair. It does not block.
func (st *stager) missing(file layout.ID, index uint64) {
	k := chunkRef{file, index}
	st.mu.Lock()
	overflow := false
	if _, ok := st.pending[k]; !ok {
		if len(st.pending) >= repairPending {
			overflow = true
		} else {
			st.pending[k] = &pendingRepair{due: time.Now().Add(repairDelay)}
		}
	}
	st.mu.Unlock()
	if overflow {
		st.b.refetch.wake(1)
		return
	}
	select {
	case st.kick <- struct{}{}:
	default:
	}
}

// start runs the repair queue and the orphan sweep until the brick stops.
func (st *stager) start() {
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-st.b.stop
			cancel()
		}()
		st.sweep()
		sweep := time.NewTicker(stageSweepEvery)
		defer sweep.Stop()
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-sweep.C:
				st.sweep()
				continue
			case <-st.kick:
			case <-timer.C:
			}
			next := st.repairDue(ctx)
			timer.Reset(time.Until(next))
		}
	}()
}

// wait waits for the loop to end (after the brick's stop channel closed).
func (st *stager) wait() { st.wg.Wait() }

func (st *stager) sweep() {
	n, bytes, err := st.b.store.SweepStage(stageOrphanAge)
	if err != nil {
		st.b.cfg.Logger.Warn("sweeping staging files", "err", err)
	}
	if n > 0 {
		st.b.cfg.Logger.Info("removed orphan staging files", "files", n, "bytes", bytes)
	}
}

// repairDue repairs the queued chunks that are due and returns when the
// next one is.
func (st *stager) repairDue(ctx context.Context) time.Time {
	now := time.Now()
	var due []chunkRef
	st.mu.Lock()
	for k, p := range st.pending {
		if !p.due.After(now) {
			due = append(due, k)
		}
	}
	st.mu.Unlock()
	for _, k := range due {
		if ctx.Err() != nil {
			break
		}
		err := st.b.store.VerifyChunk(ctx, k.file, k.index)
		fixed := false
		if errors.Is(err, store.ErrCorrupt) {
			err = st.b.repairChunk(ctx, k.file, k.index)
			fixed = err == nil
		}
		st.mu.Lock()
		p := st.pending[k]
		switch {
		case err == nil || errors.Is(err, store.ErrNotFound):
			delete(st.pending, k)
			if fixed {
				st.repaired.Add(1)
			}
		case p.tries+1 >= repairTries:
			delete(st.pending, k)
			st.b.cfg.Logger.Warn("giving up repairing a chunk written beside the log; the scrub will find it", "file", k.file, "chunk", k.index, "err", err)
		default:
			p.tries++
			p.due = time.Now().Add(min(repairDelay<<min(p.tries, 10), repairMaxDelay))
			st.b.cfg.Logger.Debug("repair of a chunk written beside the log failed; retrying", "file", k.file, "chunk", k.index, "tries", p.tries, "err", err)
		}
		st.mu.Unlock()
	}
	next := time.Now().Add(time.Hour)
	st.mu.Lock()
	for _, p := range st.pending {
		if p.due.Before(next) {
			next = p.due
		}
	}
	st.mu.Unlock()
	return next
}

// pendingCount is how many chunks wait for a repair.
func (st *stager) pendingCount() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.pending)
}
