package volume

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// Option is one settable volume option, as `dfs volume set` knows it.
type Option struct {
	Key         string
	Default     string
	Description string
	// check validates a value and returns its canonical form.
	check func(string) (string, error)
}

// options is the table of every volume option; docs/cli.md lists the same.
var options = []Option{
	{Key: "network.ping-timeout", Default: "5", Description: "Seconds without an answer after which a client gives up on a brick and fails over (1-1013).", check: intRange(1, 1013)},
	{Key: "auth.allow", Default: "*", Description: "Comma-separated client addresses or CIDR ranges allowed to mount; * allows all.", check: addressList},
	{Key: "auth.reject", Default: "NONE", Description: "Comma-separated client addresses or CIDR ranges refused; NONE refuses none.", check: addressList},
	{Key: "features.read-only", Default: "off", Description: "Serve the volume read-only to every client.", check: boolean},
	{Key: "storage.reserve", Default: "1", Description: "Percent of each brick's file system kept free; writes past it get ENOSPC (0-50).", check: intRange(0, 50)},
	{Key: "cluster.min-free-disk", Default: "10", Description: "Percent of free space below which new files avoid a subvolume when others have room (0-100).", check: intRange(0, 100)},
	{Key: "cluster.heal-timeout", Default: "600", Description: "Seconds between full self-heal sweeps of a brick (60-86400).", check: intRange(60, 86400)},
	{Key: "performance.cache-size", Default: "32MB", Description: "Client read cache per mount (e.g. 64MB, 1GB; 0 disables).", check: size},
	{Key: "diagnostics.brick-log-level", Default: "INFO", Description: "Log level of the bricks: DEBUG, INFO, WARNING or ERROR.", check: enum("DEBUG", "INFO", "WARNING", "ERROR")},
	{Key: "diagnostics.client-log-level", Default: "INFO", Description: "Log level of clients: DEBUG, INFO, WARNING or ERROR.", check: enum("DEBUG", "INFO", "WARNING", "ERROR")},
	{Key: "features.scrub", Default: "Active", Description: "Background scrub of chunk checksums: Active or Inactive (paused).", check: enum("Active", "Inactive")},
	{Key: "features.scrub-throttle", Default: "lazy", Description: "Scrub speed per brick: lazy (8 MiB/s), normal (32 MiB/s) or aggressive (128 MiB/s).", check: enum("lazy", "normal", "aggressive")},
	{Key: "features.scrub-freq", Default: "biweekly", Description: "Time between background scrubs of a brick: hourly, daily, weekly, biweekly, monthly, or a duration such as 6h.", check: scrubFreq},
}

// Options returns every option, sorted by key.
func Options() []Option {
	out := append([]Option(nil), options...)
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// LookupOption finds an option by key.
func LookupOption(key string) (Option, bool) {
	for _, o := range options {
		if o.Key == key {
			return o, true
		}
	}
	return Option{}, false
}

// CheckOption validates key and value, returning the canonical value.
func CheckOption(key, value string) (string, error) {
	o, ok := LookupOption(key)
	if !ok {
		return "", Errorf(ErrInvalid, "unknown option %q; 'dfs volume get VOL all' lists the options", key)
	}
	v, err := o.check(strings.TrimSpace(value))
	if err != nil {
		return "", Errorf(ErrInvalid, "option %s: %v", key, err)
	}
	return v, nil
}

func intRange(lo, hi int) func(string) (string, error) {
	return func(s string) (string, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			return "", fmt.Errorf("%q is not a whole number from %d to %d", s, lo, hi)
		}
		return strconv.Itoa(n), nil
	}
}

func boolean(s string) (string, error) {
	switch strings.ToLower(s) {
	case "on", "yes", "true", "enable", "1":
		return "on", nil
	case "off", "no", "false", "disable", "0":
		return "off", nil
	}
	return "", fmt.Errorf("%q is not on or off", s)
}

func enum(values ...string) func(string) (string, error) {
	return func(s string) (string, error) {
		for _, v := range values {
			if strings.EqualFold(s, v) {
				return v, nil
			}
		}
		return "", fmt.Errorf("%q is not one of %s", s, strings.Join(values, ", "))
	}
}

func addressList(s string) (string, error) {
	if s == "*" {
		return s, nil
	}
	if strings.EqualFold(s, "NONE") {
		return "NONE", nil
	}
	var out []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		_, _, cidrErr := net.ParseCIDR(a)
		if net.ParseIP(a) == nil && cidrErr != nil && !validHostname(a) && !strings.Contains(a, "*") {
			return "", fmt.Errorf("%q is not an address, CIDR range, hostname or wildcard", a)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return "", fmt.Errorf("empty address list")
	}
	return strings.Join(out, ","), nil
}

func size(s string) (string, error) {
	u := strings.ToUpper(s)
	num := strings.TrimRight(u, "KMGTB")
	unit := u[len(num):]
	n, err := strconv.ParseUint(num, 10, 64)
	switch unit {
	case "", "B", "KB", "MB", "GB", "TB", "K", "M", "G", "T":
	default:
		err = fmt.Errorf("bad unit")
	}
	if err != nil || num == "" {
		return "", fmt.Errorf("%q is not a size such as 64MB or 1GB", s)
	}
	if unit != "" && !strings.HasSuffix(unit, "B") {
		unit += "B"
	}
	return strconv.FormatUint(n, 10) + unit, nil
}

// validHostname accepts RFC 1123 host names.
func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
