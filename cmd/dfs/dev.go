package main

// `dfs dev`: an all-in-one local cluster for trying dfs — N servers on
// loopback in this process, a replicated volume, and a mount.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dfsproject/dfs/fuse"
	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/server"
	"github.com/dfsproject/dfs/proto/dfspb"
)

const devUsage = `dfs dev [--dir DIR] [--servers N] [--mount DIR] [--volume NAME]

Run a whole dfs pool on this machine, in the foreground: N servers on
127.0.0.1, 127.0.0.2, ... (port 24007), a volume replicated over them
(replica 3 when N >= 3), started and mounted. Ctrl-C unmounts and stops
everything cleanly; run it again with the same --dir to get the same pool
and data back.

  --dir DIR       state, bricks and log (default /tmp/dfs-dev)
  --servers N     servers to run, 1 to 9 (default 3)
  --mount DIR     mount point (default DIR/mnt)
  --volume NAME   volume name (default dev)`

type devArgs struct {
	dir, mountDir, volume string
	servers               int
}

func parseDev(args []string) (devArgs, error) {
	a := devArgs{dir: "/tmp/dfs-dev", servers: 3, volume: "dev"}
	flags, words, err := splitFlags(args, map[string]flagKind{"dir": valueFlag, "servers": valueFlag, "mount": valueFlag, "volume": valueFlag})
	if err != nil {
		return a, err
	}
	if len(words) > 0 {
		return a, usagef("unexpected argument '%s'", words[0])
	}
	if d, ok := flags["dir"]; ok {
		a.dir = d
	}
	if a.dir, err = filepath.Abs(a.dir); err != nil {
		return a, usagef("--dir: %v", err)
	}
	if n, ok := flags["servers"]; ok {
		a.servers, err = strconv.Atoi(n)
		if err != nil || a.servers < 1 || a.servers > 9 {
			return a, usagef("--servers must be a number from 1 to 9, not '%s'", n)
		}
	}
	a.mountDir = filepath.Join(a.dir, "mnt")
	if m, ok := flags["mount"]; ok {
		if a.mountDir, err = filepath.Abs(m); err != nil {
			return a, usagef("--mount: %v", err)
		}
	}
	if v, ok := flags["volume"]; ok {
		a.volume = v
	}
	return a, nil
}

// devLayout returns the replica count and the number of bricks for n
// servers: replica 3 over the largest multiple of 3, else replica n.
func devLayout(n int) (replica, bricks int) {
	switch {
	case n >= 3:
		return 3, n - n%3
	case n == 2:
		return 2, 2
	}
	return 0, 1
}

func runDev(ctx context.Context, c *cli, args []string) error {
	a, err := parseDev(args)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(a.mountDir, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(a.dir, "dev.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	logger := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var servers []*server.Server
	defer func() {
		for i := len(servers) - 1; i >= 0; i-- {
			servers[i].Close()
		}
	}()
	for i := 0; i < a.servers; i++ {
		cfg := server.DefaultConfig()
		cfg.Listen = net.JoinHostPort(fmt.Sprintf("127.0.0.%d", i+1), server.DefaultPort)
		cfg.DataDir = filepath.Join(a.dir, fmt.Sprintf("server%d", i+1))
		cfg.Logger = logger.With("server", cfg.Listen)
		s, err := server.Start(cfg)
		if err != nil {
			return err
		}
		servers = append(servers, s)
		fmt.Fprintf(c.stdout, "server %d  %s  data %s\n", i+1, cfg.Listen, cfg.DataDir)
	}
	first := servers[0].Address()
	if err := devVolume(ctx, first, servers, a); err != nil {
		return err
	}
	ccfg := client.DefaultConfig()
	ccfg.Servers = []string{first}
	ccfg.Volume = a.volume
	ccfg.Logger = logger.With("client", a.mountDir)
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	vol, err := client.Open(octx, ccfg)
	cancel()
	if err != nil {
		return err
	}
	defer vol.Close()
	opts := fuse.DefaultOptions()
	opts.FsName = "127.0.0.1:/" + a.volume
	opts.Logger = logger
	m, err := fuse.Mount(a.mountDir, vol, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, `
volume %[1]s (%[4]s) is mounted at %[2]s

  ls -l %[2]s
  dfs volume status %[1]s
  dfs volume info %[1]s
  mount -t dfs 127.0.0.1:/%[1]s /mnt     (another mount; needs make install)

The dfs CLI talks to 127.0.0.1:24007 by default. Log: %[3]s
Ctrl-C unmounts and stops the servers.
`, a.volume, a.mountDir, logPath, devShape(len(servers)))
	done := make(chan struct{})
	go func() { m.Wait(); close(done) }()
	select {
	case <-ctx.Done():
		fmt.Fprintln(c.stdout, "\nunmounting and stopping")
		if err := m.Unmount(); err != nil {
			fmt.Fprintf(c.stderr, "unmount %s: %v (is a shell inside it?); the servers stop anyway\n", a.mountDir, err)
		} else {
			<-done
		}
	case <-done:
		fmt.Fprintln(c.stdout, "unmounted; stopping")
	}
	return nil
}

// devShape describes the volume dev makes for n servers.
func devShape(n int) string {
	replica, bricks := devLayout(n)
	if replica == 0 {
		return "1 brick"
	}
	return fmt.Sprintf("replica %d, %d bricks", replica, bricks)
}

// devVolume makes the pool and the volume, or finds them from a
// previous run, and starts the volume.
func devVolume(ctx context.Context, addr string, servers []*server.Server, a devArgs) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	m := dfspb.NewManagerClient(conn)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, s := range servers[1:] {
		if _, err := m.PeerProbe(ctx, &dfspb.PeerProbeRequest{Address: s.Address()}); err != nil {
			return fmt.Errorf("peer probe %s: %w", s.Address(), err)
		}
	}
	info, err := m.VolumeInfo(ctx, &dfspb.VolumeInfoRequest{})
	if err != nil {
		return err
	}
	var existing *dfspb.Volume
	for _, v := range info.Volumes {
		if v.Name == a.volume {
			existing = v
		}
	}
	if existing == nil {
		replica, n := devLayout(len(servers))
		req := &dfspb.VolumeCreateRequest{Name: a.volume, Replica: uint32(replica)}
		for i := 0; i < n; i++ {
			host, _, _ := net.SplitHostPort(servers[i].Address())
			req.Bricks = append(req.Bricks, &dfspb.BrickSpec{Host: host, Path: filepath.Join(a.dir, "bricks", fmt.Sprintf("brick%d", i+1))})
		}
		if _, err := m.VolumeCreate(ctx, req); err != nil {
			return fmt.Errorf("volume create: %w", err)
		}
	}
	if existing == nil || existing.State != dfspb.VolumeState_VOLUME_STATE_STARTED {
		if _, err := m.VolumeStart(ctx, &dfspb.VolumeStartRequest{Name: a.volume}); err != nil {
			return fmt.Errorf("volume start: %w", err)
		}
	}
	return nil
}
