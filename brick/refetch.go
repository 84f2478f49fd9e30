package brick

import (
	"context"
	"sync"
	"time"

	"github.com/dfsproject/dfs/brick/store"
)

// A snapshot carries the store's metadata, not its chunk data (see
// brick/store/snapshot.go): after installing one, a member lacks the
// chunks it did not hold already, their blocks marked bad. The refetcher
// then repairs every such chunk from the other members, at full speed,
// retrying while some fail (a peer down, a chunk rewritten meanwhile).
// Reads of a missing chunk on a leader repair it on demand meanwhile.

// refetchRetry is the pause before another pass when chunks are left.
const refetchRetry = 2 * time.Second

type refetcher struct {
	b    *Brick
	kick chan struct{}
	wg   sync.WaitGroup
}

func newRefetcher(b *Brick) *refetcher {
	return &refetcher{b: b, kick: make(chan struct{}, 1)}
}

// wake is store.Config.OnRestore: a pass is due when chunks are missing.
func (r *refetcher) wake(missing int) {
	if missing == 0 {
		return
	}
	r.b.cfg.Logger.Info("snapshot installed; fetching chunk data from the other members", "chunks", missing)
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// start runs passes until the brick stops.
func (r *refetcher) start() {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-r.b.stop
			cancel()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.kick:
			}
			for ctx.Err() == nil && r.pass(ctx) > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(refetchRetry):
				}
			}
		}
	}()
}

// wait waits for the loop to end (after the brick's stop channel closed).
func (r *refetcher) wait() { r.wg.Wait() }

// pass repairs every chunk that fails verification and returns how many
// could not be.
func (r *refetcher) pass(ctx context.Context) (failed int) {
	repaired := 0
	_, err := r.b.store.ScrubWith(ctx, store.ScrubOptions{Report: func(rep store.ScrubReport) {
		if err := r.b.repairChunk(ctx, rep.File, rep.Index); err != nil {
			failed++
			r.b.cfg.Logger.Debug("fetch chunk after a snapshot", "file", rep.File, "chunk", rep.Index, "err", err)
			return
		}
		repaired++
	}})
	if err != nil && ctx.Err() == nil {
		r.b.cfg.Logger.Warn("fetching chunks after a snapshot", "err", err)
		failed++
	}
	r.b.cfg.Logger.Info("fetched chunk data after a snapshot", "repaired", repaired, "left", failed)
	return failed
}
