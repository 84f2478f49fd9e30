package brick

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/brick/store"
	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// The background scrub, like Gluster's bitrot scrubber: every brick reads
// all of its own chunks now and then, verifies each block's CRC-32C, and
// repairs a chunk that fails from another member of its replica set
// (repairChunk, the path a client read takes). It runs paced by a token
// bucket (scrub_pace.go), holds a chunk's lock only while it reads that
// chunk, and stops when the brick closes. The volume options
// features.scrub, features.scrub-freq and features.scrub-throttle reach it
// through SetScrubConfig. Its progress and totals survive a restart in
// BRICK/.dfs/scrub.json, so that a weekly scrub stays weekly.

// ScrubConfig is how a brick's background scrub runs.
type ScrubConfig struct {
	// Enabled runs scrubs (features.scrub Active). When false a run in
	// progress waits where it is and no run starts (paused). Default true.
	Enabled bool
	// Interval is the time from the end of one run to the start of the
	// next (features.scrub-freq). Default two weeks (Gluster's biweekly).
	Interval time.Duration
	// Rate is the most chunk bytes a second a run reads
	// (features.scrub-throttle); 0 is unlimited. Default 8 MiB/s (lazy).
	Rate int64
}

// DefaultScrubConfig is what a brick runs until told otherwise.
func DefaultScrubConfig() ScrubConfig {
	return ScrubConfig{Enabled: true, Interval: 14 * 24 * time.Hour, Rate: 8 << 20}
}

// scrubBurst is how many bytes the scrub's bucket holds: one chunk.
const scrubBurst = 1 << 20

// scrubStateFile holds the scrubber's progress, below MetaDir.
const scrubStateFile = "scrub.json"

// scrubber runs a brick's scrubs. Its methods are safe for concurrent
// use; runs happen one at a time on its loop goroutine.
type scrubber struct {
	store  *store.Store
	repair func(ctx context.Context, file layout.ID, index uint64) error
	path   string // the state file
	logger *slog.Logger
	clock  clock
	pace   *pacer

	mu       sync.Mutex
	cfg      ScrubConfig
	running  bool
	run      *dfspb.ScrubRun // current or last run
	totals   *dfspb.ScrubTotals
	since    time.Time
	resumed  chan struct{} // closed when a pause ends; nil unless paused
	wake     chan struct{} // config changed (capacity 1)
	ondemand chan struct{} // start a run now (capacity 1)
	stopped  bool

	wg sync.WaitGroup
}

func newScrubber(st *store.Store, repair func(context.Context, layout.ID, uint64) error, metaDir string, logger *slog.Logger) *scrubber {
	cfg := DefaultScrubConfig()
	s := &scrubber{
		store: st, repair: repair, path: filepath.Join(metaDir, scrubStateFile), logger: logger,
		clock: realClock{}, cfg: cfg, totals: &dfspb.ScrubTotals{},
		wake: make(chan struct{}, 1), ondemand: make(chan struct{}, 1),
	}
	s.pace = newPacer(s.clock, cfg.Rate, scrubBurst)
	s.load()
	return s
}

// load reads the state file; a missing or damaged one starts afresh.
func (s *scrubber) load() {
	s.since = s.clock.Now()
	b, err := os.ReadFile(s.path)
	if err == nil {
		var p dfspb.ScrubProgress
		if err = protojson.Unmarshal(b, &p); err == nil {
			if p.SinceUnix > 0 {
				s.since = time.Unix(p.SinceUnix, 0)
			}
			if p.Totals != nil {
				s.totals = p.Totals
			}
			if p.Run != nil {
				s.run = p.Run
				if s.run.FinishedUnix == 0 {
					// Cut short by a stop: the next run starts over.
					s.run.FinishedUnix = s.since.Unix()
					s.run.Error = "interrupted by a brick stop"
				}
			}
			return
		}
	}
	if !errors.Is(err, os.ErrNotExist) {
		s.logger.Warn("scrub state unreadable; starting afresh", "file", s.path, "err", err)
	}
	s.save()
}

// save writes the state file (temporary file and rename).
func (s *scrubber) save() {
	s.mu.Lock()
	p := &dfspb.ScrubProgress{Run: s.run, Totals: s.totals, SinceUnix: s.since.Unix()}
	b, err := protojson.Marshal(p)
	s.mu.Unlock()
	if err == nil {
		tmp := s.path + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, s.path)
		}
	}
	if err != nil {
		s.logger.Warn("could not save the scrub state", "file", s.path, "err", err)
	}
}

// start runs the scheduling loop until stop is closed.
func (s *scrubber) start(stop <-chan struct{}) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.loop(stop)
	}()
}

// close waits for the loop, which stop ended.
func (s *scrubber) close() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *scrubber) loop(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		var timer *time.Timer
		var due <-chan time.Time
		if next := s.next(); !next.IsZero() {
			timer = time.NewTimer(max(0, next.Sub(s.clock.Now())))
			due = timer.C
		}
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-s.ondemand:
			s.runOnce(ctx, true)
		case <-due:
			s.runOnce(ctx, false)
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// next is when the next run is due; zero when paused.
func (s *scrubber) next() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextLocked()
}

func (s *scrubber) nextLocked() time.Time {
	if !s.cfg.Enabled {
		return time.Time{}
	}
	from := s.since
	if s.run != nil && s.run.FinishedUnix > 0 {
		from = time.Unix(s.run.FinishedUnix, 0)
	}
	return from.Add(s.cfg.Interval)
}

// setConfig applies new options; a running scrub takes the new rate at
// its next chunk, and waits while paused.
func (s *scrubber) setConfig(c ScrubConfig) {
	s.mu.Lock()
	old := s.cfg
	s.cfg = c
	switch {
	case old.Enabled && !c.Enabled:
		s.resumed = make(chan struct{})
	case !old.Enabled && c.Enabled && s.resumed != nil:
		close(s.resumed)
		s.resumed = nil
	}
	s.mu.Unlock()
	if old.Rate != c.Rate {
		s.pace.setRate(c.Rate)
	}
	if old != c {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// errScrubPaused refuses an on-demand scrub while scrubs are paused.
var errScrubPaused = errors.New("scrub is paused (features.scrub is Inactive); resume it first")

// startNow asks for a run now. It fails when paused or closing, and does
// nothing when a run is going on.
func (s *scrubber) startNow() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopped:
		return errors.New("brick stopping")
	case !s.cfg.Enabled:
		return errScrubPaused
	case s.running:
		return nil
	}
	// Shown as running at once, so that a status right after ondemand
	// does not show the previous run.
	s.running = true
	s.run = &dfspb.ScrubRun{StartedUnix: s.clock.Now().Unix(), Ondemand: true}
	select {
	case s.ondemand <- struct{}{}:
	default:
	}
	return nil
}

// waitResumed blocks while scrubs are paused.
func (s *scrubber) waitResumed(ctx context.Context) error {
	s.mu.Lock()
	ch := s.resumed
	s.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runOnce scrubs every chunk of the brick once.
func (s *scrubber) runOnce(ctx context.Context, ondemand bool) {
	s.mu.Lock()
	if !s.cfg.Enabled {
		if ondemand && s.running {
			s.run.FinishedUnix = s.clock.Now().Unix()
			s.run.Error = "paused before it started"
		}
		s.running = false
		s.mu.Unlock()
		return
	}
	if !(ondemand && s.running) {
		s.run = &dfspb.ScrubRun{StartedUnix: s.clock.Now().Unix(), Ondemand: ondemand}
	}
	s.running = true
	run := s.run
	s.mu.Unlock()
	s.save()
	s.logger.Info("scrub started", "ondemand", ondemand)

	var repaired, failed uint64
	stats, err := s.store.ScrubWith(ctx, store.ScrubOptions{
		Report: func(r store.ScrubReport) {
			s.logger.Warn("scrub: chunk failed its checksum", "file", r.File, "chunk", r.Index, "err", r.Err)
			if rerr := s.repair(ctx, r.File, r.Index); rerr != nil {
				failed++
				s.logger.Error("scrub: repair failed", "file", r.File, "chunk", r.Index, "err", rerr)
			} else {
				repaired++
			}
			s.mu.Lock()
			run.Repaired = repaired
			s.mu.Unlock()
		},
		Pace: func(ctx context.Context, n int64) error {
			if err := s.waitResumed(ctx); err != nil {
				return err
			}
			return s.pace.wait(ctx, n)
		},
		Progress: func(st store.ScrubStats) {
			s.mu.Lock()
			run.Files, run.Chunks, run.Bytes, run.Corrupt = uint64(st.Files), uint64(st.Chunks), uint64(st.Bytes), uint64(st.Corrupt)
			s.mu.Unlock()
		},
	})
	if ctx.Err() != nil {
		return // the brick is stopping: the run stays unfinished on disk
	}
	s.mu.Lock()
	s.running = false
	run.Files, run.Chunks, run.Bytes, run.Corrupt, run.Repaired = uint64(stats.Files), uint64(stats.Chunks), uint64(stats.Bytes), uint64(stats.Corrupt), repaired
	run.FinishedUnix = s.clock.Now().Unix()
	switch {
	case err != nil:
		run.Error = err.Error()
	case failed > 0:
		run.Error = fmt.Sprintf("%d chunks could not be repaired", failed)
	}
	t := s.totals
	t.Runs++
	t.Chunks += run.Chunks
	t.Bytes += run.Bytes
	t.Corrupt += run.Corrupt
	t.Repaired += run.Repaired
	s.mu.Unlock()
	s.save()
	s.logger.Info("scrub finished", "files", stats.Files, "chunks", stats.Chunks, "bytes", stats.Bytes, "corrupt", stats.Corrupt, "repaired", repaired, "err", err)
}

// progress reports the scrubber's state.
func (s *scrubber) progress() *dfspb.ScrubProgress {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &dfspb.ScrubProgress{
		State:           "idle",
		Totals:          proto.Clone(s.totals).(*dfspb.ScrubTotals),
		RateBytes:       uint64(s.cfg.Rate),
		IntervalSeconds: int64(s.cfg.Interval / time.Second),
		SinceUnix:       s.since.Unix(),
	}
	if s.run != nil {
		p.Run = proto.Clone(s.run).(*dfspb.ScrubRun)
	}
	switch {
	case s.stopped:
		p.State = "stopped"
	case !s.cfg.Enabled:
		p.State = "paused"
	case s.running:
		p.State = "running"
	}
	if next := s.nextLocked(); !next.IsZero() && !s.running {
		p.NextUnix = next.Unix()
	}
	return p
}

// legacyStatus is the last run as heartbeats and `heal info` show it.
func (s *scrubber) legacyStatus() *dfspb.ScrubStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run == nil {
		return nil
	}
	r := s.run
	return &dfspb.ScrubStatus{
		Running: s.running, StartedUnix: r.StartedUnix, FinishedUnix: r.FinishedUnix,
		Chunks: r.Chunks, Bytes: r.Bytes, Corrupt: r.Corrupt, Repaired: r.Repaired, Error: r.Error,
	}
}

// SetScrubConfig changes how the brick's background scrub runs; it takes
// effect at once, also on a run in progress.
func (b *Brick) SetScrubConfig(c ScrubConfig) { b.scrub.setConfig(c) }

// ScrubProgress reports the brick's scrubber.
func (b *Brick) ScrubProgress() *dfspb.ScrubProgress { return b.scrub.progress() }

// ScrubStatus reports the last or running scrub, nil if none ran.
func (b *Brick) ScrubStatus() *dfspb.ScrubStatus { return b.scrub.legacyStatus() }

// StartScrub starts a scrub of the brick's chunks now unless one is
// running (`heal full`, `scrub ondemand`), and returns the status at once.
func (b *Brick) StartScrub() *dfspb.ScrubStatus {
	if err := b.scrub.startNow(); err != nil {
		return &dfspb.ScrubStatus{Error: err.Error()}
	}
	return b.scrub.legacyStatus()
}
