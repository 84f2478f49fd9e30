package main

// `dfs volume heal` and `dfs volume replace-brick`.

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/dfsproject/dfs/proto/dfspb"
)

const healUsage = `dfs volume heal VOL [info|full]

In a dfs replica set every change is a Raft log entry, so a brick that was
down heals by itself: it applies the entries it missed, or a snapshot of
the set, as soon as it is back.

  heal VOL info   show, per brick, whether it is connected, its role in its
                  replica set, and its number of entries still to heal
                  (log entries it has not applied yet), with the last scrub
  heal VOL        report that healing is running (it always is)
  heal VOL full   also scrub every brick: verify every chunk against its
                  checksums and repair bad ones from the other replicas`

const replaceBrickUsage = `dfs volume replace-brick VOL HOST:/OLD HOST:/NEW commit force

Replace a brick (typically on a dead server or disk) by a new, empty one.
The new brick joins the replica set and receives its data from the other
members; 'dfs volume heal VOL info' shows its progress. The volume must be
started and the other members of the set reachable.`

type healArgs struct {
	name       string
	info, full bool
}

func parseVolumeHeal(args []string) (healArgs, error) {
	switch {
	case len(args) == 0:
		return healArgs{}, usagef("volume name missing")
	case len(args) > 2:
		return healArgs{}, usagef("too many arguments: volume heal takes VOL [info|full]")
	}
	a := healArgs{name: args[0]}
	if len(args) == 2 {
		switch args[1] {
		case "info":
			a.info = true
		case "full":
			a.full = true
		default:
			return a, usagef("unknown heal command '%s': use info or full", args[1])
		}
	}
	return a, nil
}

func parseReplaceBrick(args []string) (*dfspb.VolumeReplaceBrickRequest, error) {
	if len(args) < 3 {
		return nil, usagef("give VOL HOST:/OLD HOST:/NEW commit force")
	}
	if len(args) != 5 || args[3] != "commit" || args[4] != "force" {
		return nil, usagef("replace-brick needs 'commit force' at the end (the only form dfs supports, as in current Gluster)")
	}
	oldB, err := parseBrick(args[1])
	if err != nil {
		return nil, err
	}
	newB, err := parseBrick(args[2])
	if err != nil {
		return nil, err
	}
	return &dfspb.VolumeReplaceBrickRequest{Name: args[0], Old: oldB, New: newB, Force: true}, nil
}

func runVolumeHeal(ctx context.Context, c *cli, args []string) error {
	a, err := parseVolumeHeal(args)
	if err != nil {
		return err
	}
	var resp *dfspb.VolumeHealResponse
	err = c.call(ctx, volumeOp("heal", a.name), func(ctx context.Context, m dfspb.ManagerClient) (err error) {
		resp, err = m.VolumeHeal(ctx, &dfspb.VolumeHealRequest{Name: a.name, Full: a.full})
		return err
	})
	if err != nil {
		return err
	}
	return c.output(resp, func(w io.Writer) {
		switch {
		case a.info:
			formatHealInfo(w, resp)
		case a.full:
			fmt.Fprintf(w, "Launching heal operation to perform full self heal on volume %s has been successful\nUse heal info commands to check status.\n", a.name)
		default:
			fmt.Fprintf(w, "Launching heal operation to perform index self heal on volume %s has been successful\nUse heal info commands to check status.\n", a.name)
		}
	})
}

func formatHealInfo(w io.Writer, resp *dfspb.VolumeHealResponse) {
	for i, b := range resp.Bricks {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "Brick %s:%s\n", b.Host, b.Path)
		if !b.Online {
			fmt.Fprintln(w, "Status: Transport endpoint is not connected")
			fmt.Fprintln(w, "Number of entries: -")
			continue
		}
		fmt.Fprintln(w, "Status: Connected")
		fmt.Fprintf(w, "Role: %s\n", b.Role)
		fmt.Fprintf(w, "Number of entries: %d\n", b.Pending)
		if s := b.Scrub; s != nil {
			state := "finished " + time.Unix(s.FinishedUnix, 0).UTC().Format(time.RFC3339)
			if s.Running {
				state = "running since " + time.Unix(s.StartedUnix, 0).UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "Scrub: %s, %d chunks (%s) verified, %d corrupt, %d repaired", state, s.Chunks, humanSize(s.Bytes), s.Corrupt, s.Repaired)
			if s.Error != "" {
				fmt.Fprintf(w, ", error: %s", s.Error)
			}
			fmt.Fprintln(w)
		}
	}
}

func runVolumeReplaceBrick(ctx context.Context, c *cli, args []string) error {
	req, err := parseReplaceBrick(args)
	if err != nil {
		return err
	}
	var resp *dfspb.VolumeReplaceBrickResponse
	err = c.call(ctx, volumeOp("replace-brick", req.Name), func(ctx context.Context, m dfspb.ManagerClient) (err error) {
		resp, err = m.VolumeReplaceBrick(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	return c.output(resp, func(w io.Writer) {
		fmt.Fprintln(w, "volume replace-brick: success: replace-brick commit force operation successful")
	})
}
