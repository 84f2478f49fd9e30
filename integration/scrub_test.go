package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dfsproject/dfs/proto/dfspb"
)

func scrubStatus(t *testing.T, addr, vol string) (*dfspb.VolumeScrubResponse, error) {
	var r dfspb.VolumeScrubResponse
	err := jsonInto(t, addr, &r, "volume", "scrub", vol, "status")
	return &r, err
}

// TestBackgroundScrubRepairs: bytes flipped in a chunk file of one brick
// are found and repaired by the periodic scrub, with no client read, once
// features.scrub-freq makes a run due; scrub status shows the corrupt
// chunk found and repaired. Pause, resume and ondemand work through
// Gluster's `bitrot VOL scrub` spelling.
func TestBackgroundScrubRepairs(t *testing.T) {
	c := pool(t, 3)
	c.volume(t, "gv0", 1)
	a := c.servers[0].addr
	mnt := mountVolume(t, c, "gv0")
	for i := range 3 {
		writeRandom(t, filepath.Join(mnt, fmt.Sprintf("f%d", i)), int64(1<<20+i*700_000), int64(i))
	}
	awaitHealed(t, a, "gv0", 20*time.Second)

	st, err := scrubStatus(t, a, "gv0")
	if err != nil {
		t.Fatal(err)
	}
	if st.Scrub != "Active" || st.Frequency != "biweekly" || st.Throttle != "lazy" || len(st.Bricks) != 3 {
		t.Fatalf("default scrub status: %v", st)
	}
	for _, b := range st.Bricks {
		if !b.Online || b.Scrub.State != "idle" || b.Scrub.Run != nil || b.Scrub.NextUnix < time.Now().Add(13*24*time.Hour).Unix() {
			t.Fatalf("brick %s before any scrub: %v", b.Path, b)
		}
	}

	// Flip bytes in a chunk file of the third server's brick.
	victimBrick := brickDir(t, c, "gv0", c.servers[2].host, 0)
	var victim string
	for _, p := range chunkFiles(t, victimBrick) {
		if info, err := os.Stat(p); err == nil && info.Size() > 100_000 {
			victim = p
			break
		}
	}
	if victim == "" {
		t.Fatalf("no chunk file in %s", victimBrick)
	}
	orig, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(orig)
	for i := 1000; i < 1010; i++ {
		bad[i] ^= 0xa5
	}
	if err := os.WriteFile(victim, bad, 0o600); err != nil {
		t.Fatal(err)
	}

	must(t, a, "volume", "set", "gv0", "features.scrub-throttle", "aggressive")
	must(t, a, "volume", "set", "gv0", "features.scrub-freq", "2s")
	eventually(t, 60*time.Second, "the background scrub repaired the flipped chunk", func() error {
		st, err := scrubStatus(t, a, "gv0")
		if err != nil {
			return err
		}
		for _, b := range st.Bricks {
			p := b.Scrub
			if b.Path != victimBrick {
				continue
			}
			if tot := p.GetTotals(); tot.GetCorrupt() != 1 || tot.GetRepaired() != 1 {
				return fmt.Errorf("brick %s: %v", b.Path, p)
			}
		}
		now, err := os.ReadFile(victim)
		if err != nil {
			return err
		}
		if !bytes.Equal(now, orig) {
			return fmt.Errorf("chunk file still differs")
		}
		return nil
	})
	// Every brick scrubs on its own clock (due 2 s after it took the
	// setting): the others may finish their first run after the victim's.
	eventually(t, 30*time.Second, "every brick finished a scrub at the set rate and interval", func() error {
		st, err := scrubStatus(t, a, "gv0")
		if err != nil {
			return err
		}
		for _, b := range st.Bricks {
			p := b.Scrub
			// A run may be under way (every 2 s): look at the finished ones.
			if p.Totals.Runs == 0 || p.Run == nil || p.Totals.Bytes < 3<<20*p.Totals.Runs || p.RateBytes != 128<<20 || p.IntervalSeconds != 2 {
				return fmt.Errorf("brick %s after scrubs: %v", b.Path, p)
			}
		}
		return nil
	})
	st, err = scrubStatus(t, a, "gv0")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range st.Bricks {
		if p := b.Scrub; b.Path != victimBrick && p.Totals.Corrupt != 0 {
			t.Errorf("brick %s found corruption that was not injected: %v", b.Path, p)
		}
	}
	text := must(t, a, "volume", "scrub", "gv0", "status")
	for _, want := range []string{"Volume name : gv0", "Scrub frequency: 2s", "Brick: " + c.servers[2].host + ":" + victimBrick, "1 corrupted, 1 repaired"} {
		if !strings.Contains(text, want) {
			t.Errorf("scrub status lacks %q:\n%s", want, text)
		}
	}

	// Pause, a refused ondemand, resume and ondemand, Gluster's way.
	must(t, a, "volume", "bitrot", "gv0", "scrub", "pause")
	eventually(t, 10*time.Second, "every brick paused", func() error {
		var st dfspb.VolumeScrubResponse
		if err := jsonInto(t, a, &st, "volume", "bitrot", "gv0", "scrub", "status"); err != nil {
			return err
		}
		for _, b := range st.Bricks {
			if b.Scrub.GetState() != "paused" {
				return fmt.Errorf("brick %s: %v", b.Path, b.Scrub)
			}
		}
		return nil
	})
	if r := dfs(t, a, "volume", "bitrot", "gv0", "scrub", "ondemand"); r.code != 1 || !strings.Contains(r.stderr, "paused") {
		t.Fatalf("ondemand while paused: exit %d %q", r.code, r.stderr)
	}
	must(t, a, "volume", "set", "gv0", "features.scrub-freq", "weekly")
	must(t, a, "volume", "bitrot", "gv0", "scrub", "resume")
	before := map[string]uint64{}
	eventually(t, 10*time.Second, "resumed, not running", func() error {
		st, err := scrubStatus(t, a, "gv0")
		if err != nil {
			return err
		}
		for _, b := range st.Bricks {
			if b.Scrub.GetState() != "idle" {
				return fmt.Errorf("brick %s: %v", b.Path, b.Scrub)
			}
			before[b.Path] = b.Scrub.Totals.Runs
		}
		return nil
	})
	if out := must(t, a, "volume", "bitrot", "gv0", "scrub", "ondemand"); !strings.Contains(out, "success") {
		t.Fatalf("ondemand: %q", out)
	}
	eventually(t, 30*time.Second, "an on-demand run on every brick", func() error {
		st, err := scrubStatus(t, a, "gv0")
		if err != nil {
			return err
		}
		for _, b := range st.Bricks {
			p := b.Scrub
			if p.State != "idle" || p.Totals.Runs != before[b.Path]+1 || !p.Run.GetOndemand() {
				return fmt.Errorf("brick %s: %v", b.Path, p)
			}
		}
		return nil
	})
}
