package main

// The pool commands: peer probe, peer detach, peer status, pool list.

import (
	"context"
	"fmt"
	"io"

	"github.com/dfsproject/dfs/proto/dfspb"
)

func runPeerProbe(ctx context.Context, c *cli, args []string) error {
	req, err := parsePeerProbe(args)
	if err != nil {
		return err
	}
	var resp *dfspb.PeerProbeResponse
	err = c.call(ctx, "peer probe", func(ctx context.Context, m dfspb.ManagerClient) (err error) {
		resp, err = m.PeerProbe(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	return c.output(resp, func(w io.Writer) {
		if resp.GetAlready() {
			fmt.Fprintf(w, "peer probe: success. Host %s already in peer list\n", req.GetAddress())
			return
		}
		fmt.Fprintln(w, "peer probe: success")
	})
}

func runPeerDetach(ctx context.Context, c *cli, args []string) error {
	req, err := parsePeerDetach(args)
	if err != nil {
		return err
	}
	var resp *dfspb.PeerDetachResponse
	err = c.call(ctx, "peer detach", func(ctx context.Context, m dfspb.ManagerClient) (err error) {
		resp, err = m.PeerDetach(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	return c.output(resp, func(w io.Writer) { fmt.Fprintln(w, "peer detach: success") })
}

// peers fetches the pool and the id of the server that answered.
func peers(ctx context.Context, c *cli, op string) (*dfspb.PeerListResponse, string, error) {
	var resp *dfspb.PeerListResponse
	err := c.call(ctx, op, func(ctx context.Context, m dfspb.ManagerClient) (err error) {
		resp, err = m.PeerList(ctx, &dfspb.PeerListRequest{})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	// Which peer answered: ask the server itself, on the same connection;
	// if it cannot say, selfPeer falls back to matching the address.
	identityCtx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	var identityID string
	if id, err := dfspb.NewPeerServiceClient(c.conn).Identity(identityCtx, &dfspb.IdentityRequest{}); err == nil {
		identityID = id.GetServerId()
	}
	return resp, selfPeer(resp.GetPeers(), identityID, c.opts.server), nil
}

func runPeerStatus(ctx context.Context, c *cli, args []string) error {
	if err := parseNoArgs(args); err != nil {
		return err
	}
	resp, self, err := peers(ctx, c, "peer status")
	if err != nil {
		return err
	}
	return c.output(resp, func(w io.Writer) { formatPeerStatus(w, resp, self) })
}

func runPoolList(ctx context.Context, c *cli, args []string) error {
	if err := parseNoArgs(args); err != nil {
		return err
	}
	resp, self, err := peers(ctx, c, "pool list")
	if err != nil {
		return err
	}
	return c.output(resp, func(w io.Writer) { formatPoolList(w, resp, self) })
}
