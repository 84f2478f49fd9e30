package main

// `dfs server`: run this machine's dfs server until SIGINT or SIGTERM.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/dfsproject/dfs/pkg/server"
)

const serverUsage = `dfs server [--listen HOST[:PORT]] [--data DIR] [--voters N] [--log-level LEVEL]

Run the dfs server of this machine in the foreground, logging to stderr,
until SIGINT or SIGTERM stops it cleanly.

  --listen HOST[:PORT]  address this server listens on and is known by in the
                        pool (default: this machine's host name, port 24007;
                        port 24007 when omitted)
  --data DIR            state directory (default /var/lib/dfs)
  --voters N            voters of the volume manager when this server starts
                        a new pool, 1 to 5 (default 3)
  --log-level LEVEL     debug, info, warn or error (default info)`

func runServer(ctx context.Context, c *cli, args []string) error {
	hostname, _ := os.Hostname()
	a, err := parseServer(args, hostname)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: a.level}))
	cfg := server.DefaultConfig()
	cfg.Listen = a.listen
	if a.data != "" {
		cfg.DataDir = a.data
	}
	if a.voters != 0 {
		cfg.Voters = a.voters
	}
	cfg.Logger = logger

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.Start(cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	// A second signal now kills the process at once.
	stop()
	logger.Info("dfs server stopping")
	if err := srv.Close(); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	logger.Info("dfs server stopped")
	return nil
}
