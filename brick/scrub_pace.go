package brick

import (
	"context"
	"sync"
	"time"
)

// clock is the time a pacer reads and waits on; tests give a fake one.
type clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx ends (returning ctx.Err()).
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pacer is a token bucket counted in bytes: over any interval T it lets
// at most burst + rate*T bytes through. A request larger than what the
// bucket holds is let through at once and leaves the bucket in debt,
// which the caller then waits off, so a whole chunk is one request. Safe
// for concurrent use.
type pacer struct {
	clock clock

	mu     sync.Mutex
	rate   float64 // bytes per second; 0: unlimited
	burst  float64 // most bytes the bucket holds
	tokens float64
	last   time.Time
}

// newPacer returns a pacer of rate bytes a second (0: unlimited) that
// holds at most burst bytes, full at first.
func newPacer(c clock, rate, burst int64) *pacer {
	return &pacer{clock: c, rate: float64(rate), burst: float64(burst), tokens: float64(burst), last: c.Now()}
}

// setRate changes the rate from now on.
func (p *pacer) setRate(rate int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refill()
	p.rate = float64(rate)
}

// refill adds the tokens earned since last. Called with mu held.
func (p *pacer) refill() {
	now := p.clock.Now()
	if p.rate > 0 {
		p.tokens = min(p.burst, p.tokens+now.Sub(p.last).Seconds()*p.rate)
	}
	p.last = now
}

// wait takes n bytes' worth of tokens, sleeping until the bucket is out
// of debt. It returns ctx.Err() if ctx ends first (the tokens stay taken).
func (p *pacer) wait(ctx context.Context, n int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	if p.rate <= 0 {
		p.mu.Unlock()
		return nil
	}
	p.refill()
	p.tokens -= float64(n)
	var d time.Duration
	if p.tokens < 0 {
		d = time.Duration(-p.tokens / p.rate * float64(time.Second))
	}
	p.mu.Unlock()
	if d <= 0 {
		return nil
	}
	return p.clock.Sleep(ctx, d)
}
