package brick

import (
	"context"
	"testing"
	"time"
)

// fakeClock advances only when a pacer sleeps (or the test moves it).
type fakeClock struct {
	now   time.Time
	slept time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.now = c.now.Add(d)
	c.slept += d
	return nil
}

// TestPacerObeysRate: over every prefix of a long run, the bytes let
// through never exceed burst + rate * elapsed, and the run takes as long
// as the rate says (on a fake clock: no wall-clock timing).
func TestPacerObeysRate(t *testing.T) {
	const (
		mib   = 1 << 20
		rate  = 8 * mib
		burst = 1 * mib
	)
	for _, size := range []int64{4 << 10, 300 << 10, mib, 3 * mib} {
		c := &fakeClock{now: time.Unix(1_000_000, 0)}
		p := newPacer(c, rate, burst)
		start := c.now
		var passed int64
		for passed < 200*mib {
			if err := p.wait(t.Context(), size); err != nil {
				t.Fatal(err)
			}
			passed += size
			// The caller reads once wait returns: by then the bucket
			// has let through at most its burst plus what it earned.
			elapsed := c.now.Sub(start).Seconds()
			if limit := float64(burst) + elapsed*rate + 1; float64(passed) > limit {
				t.Fatalf("size %d: %d bytes through after %.3f s, limit %.0f", size, passed, elapsed, limit)
			}
		}
		elapsed := c.now.Sub(start).Seconds()
		if min := float64(passed-burst) / rate; elapsed < min*0.999 {
			t.Fatalf("size %d: %d bytes took %.3f s, at least %.3f s expected", size, passed, elapsed, min)
		}
		if max := float64(passed)/rate + 0.001; elapsed > max {
			t.Fatalf("size %d: %d bytes took %.3f s, more than the %.3f s the rate allows", size, passed, elapsed, max)
		}
	}
}

// TestPacerIdleCredit: idle time earns at most the burst.
func TestPacerIdleCredit(t *testing.T) {
	c := &fakeClock{now: time.Unix(0, 0)}
	p := newPacer(c, 1<<20, 1<<20)
	if err := p.wait(t.Context(), 1<<20); err != nil || c.slept != 0 {
		t.Fatalf("first MiB: slept %v, %v; want no wait (bucket starts full)", c.slept, err)
	}
	c.now = c.now.Add(time.Hour)
	// An hour idle fills the bucket to its burst only: 3 MiB now waits 2 s.
	if err := p.wait(t.Context(), 3<<20); err != nil {
		t.Fatal(err)
	}
	if c.slept != 2*time.Second {
		t.Fatalf("slept %v after an idle hour, want 2s", c.slept)
	}
}

// TestPacerRateChangeAndUnlimited: a rate of 0 never waits; a new rate
// applies to the next request.
func TestPacerRateChangeAndUnlimited(t *testing.T) {
	c := &fakeClock{now: time.Unix(0, 0)}
	p := newPacer(c, 0, 1<<20)
	for range 100 {
		if err := p.wait(t.Context(), 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if c.slept != 0 {
		t.Fatalf("unlimited pacer slept %v", c.slept)
	}
	p.setRate(2 << 20)
	if err := p.wait(t.Context(), 5<<20); err != nil {
		t.Fatal(err)
	}
	if c.slept != 2*time.Second { // 1 MiB in the bucket, 4 MiB at 2 MiB/s
		t.Fatalf("slept %v at 2 MiB/s, want 2s", c.slept)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.wait(ctx, 1); err == nil {
		t.Fatal("wait with a cancelled context succeeded")
	}
}
