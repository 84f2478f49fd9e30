package brick

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/brick/store"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// brickHost is a Brick as the TxnHost of its Coordinator.
type brickHost struct{ b *Brick }

var _ TxnHost = brickHost{}

func (h brickHost) Propose(ctx context.Context, cmd *dfspb.StoreCommand) (*dfspb.StoreResult, error) {
	res, err := h.b.propose(ctx, cmd)
	if res != nil {
		return res, nil
	}
	return nil, err
}

func (h brickHost) Store() *store.Store { return h.b.store }

func (h brickHost) Peer(addr string) (dfspb.BrickServiceClient, error) { return h.b.peer(addr) }

// Txns is the brick's transaction coordinator (tests install hooks on it).
func (b *Brick) Txns() *Coordinator { return b.txns }

// TxnRunTimeout bounds how long RunTxn drives a transaction before it
// answers UNAVAILABLE (the transaction then stays for recovery and for the
// client's retry).
const TxnRunTimeout = 30 * time.Second

func (s *service) RunTxn(ctx context.Context, req *dfspb.RunTxnRequest) (*dfspb.RunTxnResponse, error) {
	in := req.GetIntent()
	if in == nil || len(in.TxnId) != 16 {
		return nil, status.Error(codes.InvalidArgument, "RunTxn needs an intent with a 16-byte transaction id")
	}
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	// Entries another transaction holds: wait for it to decide, as
	// other commands do.
	for _, l := range in.Locks {
		s.b.waitTxnEntries(ctx, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Unlink{Unlink: &dfspb.UnlinkCmd{Parent: l.Parent, Name: l.Name}}}, in.TxnId)
	}
	// Once begun, the transaction is driven to its end whatever the
	// client does (a FUSE interrupt cancels its context).
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), TxnRunTimeout)
	defer cancel()
	resp, err := TxnResponse(s.b.txns.Run(dctx, in))
	if err != nil {
		if errors.Is(err, ErrTxnHook) {
			return nil, status.Error(codes.Unavailable, err.Error())
		}
		return nil, s.b.rpcError(ctx, err)
	}
	return resp, nil
}

// TxnResponse turns what Coordinator.Run returned into RunTxn's answer: the
// outcome of a transaction that ended (committed: code OK; aborted: the
// failing step's code) or that TxnBegin refused (its code); err for a Raft
// or transport failure, which leaves the outcome to a retry.
func TxnResponse(out *dfspb.TxnIntent, err error) (*dfspb.RunTxnResponse, error) {
	if err != nil {
		if !isStoreError(err) {
			return nil, err
		}
		return &dfspb.RunTxnResponse{Code: dfspb.StoreErrorCode(store.Code(err)), Message: err.Error()}, nil
	}
	resp := &dfspb.RunTxnResponse{Intent: out}
	if !out.Committed {
		f := out.GetFailure()
		resp.Code, resp.Message = f.GetCode(), fmt.Sprintf("%s (transaction step %d)", f.GetMessage(), out.FailedStep)
		if resp.Code == dfspb.StoreErrorCode_STORE_ERROR_CODE_OK {
			resp.Code = dfspb.StoreErrorCode_STORE_ERROR_CODE_IO
		}
	}
	return resp, nil
}

// isStoreError reports whether err carries one of the store's sentinels
// (an answer of the store, not a Raft or transport failure).
func isStoreError(err error) bool {
	for c := store.CodeNotFound; c <= store.CodeNoSpace; c++ {
		if errors.Is(err, c.Err()) {
			return true
		}
	}
	return false
}

// txnEntryWait bounds how long a command waits for a transaction that
// holds an entry it touches (longer than a leader election plus recovery).
const txnEntryWait = 10 * time.Second

// txnMutate is Mutate's part in transactions: the coordinator's own
// commands (TxnBegin, TxnDecide, TxnEnd) come only from its Coordinator,
// never from a client (RunTxn is the way in); a command that touches an
// entry a transaction holds waits for it (waitTxnEntries).
func (b *Brick) txnMutate(ctx context.Context, cmd *dfspb.StoreCommand) error {
	switch cmd.GetOp().(type) {
	case *dfspb.StoreCommand_TxnBegin, *dfspb.StoreCommand_TxnDecide, *dfspb.StoreCommand_TxnEnd:
		return status.Errorf(codes.InvalidArgument, "%T: transactions are run with RunTxn", cmd.GetOp())
	}
	b.waitTxnEntries(ctx, cmd, nil)
	return nil
}

// waitTxnEntries makes a command that touches an entry held by a
// transaction other than self wait until that transaction has decided
// (or txnEntryWait passes: the store then refuses it with STALE).
func (b *Brick) waitTxnEntries(ctx context.Context, cmd *dfspb.StoreCommand, self []byte) {
	deadline := time.Now().Add(txnEntryWait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		holder, err := b.store.TxnHolder(ctx, cmd)
		if err != nil || holder == nil || bytes.Equal(holder, self) {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// txnRecoveryEvery is how often a leader looks for unfinished
// transactions (at once when it is elected).
const txnRecoveryEvery = 2 * time.Second

// runTxnRecovery drives the unfinished transactions of the store while
// the brick leads; it ends when b.stop is closed.
func (b *Brick) runTxnRecovery(done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var term uint64
	var last time.Time
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		if !b.group.IsLeader() {
			term = 0
			continue
		}
		if cur := b.group.Term(); cur == term && time.Since(last) < txnRecoveryEvery {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), TxnRunTimeout)
		go func() {
			select {
			case <-b.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		cur := b.group.Term()
		if err := b.group.LeaderReady(ctx); err != nil {
			cancel()
			continue
		}
		if err := b.txns.Recover(ctx, nowNs()); err != nil {
			b.cfg.Logger.Warn("transaction recovery", "err", err)
		}
		cancel()
		term, last = cur, time.Now()
	}
}
