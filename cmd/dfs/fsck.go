package main

// `dfs volume fsck`.

import (
	"context"
	"fmt"
	"io"

	"github.com/dfsproject/dfs/proto/dfspb"
)

const fsckUsage = `dfs volume fsck VOL

Check a started volume's namespace across all its subvolumes: reads the
store of each subvolume's leader and reports directory entries that name
no inode (dangling), inodes no entry names (orphans), link counts that
differ from the entries (wrong nlink), inodes or chunks outside the
subvolume their partition maps to, entries of missing directories,
directories left sealed by an interrupted rmdir, chunks of deleted files,
and records of missing inodes. Files unlinked while open are listed as
notes. Exits 1 when it finds a problem. It changes nothing.

The subvolumes are read one after another, not at one instant: on a busy
volume an operation in flight between two subvolumes may show up once;
run it again to tell.`

func parseVolumeFsck(args []string) (*dfspb.VolumeFsckRequest, error) {
	switch len(args) {
	case 0:
		return nil, usagef("volume name missing")
	case 1:
		return &dfspb.VolumeFsckRequest{Name: args[0]}, nil
	}
	return nil, usagef("too many arguments: volume fsck takes VOL")
}

func runVolumeFsck(ctx context.Context, c *cli, args []string) error {
	req, err := parseVolumeFsck(args)
	if err != nil {
		return err
	}
	op := volumeOp("fsck", req.Name)
	var resp *dfspb.VolumeFsckResponse
	err = c.callMaint(ctx, op, func(ctx context.Context, m dfspb.MaintenanceClient) (err error) {
		resp, err = m.VolumeFsck(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	if err := c.output(resp, func(w io.Writer) { formatFsck(w, resp) }); err != nil {
		return err
	}
	if n := len(resp.Problems); n > 0 {
		return &opError{op: op, err: fmt.Errorf("%d %s found", n, plural(n, "problem", "problems"))}
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func formatFsck(w io.Writer, r *dfspb.VolumeFsckResponse) {
	fmt.Fprintf(w, "Volume %s: %d subvolumes, %d inodes, %d entries, %d chunks checked\n", r.Name, r.Subvolumes, r.Inodes, r.Entries, r.Chunks)
	section := func(title string, ps []*dfspb.FsckProblem) {
		if len(ps) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s (%d):\n", title, len(ps))
		tw := newTable(w)
		for _, p := range ps {
			row(tw, "  "+p.Kind, fmt.Sprintf("subvolume %d", p.Subvolume), p.Detail)
		}
		tw.Flush()
	}
	section("Problems", r.Problems)
	section("Notes", r.Notes)
	if len(r.Problems) == 0 {
		fmt.Fprintln(w, "\nNo problems found.")
	}
}
