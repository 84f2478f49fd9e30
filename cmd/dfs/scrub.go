package main

// `dfs volume scrub` and Gluster's spelling of it, `dfs volume bitrot`.

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/dfsproject/dfs/proto/dfspb"
)

const scrubUsage = `dfs volume scrub VOL status|ondemand|pause|resume

Every brick scrubs its own chunks in the background: it reads each one,
verifies the CRC-32C of every block, and repairs a chunk that fails from
another replica. The options features.scrub-freq (hourly, daily, weekly,
biweekly, monthly or a duration; default biweekly) and
features.scrub-throttle (lazy, normal, aggressive) say how often and how
fast.

  status     show, per brick, the scrubber's state (idle, running, paused),
             its last or current run (start, finish, files, chunks, bytes,
             corrupt chunks found and repaired), totals and next run
  ondemand   start a scrub on every brick now
  pause      stop scrubbing (features.scrub Inactive); a run waits
  resume     scrub again (features.scrub Active)`

const bitrotUsage = `dfs volume bitrot VOL scrub status|ondemand|pause|resume
dfs volume bitrot VOL scrub-throttle lazy|normal|aggressive
dfs volume bitrot VOL scrub-frequency hourly|daily|weekly|biweekly|monthly|DURATION

Gluster's bitrot commands. dfs checksums every chunk block as it is
written, so there is no signer to enable: 'scrub' is 'dfs volume scrub',
and the other two set features.scrub-throttle and features.scrub-freq.`

// scrubArgs is `volume scrub` or `volume bitrot` after parsing.
type scrubArgs struct {
	name   string
	action string // status, ondemand, pause, resume, or set
	key    string // the option that set changes
	value  string
}

func parseScrubAction(name, word string) (scrubArgs, error) {
	switch word {
	case "status", "ondemand", "pause", "resume":
		return scrubArgs{name: name, action: word}, nil
	}
	return scrubArgs{}, usagef("unknown scrub command '%s': use status, ondemand, pause or resume", word)
}

func parseVolumeScrub(args []string) (scrubArgs, error) {
	switch len(args) {
	case 0:
		return scrubArgs{}, usagef("volume name missing")
	case 1:
		return scrubArgs{}, usagef("scrub command missing: use status, ondemand, pause or resume")
	case 2:
		return parseScrubAction(args[0], args[1])
	}
	return scrubArgs{}, usagef("too many arguments: volume scrub takes VOL status|ondemand|pause|resume")
}

func parseVolumeBitrot(args []string) (scrubArgs, error) {
	switch len(args) {
	case 0:
		return scrubArgs{}, usagef("volume name missing")
	case 1:
		return scrubArgs{}, usagef("bitrot command missing: use scrub, scrub-throttle or scrub-frequency")
	}
	name, cmd, rest := args[0], args[1], args[2:]
	switch cmd {
	case "scrub":
		if len(rest) != 1 {
			return scrubArgs{}, usagef("bitrot scrub takes one of status, ondemand, pause or resume")
		}
		return parseScrubAction(name, rest[0])
	case "scrub-throttle", "scrub-frequency":
		if len(rest) != 1 {
			return scrubArgs{}, usagef("bitrot %s takes one value", cmd)
		}
		key := map[string]string{"scrub-throttle": "features.scrub-throttle", "scrub-frequency": "features.scrub-freq"}[cmd]
		return scrubArgs{name: name, action: "set", key: key, value: rest[0]}, nil
	case "enable", "disable":
		return scrubArgs{}, usagef("dfs always checksums chunks, so bitrot detection cannot be turned %s; use 'scrub pause' or 'scrub resume'", map[string]string{"enable": "on", "disable": "off"}[cmd])
	}
	return scrubArgs{}, usagef("unknown bitrot command '%s': use scrub, scrub-throttle or scrub-frequency", cmd)
}

func runVolumeScrub(ctx context.Context, c *cli, args []string) error {
	a, err := parseVolumeScrub(args)
	if err != nil {
		return err
	}
	return runScrub(ctx, c, "scrub", a)
}

func runVolumeBitrot(ctx context.Context, c *cli, args []string) error {
	a, err := parseVolumeBitrot(args)
	if err != nil {
		return err
	}
	return runScrub(ctx, c, "bitrot", a)
}

func runScrub(ctx context.Context, c *cli, verb string, a scrubArgs) error {
	op := volumeOp(verb, a.name)
	switch a.action {
	case "pause", "resume", "set":
		req := &dfspb.VolumeSetRequest{Name: a.name, Key: a.key, Value: a.value}
		if a.action != "set" {
			req.Key, req.Value = "features.scrub", map[string]string{"pause": "Inactive", "resume": "Active"}[a.action]
		}
		var resp *dfspb.VolumeSetResponse
		err := c.call(ctx, op, func(ctx context.Context, m dfspb.ManagerClient) (err error) {
			resp, err = m.VolumeSet(ctx, req)
			return err
		})
		if err != nil {
			return err
		}
		return c.output(resp, func(w io.Writer) { fmt.Fprintf(w, "volume %s: success\n", verb) })
	}
	req := &dfspb.VolumeScrubRequest{Name: a.name}
	if a.action == "ondemand" {
		req.Action = dfspb.ScrubAction_SCRUB_ACTION_ONDEMAND
	}
	var resp *dfspb.VolumeScrubResponse
	err := c.callMaint(ctx, op, func(ctx context.Context, m dfspb.MaintenanceClient) (err error) {
		resp, err = m.VolumeScrub(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	return c.output(resp, func(w io.Writer) {
		if a.action == "ondemand" {
			fmt.Fprintf(w, "volume %s: success\n", verb)
			for _, b := range resp.Bricks {
				if b.Error != "" {
					fmt.Fprintf(w, "Brick %s:%s: %s\n", b.Host, b.Path, b.Error)
				}
			}
			return
		}
		formatScrubStatus(w, resp, time.Now())
	})
}

// callMaint is call for the Maintenance service.
func (c *cli) callMaint(ctx context.Context, op string, rpc func(context.Context, dfspb.MaintenanceClient) error) error {
	conn, err := c.dial()
	if err != nil {
		return &opError{op: op, err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	if err := rpc(ctx, dfspb.NewMaintenanceClient(conn)); err != nil {
		return &opError{op: op, err: err}
	}
	return nil
}

const scrubRule = "========================================================="

// formatScrubStatus prints the scrub status as Gluster's
// `bitrot VOL scrub status` does, one section per brick.
func formatScrubStatus(w io.Writer, r *dfspb.VolumeScrubResponse, now time.Time) {
	state := r.Scrub
	if state == "Inactive" {
		state += " (Paused)"
	}
	fmt.Fprintf(w, "Volume name : %s\n\n", r.Name)
	fmt.Fprintf(w, "State of scrub: %s\n\n", state)
	fmt.Fprintf(w, "Scrub impact: %s\n\n", r.Throttle)
	fmt.Fprintf(w, "Scrub frequency: %s\n\n", r.Frequency)
	fmt.Fprintln(w, scrubRule)
	for _, b := range r.Bricks {
		fmt.Fprintf(w, "\nBrick: %s:%s\n\n", b.Host, b.Path)
		if !b.Online {
			fmt.Fprintf(w, "State: offline (%s)\n\n%s\n", b.Error, scrubRule)
			continue
		}
		p := b.Scrub
		fmt.Fprintf(w, "State: %s\n", p.GetState())
		if run := p.GetRun(); run != nil {
			fmt.Fprintf(w, "Last run started: %s\n", unixTime(run.StartedUnix))
			finished := "running"
			if run.FinishedUnix != 0 {
				finished = fmt.Sprintf("%s (took %s)", unixTime(run.FinishedUnix), time.Duration(run.FinishedUnix-run.StartedUnix)*time.Second)
			}
			fmt.Fprintf(w, "Last run finished: %s\n", finished)
			fmt.Fprintf(w, "Number of scrubbed files: %d\n", run.Files)
			fmt.Fprintf(w, "Number of scrubbed chunks: %d\n", run.Chunks)
			fmt.Fprintf(w, "Scrubbed bytes: %s\n", humanSize(run.Bytes))
			fmt.Fprintf(w, "Corrupted chunks found: %d\n", run.Corrupt)
			fmt.Fprintf(w, "Corrupted chunks repaired: %d\n", run.Repaired)
			if run.Error != "" {
				fmt.Fprintf(w, "Error: %s\n", run.Error)
			}
		} else {
			fmt.Fprintln(w, "Last run: none yet")
		}
		if t := p.GetTotals(); t != nil {
			fmt.Fprintf(w, "All runs: %d, %d chunks (%s), %d corrupted, %d repaired\n", t.Runs, t.Chunks, humanSize(t.Bytes), t.Corrupt, t.Repaired)
		}
		switch {
		case p.GetNextUnix() == 0:
			fmt.Fprintln(w, "Next run: -")
		case p.GetNextUnix() <= now.Unix():
			fmt.Fprintln(w, "Next run: due now")
		default:
			fmt.Fprintf(w, "Next run: %s\n", unixTime(p.GetNextUnix()))
		}
		if b.Error != "" {
			fmt.Fprintf(w, "Error: %s\n", b.Error)
		}
		fmt.Fprintf(w, "\n%s\n", scrubRule)
	}
}

func unixTime(sec int64) string {
	return time.Unix(sec, 0).UTC().Format(time.RFC3339)
}
