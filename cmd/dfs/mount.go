package main

// `dfs mount` and mount.dfs: mount a volume with the FUSE client.
//
// Without -f the command starts itself again in the background as the
// mount daemon (a new session, stdio on /dev/null, logs to the log file)
// and waits until the daemon reports that the mount is live, or why it
// failed; so `mount -t dfs` returns only once the mount works, and a bad
// source leaves no mount behind. umount(8) ends the daemon cleanly.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dfsproject/dfs/fuse"
	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/metrics"
)

const mountUsage = `dfs mount [-f] [-o OPTIONS] HOST[,HOST...]:/VOLUME DIR

Mount a started volume at DIR with the FUSE client. The client fetches the
volume's layout from the first HOST that answers and talks to the bricks
directly. Without -f it returns once the mount is live and keeps serving
in the background; 'umount DIR' ends it. mount -t dfs and /etc/fstab use
the same command through /sbin/mount.dfs (installed by make install):

  mount -t dfs server1:/gv0 /mnt/gv0 -o backup-volfile-servers=server2:server3
  server1:/gv0  /mnt/gv0  dfs  defaults,_netdev  0 0        (fstab)

  -f                       stay in the foreground, logging to stderr
  -o ro                    read-only
  -o backup-volfile-servers=H2:H3
                           more servers to fetch the layout from
  -o log-file=FILE         log of the background client
                           (default /var/log/dfs/mnt-<DIR with - for />.log)
  -o log-level=LEVEL       DEBUG, INFO, WARNING or ERROR (default INFO)
  -o attribute-timeout=S   seconds the kernel caches attributes (default 1)
  -o entry-timeout=S       seconds the kernel caches names (default 1)
  -o read-ahead-kb=N       the kernel's read-ahead window in KiB (default
                           1024; 0 leaves the kernel's 128)
  -o debug-addr=HOST:PORT  serve /metrics (Prometheus) and /debug/pprof/
                           (Go profiles) there, e.g. 127.0.0.1:6060`

// notifyEnv names the inherited pipe on which the daemon reports "ok" or
// an error message to the command that started it.
const notifyEnv = "DFS_MOUNT_NOTIFY_FD"

func runMount(ctx context.Context, c *cli, args []string) error {
	a, err := parseMount(args, false)
	if err != nil {
		return err
	}
	return mount(ctx, c, a)
}

// runMountHelper is main for /sbin/mount.dfs.
func runMountHelper(ctx context.Context, c *cli, args []string) int {
	a, err := parseMount(args, true)
	if err != nil {
		fmt.Fprintf(c.stderr, "mount.dfs: %v\n\n%s\n", err, mountUsage)
		return exitUsage
	}
	if err := mount(ctx, c, a); err != nil {
		fmt.Fprintf(c.stderr, "mount.dfs: %s: %v\n", a.source(), err)
		return exitFailed
	}
	return exitOK
}

func mount(ctx context.Context, c *cli, a mountArgs) error {
	if fi, err := os.Stat(a.dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("mount point %s is not a directory", a.dir)
	}
	if a.foreground {
		return serveMount(ctx, c, a)
	}
	return daemonize(ctx, a)
}

// daemonize starts the mount daemon and waits for its verdict.
func daemonize(ctx context.Context, a mountArgs) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if a.logFile == "" {
		a.logFile = filepath.Join("/var/log/dfs", "mnt"+strings.ReplaceAll(a.dir, "/", "-")+".log")
	}
	if err := os.MkdirAll(filepath.Dir(a.logFile), 0o755); err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	logf, err := os.OpenFile(a.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	cmd := exec.Command(self, a.argv()...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.ExtraFiles = []*os.File{w} // fd 3
	cmd.Env = append(os.Environ(), notifyEnv+"=3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start the mount daemon: %w", err)
	}
	w.Close()
	verdict := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, 4096))
		verdict <- strings.TrimSpace(string(b))
	}()
	select {
	case v := <-verdict:
		if v == "ok" {
			cmd.Process.Release()
			return nil
		}
		cmd.Wait()
		if v == "" {
			v = "the mount daemon exited without a word; see " + a.logFile
		}
		return errors.New(v)
	case <-ctx.Done():
		cmd.Process.Kill()
		cmd.Wait()
		return ctx.Err()
	}
}

// serveMount is the mount daemon (or -f): it opens the volume, mounts it
// and serves until unmounted or signalled.
func serveMount(ctx context.Context, c *cli, a mountArgs) (err error) {
	notify := notifier()
	defer func() {
		if err != nil {
			notify(err.Error())
		}
	}()
	out := c.stderr
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: a.logLevel})).With("mount", a.dir)
	ccfg := client.DefaultConfig()
	ccfg.Servers = a.servers
	ccfg.Volume = a.volume
	ccfg.Logger = logger
	if a.debugAddr != "" {
		reg := metrics.New()
		ccfg.DialOptions = reg.DialOptions()
		ln, err := net.Listen("tcp", a.debugAddr)
		if err != nil {
			return fmt.Errorf("debug-addr: %w", err)
		}
		srv := reg.HTTPServer()
		go srv.Serve(ln)
		defer srv.Close()
		logger.Info("serving /metrics and /debug/pprof/", "address", ln.Addr().String())
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	vol, err := client.Open(octx, ccfg)
	cancel()
	if err != nil {
		return err
	}
	defer vol.Close()
	opts := fuse.DefaultOptions()
	opts.FsName = a.source()
	opts.ReadOnly = a.readOnly
	opts.AttrTimeout, opts.EntryTimeout = a.attrTimeout, a.entryTimeout
	if a.readAheadKB != 0 {
		opts.ReadAheadKB = a.readAheadKB
	}
	opts.Logger = logger
	opts.Debug = a.fuseTrace
	m, err := fuse.Mount(a.dir, vol, opts)
	if err != nil {
		return err
	}
	logger.Info("mounted", "source", a.source(), "servers", a.servers)
	notify("ok")
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() { m.Wait(); close(done) }()
	select {
	case <-done:
	case <-sigs:
		logger.Info("signalled; unmounting")
		if err := m.Unmount(); err != nil {
			logger.Warn("unmount failed; the mount point stays busy until 'umount -l'", "err", err)
		}
		<-done
	}
	logger.Info("unmounted")
	return nil
}

// notifier returns a function that reports the daemon's verdict once on
// the inherited pipe, or does nothing in the foreground.
func notifier() func(string) {
	if os.Getenv(notifyEnv) == "" {
		return func(string) {}
	}
	f := os.NewFile(3, "notify")
	os.Unsetenv(notifyEnv)
	var sent bool
	return func(msg string) {
		if sent || f == nil {
			return
		}
		sent = true
		f.WriteString(msg)
		f.Close()
	}
}
