package brick

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// writeChunks writes n chunks of 300 KiB through the leader and waits
// until every member has applied them.
func (rs *replicaSet) writeChunks(t *testing.T, n int) layout.ID {
	t.Helper()
	_, lc := rs.leader()
	file := layout.NewID()
	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for i := range n {
		r, err := lc.Mutate(t.Context(), &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{File: file[:], Index: uint64(i), Data: data}}})
		if err != nil || r.Code != 0 {
			t.Fatalf("write chunk: %v %v", r, err)
		}
	}
	eventually(t, func() error {
		for i, b := range rs.bricks {
			if _, err := b.store.ChunkInfo(t.Context(), file, uint64(n-1)); err != nil {
				return fmt.Errorf("brick %d: %v", i, err)
			}
		}
		return nil
	})
	return file
}

// TestBackgroundScrubRepairsFollower: a follower's corrupt chunk, which
// no read touches, is found and repaired by the periodic scrub alone.
func TestBackgroundScrubRepairsFollower(t *testing.T) {
	rs := newReplicaSet(t, 3)
	li, _ := rs.leader()
	file := rs.writeChunks(t, 3)
	fi := (li + 1) % 3
	corrupt(t, rs.bricks[fi].store.ChunkPath(file, 1), 1000)
	for _, b := range rs.bricks {
		b.SetScrubConfig(ScrubConfig{Enabled: true, Interval: 200 * time.Millisecond, Rate: 64 << 20})
	}
	eventually(t, func() error {
		p := rs.bricks[fi].ScrubProgress()
		if p.Totals.Corrupt != 1 || p.Totals.Repaired != 1 {
			return fmt.Errorf("follower scrub: %v", p)
		}
		return nil
	})
	if _, err := rs.bricks[fi].store.ReadChunk(t.Context(), file, 1, 0, 300<<10); err != nil {
		t.Fatalf("follower chunk after the scrub: %v", err)
	}
	p := rs.bricks[fi].ScrubProgress()
	if p.Totals.Runs == 0 || p.Totals.Chunks != 3*p.Totals.Runs || p.Totals.Bytes != 3*300<<10*p.Totals.Runs || p.Run == nil {
		t.Fatalf("progress after runs: %v", p)
	}
	// Runs go on by schedule: more runs, no new corruption.
	runs := p.Totals.Runs
	eventually(t, func() error {
		if p := rs.bricks[fi].ScrubProgress(); p.Totals.Runs <= runs || p.Totals.Corrupt != 1 {
			return fmt.Errorf("no further clean run: %v", p)
		}
		return nil
	})
}

// TestScrubPauseResumeAndClose: a paused scrubber refuses on-demand runs
// and a run in progress waits; a slow run stops as soon as the brick
// closes.
func TestScrubPauseResumeAndClose(t *testing.T) {
	rs := newReplicaSet(t, 3)
	rs.writeChunks(t, 8)
	b := rs.bricks[0]
	// 64 KiB/s: eight 300 KiB chunks take over 20 s.
	slow := ScrubConfig{Enabled: true, Interval: time.Hour, Rate: 64 << 10}
	b.SetScrubConfig(slow)
	if p := b.ScrubProgress(); p.State != "idle" || p.NextUnix == 0 {
		t.Fatalf("before any run: %v", p)
	}
	if err := b.scrub.startNow(); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if p := b.ScrubProgress(); p.State != "running" || p.Run.GetChunks() == 0 {
			return fmt.Errorf("not running with progress: %v", p)
		}
		return nil
	})
	paused := slow
	paused.Enabled = false
	b.SetScrubConfig(paused)
	if p := b.ScrubProgress(); p.State != "paused" || p.NextUnix != 0 {
		t.Fatalf("after pause: %v", p)
	}
	if err := b.scrub.startNow(); !errors.Is(err, errScrubPaused) {
		t.Fatalf("ondemand while paused: %v", err)
	}
	chunks := b.ScrubProgress().Run.Chunks
	b.SetScrubConfig(ScrubConfig{Enabled: true, Interval: time.Hour, Rate: 64 << 20})
	eventually(t, func() error {
		if p := b.ScrubProgress(); p.State != "idle" || p.Run.FinishedUnix == 0 || p.Run.Chunks != 8 || p.Run.Files != 1 {
			return fmt.Errorf("resumed run did not finish (paused at %d chunks): %v", chunks, p)
		}
		return nil
	})

	// A slow run stops at the brick's close.
	b.SetScrubConfig(slow)
	if err := b.scrub.startNow(); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if p := b.ScrubProgress(); p.State != "running" || p.Run.GetChunks() == 0 {
			return fmt.Errorf("second run not under way: %v", p)
		}
		return nil
	})
	start := time.Now()
	rs.stop(0)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("close took %v with a slow scrub running", d)
	}
	// The interrupted run is on disk; the restarted brick says so.
	rs.start(0)
	if p := rs.bricks[0].ScrubProgress(); p.Run == nil || p.Run.FinishedUnix == 0 || p.Run.Error == "" || p.Totals.Runs != 1 {
		t.Fatalf("after restart: %v", p)
	}
}
