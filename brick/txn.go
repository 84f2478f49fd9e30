package brick

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/brick/store"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Transactions across subvolumes. A rename, link or rmdir whose entries
// and inodes live on two subvolumes is planned by the client (which knows
// the layout) as a TxnIntent and sent in one RunTxn to the leader of the
// coordinating subvolume, the one holding the entry that goes away or
// appears last (the source of a rename, the new name of a link, the
// removed name of an rmdir). The coordinator:
//
//  1. commits TxnBegin in its own Raft group: the intent, with locks on
//     the entries it will change (checked: they are as the client saw
//     them; conflicting commands wait, see waitTxnEntries);
//  2. runs the prepare steps in order, each as a TxnStepCmd on its
//     subvolume's leader (brick to brick; the step's result is recorded
//     there under the transaction id, so a repeat changes nothing and
//     answers the same);
//  3. commits TxnDecide: if every step succeeded, the intent's commit
//     command is applied locally in the same Raft entry (the transaction
//     is then committed), otherwise (or if the commit fails) it is
//     aborted;
//  4. runs the after-commit steps, or the undo of every prepare step that
//     succeeded; TxnForget on every subvolume involved; TxnEnd (DONE). The
//     DONE record answers a client's retry for store.OpIDTTL.
//
// Every point is recorded in Raft before the next step starts, so a new
// leader of the coordinator (Coordinator.Recover, which the brick runs when
// it leads) drives each unfinished transaction from where its store says
// it is: it repeats the prepare steps (which answer their recorded results
// without running again) and decides, or repeats the after steps (which
// are idempotent). The outcome is all or nothing.

// TxnHost is what a Coordinator needs of the subvolume it runs on.
type TxnHost interface {
	// Propose commits cmd through the subvolume's Raft group and returns
	// the store's result, which may carry an error code; err is a Raft or
	// transport failure (the outcome is then unknown).
	Propose(ctx context.Context, cmd *dfspb.StoreCommand) (*dfspb.StoreResult, error)
	// Store is the subvolume's store, as applied on this member.
	Store() *store.Store
	// Peer returns a BrickService client of the brick at addr.
	Peer(addr string) (dfspb.BrickServiceClient, error)
}

// Step numbers of a transaction's TxnStepCmds: prepare step k is k.
const (
	stepAfterCommit = 1000 // + index of the after-commit step
	stepUndo        = 2000 // + index of the prepare step undone
)

// TxnStepTimeout bounds one attempt of a step on another subvolume.
const TxnStepTimeout = 5 * time.Second

// ErrTxnHook is returned when a test hook stopped a transaction.
var ErrTxnHook = errors.New("brick: transaction stopped by a test hook")

// Coordinator runs and recovers the transactions of one subvolume. Its
// methods may be called concurrently; one transaction is driven by one
// caller at a time.
type Coordinator struct {
	host   TxnHost
	logger *slog.Logger

	mu      sync.Mutex
	running map[string]*txnLock // txn id -> driver lock, while driven
	leaders map[string]string   // first brick of a subvolume -> its leader's address
	hook    func(point string, in *dfspb.TxnIntent) bool
	purged  time.Time // when Recover last purged old records
}

// txnPurgeEvery is how often Recover purges DONE records and forgotten
// step records.
const txnPurgeEvery = time.Minute

// NewCoordinator returns a Coordinator of host's subvolume.
func NewCoordinator(host TxnHost, logger *slog.Logger) *Coordinator {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Coordinator{host: host, logger: logger, running: map[string]*txnLock{}, leaders: map[string]string{}}
}

// SetHook installs a test hook, called at "begun" (after TxnBegin),
// "prepared" (after the prepare steps, before TxnDecide) and "decided"
// (after TxnDecide); when it returns true the driver stops there, as if
// its brick had crashed. nil removes it.
func (c *Coordinator) SetHook(h func(point string, in *dfspb.TxnIntent) bool) {
	c.mu.Lock()
	c.hook = h
	c.mu.Unlock()
}

func (c *Coordinator) stopAt(point string, in *dfspb.TxnIntent) bool {
	c.mu.Lock()
	h := c.hook
	c.mu.Unlock()
	return h != nil && h(point, in)
}

// txnLock serializes the drivers of one transaction; refs counts the
// drivers holding or awaiting it.
type txnLock struct {
	mu   sync.Mutex
	refs int
}

// lock takes the driver lock of transaction id and returns its release.
func (c *Coordinator) lock(id []byte) func() {
	c.mu.Lock()
	l := c.running[string(id)]
	if l == nil {
		l = &txnLock{}
		c.running[string(id)] = l
	}
	l.refs++
	c.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		c.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(c.running, string(id))
		}
		c.mu.Unlock()
	}
}

// busy reports whether transaction id is being driven.
func (c *Coordinator) busy(id []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running[string(id)] != nil
}

// Run begins the transaction in (a client's retry of one already begun
// finds it) and drives it to its end. It returns the finished record, or
// the store's error when TxnBegin refused it (a lock's expectation failed:
// nothing was done), or a Raft or transport error when it could not finish
// (the transaction stays for Recover and for the client's retry).
func (c *Coordinator) Run(ctx context.Context, in *dfspb.TxnIntent) (*dfspb.TxnIntent, error) {
	res, err := c.host.Propose(ctx, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_TxnBegin{TxnBegin: &dfspb.TxnBeginCmd{Intent: in}}})
	if err != nil {
		return nil, err
	}
	if err := store.ResultError(res); err != nil {
		return nil, err
	}
	if c.stopAt("begun", res.GetTxn()) {
		return nil, ErrTxnHook
	}
	return c.Drive(ctx, in.TxnId)
}

// Drive takes the transaction id, as its store records it, to its end
// (see the package comment for the steps) and returns the finished record.
func (c *Coordinator) Drive(ctx context.Context, id []byte) (*dfspb.TxnIntent, error) {
	defer c.lock(id)()
	in, err := c.host.Store().Txn(ctx, id)
	if err != nil {
		return nil, err
	}
	if in.State == dfspb.TxnState_TXN_STATE_PREPARING {
		if in, err = c.prepare(ctx, in); err != nil {
			return nil, err
		}
		if c.stopAt("decided", in) {
			return nil, ErrTxnHook
		}
	}
	if in.State == dfspb.TxnState_TXN_STATE_DONE {
		return in, nil
	}
	after, err := c.finish(ctx, in)
	if err != nil {
		return nil, err
	}
	res, err := c.propose(ctx, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_TxnEnd{TxnEnd: &dfspb.TxnEndCmd{TxnId: id, AfterResults: after}}})
	if err != nil {
		return nil, err
	}
	return res.GetTxn(), nil
}

// propose is Propose with the store's error codes as errors.
func (c *Coordinator) propose(ctx context.Context, cmd *dfspb.StoreCommand) (*dfspb.StoreResult, error) {
	res, err := c.host.Propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return res, store.ResultError(res)
}

// prepare runs the prepare steps of a PREPARING transaction and commits
// the decision.
func (c *Coordinator) prepare(ctx context.Context, in *dfspb.TxnIntent) (*dfspb.TxnIntent, error) {
	decide := &dfspb.TxnDecideCmd{TxnId: in.TxnId, Commit: true}
	for k, s := range in.Prepare {
		res, err := c.step(ctx, in, uint32(k), s, s.Cmd)
		if err != nil {
			return nil, err
		}
		decide.Results = append(decide.Results, res)
		if !stepOK(s, res) {
			decide.Commit, decide.FailedStep, decide.Failure = false, uint32(k), res
			break
		}
	}
	if c.stopAt("prepared", in) {
		return nil, ErrTxnHook
	}
	res, err := c.propose(ctx, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_TxnDecide{TxnDecide: decide}})
	if err != nil {
		return nil, err
	}
	out := res.GetTxn()
	if !out.GetCommitted() {
		c.logger.Debug("transaction aborted", "txn", fmt.Sprintf("%x", in.TxnId), "op", in.Op, "what", in.Summary,
			"step", out.GetFailedStep(), "code", out.GetFailure().GetCode(), "message", out.GetFailure().GetMessage())
	}
	return out, nil
}

func stepOK(s *dfspb.TxnStep, res *dfspb.StoreResult) bool {
	return res.Code == dfspb.StoreErrorCode_STORE_ERROR_CODE_OK ||
		(s.NotFoundOk && res.Code == dfspb.StoreErrorCode_STORE_ERROR_CODE_NOT_FOUND)
}

// finish runs the after-commit steps of a committed transaction (and
// returns their results), or the undo of the prepare steps that succeeded
// of an aborted one, then makes every subvolume involved forget the
// recorded step results. A step that answers an error code is logged and
// passed (the steps are idempotent repairs; repeating one would answer
// the same); a transport failure stops here, to be retried.
func (c *Coordinator) finish(ctx context.Context, in *dfspb.TxnIntent) ([]*dfspb.StoreResult, error) {
	var after []*dfspb.StoreResult
	run := func(n uint32, s *dfspb.TxnStep, cmd *dfspb.StoreCommand) error {
		res, err := c.step(ctx, in, n, s, cmd)
		if err != nil {
			return err
		}
		if n >= stepAfterCommit && n < stepUndo {
			after = append(after, res)
		}
		switch {
		case res.Code == dfspb.StoreErrorCode_STORE_ERROR_CODE_STALE && in.State != dfspb.TxnState_TXN_STATE_PREPARING:
			// Forgotten already: this is a repeat of finish after the
			// forget, whose steps ran.
		case !stepOK(s, res):
			c.logger.Warn("transaction step failed; fsck will show what it left", "txn", fmt.Sprintf("%x", in.TxnId),
				"what", in.Summary, "step", n, "code", res.Code, "message", res.Message)
		}
		return nil
	}
	if in.Committed {
		for i, s := range in.AfterCommit {
			if len(s.OnlyIfRemoved) > 0 && !removedElsewhere(in, s.OnlyIfRemoved) {
				after = append(after, &dfspb.StoreResult{})
				continue
			}
			if err := run(stepAfterCommit+uint32(i), s, s.Cmd); err != nil {
				return nil, err
			}
		}
	} else {
		for k := int(min(in.FailedStep, uint32(len(in.Prepare)))) - 1; k >= 0; k-- {
			s := in.Prepare[k]
			if s.Undo == nil {
				continue
			}
			if err := run(stepUndo+uint32(k), s, s.Undo); err != nil {
				return nil, err
			}
		}
	}
	seen := map[uint32]bool{}
	for _, s := range append(append([]*dfspb.TxnStep(nil), in.Prepare...), in.AfterCommit...) {
		if seen[s.Subvolume] {
			continue
		}
		seen[s.Subvolume] = true
		forget := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_TxnForget{TxnForget: &dfspb.TxnForgetCmd{TxnId: in.TxnId}}}
		if _, err := c.send(ctx, in, s, forget); err != nil {
			return nil, err
		}
	}
	return after, nil
}

// removedElsewhere reports whether a prepare step of in removed an entry
// of inode id whose record lives on another subvolume.
func removedElsewhere(in *dfspb.TxnIntent, id []byte) bool {
	for _, r := range in.Results {
		if rm := r.GetRemoved(); rm != nil && !rm.Local && bytes.Equal(rm.Id, id) {
			return true
		}
	}
	return false
}

// step runs cmd as step n of transaction in on s's subvolume.
func (c *Coordinator) step(ctx context.Context, in *dfspb.TxnIntent, n uint32, s *dfspb.TxnStep, cmd *dfspb.StoreCommand) (*dfspb.StoreResult, error) {
	return c.send(ctx, in, s, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_TxnStep{TxnStep: &dfspb.TxnStepCmd{TxnId: in.TxnId, Step: n, Cmd: cmd}}})
}

// send commits cmd on s's subvolume: locally when it is the coordinator's,
// otherwise on that subvolume's leader, found among s.Bricks (following
// the leader a brick names), retried until ctx ends.
func (c *Coordinator) send(ctx context.Context, in *dfspb.TxnIntent, s *dfspb.TxnStep, cmd *dfspb.StoreCommand) (*dfspb.StoreResult, error) {
	if s.Subvolume == in.Subvolume {
		return c.host.Propose(ctx, cmd)
	}
	if len(s.Bricks) == 0 {
		return nil, fmt.Errorf("%w: transaction step on subvolume %d names no brick", store.ErrInvalid, s.Subvolume)
	}
	key := s.Bricks[0]
	c.mu.Lock()
	addr := c.leaders[key]
	c.mu.Unlock()
	if addr == "" {
		addr = s.Bricks[0]
	}
	pause, next, hops := 25*time.Millisecond, 0, 0
	var last error
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("transaction step on subvolume %d: %w (last: %v)", s.Subvolume, err, last)
		}
		cl, err := c.host.Peer(addr)
		if err == nil {
			var tr metadata.MD
			actx, cancel := context.WithTimeout(ctx, TxnStepTimeout)
			var res *dfspb.StoreResult
			res, err = cl.Mutate(actx, cmd, grpc.Trailer(&tr))
			cancel()
			if err == nil {
				c.mu.Lock()
				c.leaders[key] = addr
				c.mu.Unlock()
				return res, nil
			}
			if status.Code(err) == codes.FailedPrecondition {
				if l := tr.Get(LeaderTrailer); len(l) > 0 && l[0] != "" && l[0] != addr && hops < 3 {
					hops++
					last, addr = err, l[0]
					continue
				}
			}
			if status.Code(err) == codes.InvalidArgument {
				return nil, err
			}
		}
		last, hops = err, 0
		addr = s.Bricks[next%len(s.Bricks)]
		next++
		if next%len(s.Bricks) == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
			pause = min(2*pause, 500*time.Millisecond)
		}
	}
}

// Recover drives every unfinished transaction of the store that nobody
// drives to its end (in parallel, so that one whose other subvolume is
// unreachable holds up no other). At most every txnPurgeEvery it also
// purges DONE records decided more than store.OpIDTTL ago, and the step
// records and tombstones kept here more than twice that long (their
// coordinator is long done with them). It returns the first error; the
// rest are still tried.
func (c *Coordinator) Recover(ctx context.Context, nowNs int64) error {
	txns, err := c.host.Store().Txns(ctx)
	if err != nil {
		return err
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(id []byte, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil && first == nil {
			first = fmt.Errorf("transaction %x: %w", id, err)
		}
	}
	for _, in := range txns {
		switch {
		case c.busy(in.TxnId):
			// Its RunTxn, or an earlier pass, is at it.
		default:
			c.logger.Info("recovering a transaction across subvolumes", "txn", fmt.Sprintf("%x", in.TxnId), "op", in.Op, "what", in.Summary, "state", in.State)
			wg.Go(func() {
				_, err := c.Drive(ctx, in.TxnId)
				if errors.Is(err, store.ErrNotFound) {
					err = nil // finished and purged meanwhile
				}
				fail(in.TxnId, err)
			})
		}
	}
	wg.Wait()
	c.mu.Lock()
	purge := time.Since(c.purged) >= txnPurgeEvery
	if purge {
		c.purged = time.Now()
	}
	c.mu.Unlock()
	if !purge {
		return first
	}
	end := &dfspb.TxnEndCmd{Purge: true, PurgeBeforeNs: nowNs - int64(store.OpIDTTL)}
	// Propose only when there is something to purge: a leader that wrote
	// to the log on every election would keep replicas of a set that is
	// being stopped at different indexes.
	if due, err := c.host.Store().TxnDoneBefore(ctx, end.PurgeBeforeNs); err != nil {
		if first == nil {
			first = err
		}
	} else if due {
		if _, err := c.propose(ctx, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_TxnEnd{TxnEnd: end}}); err != nil && first == nil {
			first = err
		}
	}
	old, err := c.host.Store().TxnStepsBefore(ctx, nowNs-2*int64(store.OpIDTTL))
	if err != nil && first == nil {
		first = err
	}
	for _, id := range old {
		forget := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_TxnForget{TxnForget: &dfspb.TxnForgetCmd{TxnId: id, Purge: true}}}
		if _, err := c.propose(ctx, forget); err != nil && first == nil {
			first = err
		}
	}
	return first
}
