package volume

import (
	"errors"
	"sort"
	"strings"
	"testing"
)

// optionCases holds, for every option of the table, values CheckOption
// accepts (input -> canonical form) and values it refuses.
var optionCases = map[string]struct {
	valid   map[string]string
	invalid []string
}{
	"network.ping-timeout": {
		valid:   map[string]string{"1": "1", " 10 ": "10", "042": "42", "1013": "1013"},
		invalid: []string{"", "0", "1014", "-5", "ten", "4.5", "10s"},
	},
	"auth.allow": {
		valid: map[string]string{
			"*":        "*",
			" * ":      "*",
			"10.0.0.1": "10.0.0.1",
			"10.0.0.1, 192.168.0.0/16 ,client.example.com": "10.0.0.1,192.168.0.0/16,client.example.com",
			"192.168.*":          "192.168.*",
			"::1,fe80::/10":      "::1,fe80::/10",
			"10.0.0.1,,10.0.0.2": "10.0.0.1,10.0.0.2",
		},
		invalid: []string{"", ",", " , ", "bad host", "host_name", "10.0.0.1:24007", "-host"},
	},
	"auth.reject": {
		valid:   map[string]string{"NONE": "NONE", "none": "NONE", "10.0.0.0/8": "10.0.0.0/8"},
		invalid: []string{"", "not@host"},
	},
	"features.read-only": {
		valid: map[string]string{
			"on": "on", "ON": "on", "yes": "on", "true": "on", "enable": "on", "1": "on",
			"off": "off", "Off": "off", "no": "off", "FALSE": "off", "disable": "off", "0": "off", " on ": "on",
		},
		invalid: []string{"", "maybe", "2", "onn"},
	},
	"storage.reserve": {
		valid:   map[string]string{"0": "0", "50": "50", " 5 ": "5"},
		invalid: []string{"", "51", "-1", "5%"},
	},
	"cluster.min-free-disk": {
		valid:   map[string]string{"0": "0", "100": "100", "10": "10"},
		invalid: []string{"", "101", "-1", "ten"},
	},
	"cluster.heal-timeout": {
		valid:   map[string]string{"60": "60", "86400": "86400", "600": "600"},
		invalid: []string{"", "59", "86401", "10m"},
	},
	"performance.cache-size": {
		valid: map[string]string{
			"64mb": "64MB", "64MB": "64MB", "64M": "64MB", "1g": "1GB", "1GB": "1GB", "512kb": "512KB",
			"2T": "2TB", "100b": "100B", "0": "0", "1048576": "1048576", " 32MB ": "32MB",
		},
		invalid: []string{"", "MB", "big", "-1MB", "1.5GB", "64 MB", "64MBB", "64BM", "10XB", "1PB", "99999999999999999999"},
	},
	"diagnostics.brick-log-level": {
		valid:   map[string]string{"DEBUG": "DEBUG", "debug": "DEBUG", "Info": "INFO", "warning": "WARNING", "ERROR": "ERROR"},
		invalid: []string{"", "TRACE", "WARN", "INFO,DEBUG"},
	},
	"diagnostics.client-log-level": {
		valid:   map[string]string{"debug": "DEBUG", "INFO": "INFO", "Warning": "WARNING", "error": "ERROR"},
		invalid: []string{"", "CRITICAL", "err"},
	},
	"features.scrub": {
		valid:   map[string]string{"Active": "Active", "active": "Active", "INACTIVE": "Inactive"},
		invalid: []string{"", "on", "paused"},
	},
	"features.scrub-freq": {
		valid: map[string]string{
			"hourly": "hourly", "Daily": "daily", "WEEKLY": "weekly", "biweekly": "biweekly", "monthly": "monthly",
			"6h": "6h0m0s", "90m": "1h30m0s", "1s": "1s", "5s": "5s",
		},
		invalid: []string{"", "yearly", "0", "500ms", "-1h", "6", "daily,weekly"},
	},
	"features.scrub-throttle": {
		valid:   map[string]string{"lazy": "lazy", "NORMAL": "normal", "Aggressive": "aggressive"},
		invalid: []string{"", "fast", "lazy,normal"},
	},
}

func TestCheckOption(t *testing.T) {
	for _, o := range Options() {
		cases, ok := optionCases[o.Key]
		if !ok {
			t.Errorf("option %s has no test cases; add it to optionCases", o.Key)
			continue
		}
		t.Run(o.Key, func(t *testing.T) {
			for in, want := range cases.valid {
				got, err := CheckOption(o.Key, in)
				if err != nil || got != want {
					t.Errorf("CheckOption(%q) = %q, %v; want %q", in, got, err, want)
				}
			}
			for _, in := range cases.invalid {
				got, err := CheckOption(o.Key, in)
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("CheckOption(%q) = %q, %v; want %v", in, got, err, ErrInvalid)
				}
			}
		})
	}
	for key := range optionCases {
		if _, ok := LookupOption(key); !ok {
			t.Errorf("optionCases has %s, which is not an option", key)
		}
	}
}

func TestCheckOptionUnknownKey(t *testing.T) {
	for _, key := range []string{"", "nosuch.option", "NETWORK.PING-TIMEOUT", " network.ping-timeout", "network"} {
		if got, err := CheckOption(key, "10"); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckOption(%q) = %q, %v; want %v", key, got, err, ErrInvalid)
		}
		if _, ok := LookupOption(key); ok {
			t.Errorf("LookupOption(%q) found an option", key)
		}
	}
}

// Every default must pass its own check unchanged; a typo in the table
// would otherwise surface as a volume whose defaults cannot be set back.
func TestOptionDefaults(t *testing.T) {
	for _, o := range Options() {
		got, err := CheckOption(o.Key, o.Default)
		if err != nil {
			t.Errorf("%s: default %q fails its check: %v", o.Key, o.Default, err)
			continue
		}
		if got != o.Default {
			t.Errorf("%s: default %q is not canonical; the check makes it %q", o.Key, o.Default, got)
		}
		if strings.TrimSpace(o.Description) == "" {
			t.Errorf("%s has no description", o.Key)
		}
	}
}

func TestOptionsSorted(t *testing.T) {
	opts := Options()
	if len(opts) != len(options) {
		t.Fatalf("Options() has %d options, the table %d", len(opts), len(options))
	}
	keys := make([]string, len(opts))
	for i, o := range opts {
		keys[i] = o.Key
	}
	if !sort.StringsAreSorted(keys) {
		t.Errorf("Options() not sorted: %q", keys)
	}
	for i := 1; i < len(keys); i++ {
		if keys[i] == keys[i-1] {
			t.Errorf("option %s listed twice", keys[i])
		}
	}
	// Options returns a copy: changing it leaves the table alone.
	opts[0].Default = "changed"
	if o, _ := LookupOption(opts[0].Key); o.Default == "changed" {
		t.Error("changing Options()'s result changed the option table")
	}
}

func TestVolumeOption(t *testing.T) {
	v := &Volume{Options: map[string]string{"features.read-only": "on", "auth.allow": "10.0.0.1"}}
	unset := &Volume{}
	tests := []struct {
		v    *Volume
		key  string
		want string
	}{
		{v, "features.read-only", "on"},
		{v, "auth.allow", "10.0.0.1"},
		{v, "network.ping-timeout", "5"},
		{v, "performance.cache-size", "32MB"},
		{unset, "features.read-only", "off"},
		{unset, "auth.reject", "NONE"},
		{unset, "diagnostics.brick-log-level", "INFO"},
		{unset, "nosuch.option", ""},
	}
	for _, tt := range tests {
		if got := tt.v.Option(tt.key); got != tt.want {
			t.Errorf("Option(%q) with options %v = %q, want %q", tt.key, tt.v.Options, got, tt.want)
		}
	}
	// Every option of an unset volume is its default.
	for _, o := range Options() {
		if got := unset.Option(o.Key); got != o.Default {
			t.Errorf("Option(%q) of a volume without options = %q, want default %q", o.Key, got, o.Default)
		}
	}
}
