package main

// The volume commands: create, start, stop, delete, info, list, status,
// set, get, reset.

import (
	"context"
	"fmt"
	"io"

	"github.com/dfsproject/dfs/proto/dfspb"
)

const createUsage = `dfs volume create VOL [replica N] [disperse [N]] [redundancy M] [transport tcp]
       HOST:/PATH... [force] [--partitions N] [--yes]

Create a volume from bricks, HOST:/PATH directories on servers of the pool.
HOST may carry a port (host:24008:/data). The counts come before the
bricks; bricks form subvolumes of N in the order given. force must be last.

  replica N         every subvolume keeps N copies (N >= 2; 3 recommended)
  disperse [N]      every subvolume erasure-codes over N bricks (default: all)
  redundancy M      bricks of a disperse set that may be lost (1 <= M < N/2)
  transport tcp     accepted for Gluster compatibility; tcp is the only one
  force             allow two bricks of one subvolume on one server
  --partitions N    partitions of the layout (default: the server's, 1024)
  --yes             do not ask before creating a replica 2 volume`

// replica2Question is asked on a terminal before creating replica 2.
const replica2Question = `Replica 2 volumes cannot write while one brick of a pair is down: a
majority of 2 is 2. Use replica 3 to keep writing through the loss of a brick.
Do you still want to continue?`

func runVolumeCreate(ctx context.Context, c *cli, args []string) error {
	a, err := parseVolumeCreate(args)
	if err != nil {
		return err
	}
	if a.req.GetReplica() == 2 && !a.yes && !c.confirm(replica2Question) {
		return errDeclined
	}
	name := a.req.GetName()
	var resp *dfspb.VolumeCreateResponse
	err = c.call(ctx, "volume create: "+name, func(ctx context.Context, m dfspb.ManagerClient) (err error) {
		resp, err = m.VolumeCreate(ctx, a.req)
		return err
	})
	if err != nil {
		return err
	}
	for _, w := range resp.GetWarnings() {
		fmt.Fprintf(c.stderr, "Warning: %s\n", w)
	}
	return c.output(resp, func(w io.Writer) {
		fmt.Fprintf(w, "volume create: %s: success: please start the volume to access data\n", name)
	})
}

func runVolumeStart(ctx context.Context, c *cli, args []string) error {
	req, err := parseVolumeStart(args)
	if err != nil {
		return err
	}
	var resp *dfspb.VolumeStartResponse
	op := "volume start: " + req.GetName()
	err = c.call(ctx, op, func(ctx context.Context, m dfspb.ManagerClient) (err error) {
		resp, err = m.VolumeStart(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	return c.output(resp, func(w io.Writer) { fmt.Fprintf(w, "%s: success\n", op) })
}

func runVolumeStop(ctx context.Context, c *cli, args []string) error {
	a, err := parseVolumeStop(args)
	if err != nil {
		return err
	}
	if !a.yes && !c.confirm("Stopping volume will make its data inaccessible. Do you want to continue?") {
		return errDeclined
	}
	var resp *dfspb.VolumeStopResponse
	op := "volume stop: " + a.req.GetName()
	err = c.call(ctx, op, func(ctx context.Context, m dfspb.ManagerClient) (err error) {
		resp, err = m.VolumeStop(ctx, a.req)
		return err
	})
	if err != nil {
		return err
	}
	return c.output(resp, func(w io.Writer) { fmt.Fprintf(w, "%s: success\n", op) })
}

func runVolumeDelete(ctx context.Context, c *cli, args []string) error {
	a, err := parseVolumeDelete(args)
	if err != nil {
		return err
	}
	if !a.yes && !c.confirm("Deleting volume will erase all information about the volume. Do you want to continue?") {
		return errDeclined
	}
	var resp *dfspb.VolumeDeleteResponse
	op := "volume delete: " + a.req.GetName()
	err = c.call(ctx, op, func(ctx context.Context, m dfspb.ManagerClient) (err error) {
		resp, err = m.VolumeDelete(ctx, a.req)
		return err
	})
	if err != nil {
		return err
	}
	return c.output(resp, func(w io.Writer) { fmt.Fprintf(w, "%s: success\n", op) })
}

// volumeOp is Gluster's prefix of an operation on name, or on every
// volume when name is empty.
func volumeOp(verb, name string) string {
	if name == "" {
		return "volume " + verb
	}
	return "volume " + verb + ": " + name
}

// volumes fetches the description of one volume or, for "", of all.
func volumes(ctx context.Context, c *cli, op string, req *dfspb.VolumeInfoRequest) (*dfspb.VolumeInfoResponse, error) {
	var resp *dfspb.VolumeInfoResponse
	err := c.call(ctx, op, func(ctx context.Context, m dfspb.ManagerClient) (err error) {
		resp, err = m.VolumeInfo(ctx, req)
		return err
	})
	return resp, err
}

func runVolumeInfo(ctx context.Context, c *cli, args []string) error {
	req, err := parseVolumeInfo(args)
	if err != nil {
		return err
	}
	resp, err := volumes(ctx, c, volumeOp("info", req.GetName()), req)
	if err != nil {
		return err
	}
	return c.output(resp, func(w io.Writer) { formatVolumeInfo(w, resp.GetVolumes()) })
}

func runVolumeList(ctx context.Context, c *cli, args []string) error {
	if err := parseNoArgs(args); err != nil {
		return err
	}
	resp, err := volumes(ctx, c, "volume list", &dfspb.VolumeInfoRequest{})
	if err != nil {
		return err
	}
	return c.output(resp, func(w io.Writer) { formatVolumeList(w, resp.GetVolumes()) })
}

func runVolumeStatus(ctx context.Context, c *cli, args []string) error {
	req, err := parseVolumeStatus(args)
	if err != nil {
		return err
	}
	op := volumeOp("status", req.GetName())
	var resp *dfspb.VolumeStatusResponse
	err = c.call(ctx, op, func(ctx context.Context, m dfspb.ManagerClient) (err error) {
		resp, err = m.VolumeStatus(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	if c.opts.json {
		return writeJSON(c.stdout, resp)
	}
	entries := resp.GetVolumes()
	if req.GetName() != "" {
		// Gluster fails the status of one volume that is not started.
		for _, e := range entries {
			if e.GetState() != dfspb.VolumeState_VOLUME_STATE_STARTED {
				return &opError{op: op, err: fmt.Errorf("Volume %s is not started", e.GetName())}
			}
		}
	}
	if len(entries) == 0 {
		fmt.Fprintln(c.stdout, "No volumes present")
		return nil
	}
	for i, e := range entries {
		if i > 0 {
			fmt.Fprintln(c.stdout)
		}
		if e.GetState() != dfspb.VolumeState_VOLUME_STATE_STARTED {
			fmt.Fprintf(c.stdout, "Volume %s is not started\n", e.GetName())
			continue
		}
		formatVolumeStatus(c.stdout, e, req.GetDetail())
	}
	return nil
}

func runVolumeSet(ctx context.Context, c *cli, args []string) error {
	req, err := parseVolumeSet(args)
	if err != nil {
		return err
	}
	var resp *dfspb.VolumeSetResponse
	err = c.call(ctx, volumeOp("set", req.GetName()), func(ctx context.Context, m dfspb.ManagerClient) (err error) {
		resp, err = m.VolumeSet(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	return c.output(resp, func(w io.Writer) { fmt.Fprintln(w, "volume set: success") })
}

func runVolumeGet(ctx context.Context, c *cli, args []string) error {
	req, err := parseVolumeGet(args)
	if err != nil {
		return err
	}
	var resp *dfspb.VolumeGetResponse
	err = c.call(ctx, volumeOp("get", req.GetName()), func(ctx context.Context, m dfspb.ManagerClient) (err error) {
		resp, err = m.VolumeGet(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	return c.output(resp, func(w io.Writer) { formatVolumeGet(w, resp.GetOptions()) })
}

func runVolumeReset(ctx context.Context, c *cli, args []string) error {
	req, err := parseVolumeReset(args)
	if err != nil {
		return err
	}
	var resp *dfspb.VolumeResetResponse
	err = c.call(ctx, volumeOp("reset", req.GetName()), func(ctx context.Context, m dfspb.ManagerClient) (err error) {
		resp, err = m.VolumeReset(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	return c.output(resp, func(w io.Writer) { fmt.Fprintln(w, "volume reset: success: reset volume successful") })
}
