package volume

import (
	"testing"
	"time"
)

func TestScrubIntervalAndRate(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"hourly": time.Hour, "daily": 24 * time.Hour, "weekly": 7 * 24 * time.Hour,
		"biweekly": 14 * 24 * time.Hour, "monthly": 30 * 24 * time.Hour, "5s": 5 * time.Second, "1h30m0s": 90 * time.Minute,
	} {
		if got, err := ScrubInterval(in); err != nil || got != want {
			t.Errorf("ScrubInterval(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	// Every default parses.
	o, _ := LookupOption("features.scrub-freq")
	if _, err := ScrubInterval(o.Default); err != nil {
		t.Errorf("default %q: %v", o.Default, err)
	}
	if ScrubRate("lazy") >= ScrubRate("normal") || ScrubRate("normal") >= ScrubRate("aggressive") {
		t.Errorf("rates not increasing: %d %d %d", ScrubRate("lazy"), ScrubRate("normal"), ScrubRate("aggressive"))
	}
	if ScrubRate("bogus") != ScrubRate("lazy") {
		t.Errorf("unknown throttle is not lazy")
	}
}
