package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dfsproject/dfs/proto/dfspb"
)

func TestParseScrubAndBitrot(t *testing.T) {
	ok := []struct {
		parse func([]string) (scrubArgs, error)
		args  string
		want  scrubArgs
	}{
		{parseVolumeScrub, "gv0 status", scrubArgs{name: "gv0", action: "status"}},
		{parseVolumeScrub, "gv0 ondemand", scrubArgs{name: "gv0", action: "ondemand"}},
		{parseVolumeScrub, "gv0 pause", scrubArgs{name: "gv0", action: "pause"}},
		{parseVolumeScrub, "gv0 resume", scrubArgs{name: "gv0", action: "resume"}},
		{parseVolumeBitrot, "gv0 scrub status", scrubArgs{name: "gv0", action: "status"}},
		{parseVolumeBitrot, "gv0 scrub ondemand", scrubArgs{name: "gv0", action: "ondemand"}},
		{parseVolumeBitrot, "gv0 scrub-throttle aggressive", scrubArgs{name: "gv0", action: "set", key: "features.scrub-throttle", value: "aggressive"}},
		{parseVolumeBitrot, "gv0 scrub-frequency daily", scrubArgs{name: "gv0", action: "set", key: "features.scrub-freq", value: "daily"}},
	}
	for _, c := range ok {
		got, err := c.parse(strings.Fields(c.args))
		if err != nil || got != c.want {
			t.Errorf("%q: %+v, %v; want %+v", c.args, got, err, c.want)
		}
	}
	bad := []struct {
		parse func([]string) (scrubArgs, error)
		args  string
		msg   string
	}{
		{parseVolumeScrub, "", "volume name missing"},
		{parseVolumeScrub, "gv0", "scrub command missing"},
		{parseVolumeScrub, "gv0 start", "unknown scrub command 'start'"},
		{parseVolumeScrub, "gv0 status now", "too many arguments"},
		{parseVolumeBitrot, "gv0", "bitrot command missing"},
		{parseVolumeBitrot, "gv0 scrub", "takes one of status"},
		{parseVolumeBitrot, "gv0 scrub-throttle", "takes one value"},
		{parseVolumeBitrot, "gv0 enable", "cannot be turned on"},
		{parseVolumeBitrot, "gv0 frobnicate", "unknown bitrot command"},
	}
	for _, c := range bad {
		_, err := c.parse(strings.Fields(c.args))
		var u *usageError
		if !errors.As(err, &u) || !strings.Contains(u.msg, c.msg) {
			t.Errorf("%q: %v; want a usage error with %q", c.args, err, c.msg)
		}
	}
}

func TestParseVolumeFsck(t *testing.T) {
	if r, err := parseVolumeFsck([]string{"gv0"}); err != nil || r.Name != "gv0" {
		t.Fatalf("fsck gv0: %v %v", r, err)
	}
	for _, args := range [][]string{nil, {"gv0", "repair"}} {
		var u *usageError
		if _, err := parseVolumeFsck(args); !errors.As(err, &u) {
			t.Errorf("fsck %v: %v, want a usage error", args, err)
		}
	}
}

func TestFormatScrubStatus(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := &dfspb.VolumeScrubResponse{
		Name: "gv0", Scrub: "Active", Throttle: "lazy", Frequency: "daily",
		Bricks: []*dfspb.BrickScrub{
			{Host: "h1", Path: "/b1", Online: true, Scrub: &dfspb.ScrubProgress{
				State:    "idle",
				Run:      &dfspb.ScrubRun{StartedUnix: now.Unix() - 100, FinishedUnix: now.Unix() - 40, Files: 3, Chunks: 7, Bytes: 7 << 20, Corrupt: 1, Repaired: 1},
				Totals:   &dfspb.ScrubTotals{Runs: 2, Chunks: 14, Bytes: 14 << 20, Corrupt: 1, Repaired: 1},
				NextUnix: now.Unix() + 3600,
			}},
			{Host: "h2", Path: "/b2", Online: true, Scrub: &dfspb.ScrubProgress{State: "running", Run: &dfspb.ScrubRun{StartedUnix: now.Unix() - 5, Chunks: 2}}},
			{Host: "h3", Path: "/b3", Error: "connection refused"},
		},
	}
	var b strings.Builder
	formatScrubStatus(&b, r, now)
	out := b.String()
	for _, want := range []string{
		"Volume name : gv0", "State of scrub: Active", "Scrub impact: lazy", "Scrub frequency: daily",
		"Brick: h1:/b1", "State: idle", "Last run finished: 2027-01-15T07:59:20Z (took 1m0s)",
		"Number of scrubbed files: 3", "Number of scrubbed chunks: 7", "Scrubbed bytes: 7.0MB",
		"Corrupted chunks found: 1", "Corrupted chunks repaired: 1", "All runs: 2, 14 chunks (14.0MB), 1 corrupted, 1 repaired",
		"Next run: 2027-01-15T09:00:00Z",
		"Brick: h2:/b2", "State: running", "Last run finished: running",
		"Brick: h3:/b3", "State: offline (connection refused)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

func TestFormatFsck(t *testing.T) {
	r := &dfspb.VolumeFsckResponse{Name: "gv0", Subvolumes: 2, Inodes: 10, Entries: 9, Chunks: 4,
		Problems: []*dfspb.FsckProblem{{Kind: "dangling-entry", Subvolume: 1, Detail: `entry "x" names 01, which does not exist`}},
		Notes:    []*dfspb.FsckProblem{{Kind: "open-orphan", Detail: "unlinked while open"}},
	}
	var b strings.Builder
	formatFsck(&b, r)
	for _, want := range []string{"Volume gv0: 2 subvolumes, 10 inodes, 9 entries, 4 chunks checked", "Problems (1):", "dangling-entry  subvolume 1", `entry "x" names 01`, "Notes (1):", "open-orphan"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("fsck output lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	formatFsck(&b, &dfspb.VolumeFsckResponse{Name: "gv0"})
	if !strings.Contains(b.String(), "No problems found.") {
		t.Errorf("clean fsck output:\n%s", b.String())
	}
}
