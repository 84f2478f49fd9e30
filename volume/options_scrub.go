package volume

import (
	"fmt"
	"strings"
	"time"
)

// The scrub options, as Gluster's bitrot scrubber names them:
// features.scrub (Active or Inactive: `bitrot VOL scrub pause|resume`),
// features.scrub-freq and features.scrub-throttle.

// scrubFrequencies are the named scrub intervals.
var scrubFrequencies = map[string]time.Duration{
	"hourly":   time.Hour,
	"daily":    24 * time.Hour,
	"weekly":   7 * 24 * time.Hour,
	"biweekly": 14 * 24 * time.Hour,
	"monthly":  30 * 24 * time.Hour,
}

// minScrubInterval bounds features.scrub-freq given as a duration.
const minScrubInterval = time.Second

// ScrubInterval is the time between scrubs that a features.scrub-freq
// value means: hourly, daily, weekly, biweekly, monthly, or a duration
// such as 6h or 90m (at least 1s).
func ScrubInterval(value string) (time.Duration, error) {
	v := strings.ToLower(strings.TrimSpace(value))
	if d, ok := scrubFrequencies[v]; ok {
		return d, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < minScrubInterval {
		return 0, fmt.Errorf("%q is not hourly, daily, weekly, biweekly, monthly or a duration of at least 1s such as 6h", value)
	}
	return d, nil
}

func scrubFreq(s string) (string, error) {
	if _, err := ScrubInterval(s); err != nil {
		return "", err
	}
	v := strings.ToLower(s)
	if _, named := scrubFrequencies[v]; named {
		return v, nil
	}
	d, _ := time.ParseDuration(v)
	return d.String(), nil
}

// Scrub rates of features.scrub-throttle, in bytes per second of chunk
// data each brick reads.
var scrubRates = map[string]int64{
	"lazy":       8 << 20,
	"normal":     32 << 20,
	"aggressive": 128 << 20,
}

// ScrubRate is the rate a features.scrub-throttle value means, in bytes
// per second; an unknown value reads as lazy.
func ScrubRate(throttle string) int64 {
	if r, ok := scrubRates[strings.ToLower(throttle)]; ok {
		return r
	}
	return scrubRates["lazy"]
}
