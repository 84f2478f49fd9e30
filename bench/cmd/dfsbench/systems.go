package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// system is one file system under test: a directory to run the workload
// in, and the processes that serve it.
type system interface {
	// Dir is the directory the workload runs in.
	Dir() string
	// Procs names the processes serving the system ("client", "server
	// 127.0.0.2", ...) with their pids; empty for the local directory.
	Procs() map[string]int
	// PeakRSS reads VmHWM (KiB) of every process in Procs.
	PeakRSS() map[string]int64
	// Close unmounts and stops everything the system started.
	Close() error
}

func newSystem(ctx context.Context, cfg *config, name string) (system, error) {
	switch name {
	case "local":
		dir := filepath.Join(cfg.workDir, "local")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		return &localSystem{dir: dir}, nil
	case "dfs":
		return startDFS(ctx, cfg)
	case "gluster":
		return startGluster(ctx, cfg)
	}
	return nil, fmt.Errorf("unknown system %q", name)
}

type localSystem struct{ dir string }

func (l *localSystem) Dir() string               { return l.dir }
func (l *localSystem) Procs() map[string]int     { return nil }
func (l *localSystem) PeakRSS() map[string]int64 { return nil }
func (l *localSystem) Close() error              { return os.RemoveAll(l.dir) }

// child is a process the benchmark started itself.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

func startChild(name, logPath string, argv ...string) (*child, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Own process group: a Ctrl-C on the terminal reaches only the
	// benchmark, which then stops its children in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{}), log: lf}
	go func() { _ = cmd.Wait(); close(c.done) }()
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs the process.
func (c *child) stop(grace time.Duration) {
	defer c.log.Close()
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return
	case <-time.After(grace):
	}
	logf("   %s (pid %d) did not stop in %v: killing it", c.name, c.cmd.Process.Pid, grace)
	_ = c.cmd.Process.Kill()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
}

// runCmd runs a command with a timeout and returns its combined output.
func runCmd(ctx context.Context, timeout time.Duration, env []string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// waitFor polls cond every 100 ms until it holds, the deadline passes or
// ctx ends.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("%s: not ready after %v: %w", what, timeout, err)
			}
			return fmt.Errorf("%s: not ready after %v", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// mounted reports whether dir is a mount point (per /proc/self/mountinfo).
func mounted(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && unescapeMount(fields[4]) == dir {
			return true
		}
	}
	return false
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// unmount unmounts dir, lazily if a plain umount fails.
func unmount(dir string) error {
	if !mounted(dir) {
		return nil
	}
	if _, err := runCmd(context.Background(), 30*time.Second, nil, "umount", dir); err == nil {
		return nil
	}
	_, err := runCmd(context.Background(), 30*time.Second, nil, "umount", "-l", dir)
	return err
}

// vmHWM reads the peak resident set size of pid in KiB.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// cpuSeconds reads the user+system CPU time of pid.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

func peakRSS(procs map[string]int) map[string]int64 {
	out := map[string]int64{}
	for name, pid := range procs {
		out[name] = vmHWM(pid)
	}
	return out
}

// ---- dfs ----

type dfsSystem struct {
	cfg     *config
	root    string
	mnt     string
	servers []*child
	client  *child
	env     []string
	volume  string
}

func startDFS(ctx context.Context, cfg *config) (_ system, err error) {
	if _, err := os.Stat(cfg.dfsBinary); err != nil {
		return nil, fmt.Errorf("dfs binary: %w (run make build)", err)
	}
	d := &dfsSystem{cfg: cfg, root: filepath.Join(cfg.workDir, "dfs"), volume: "bench"}
	d.mnt = filepath.Join(d.root, "mnt")
	defer func() {
		if err != nil {
			_ = d.Close()
		}
	}()
	if err := os.MkdirAll(d.mnt, 0o755); err != nil {
		return nil, err
	}
	addrs := make([]string, len(cfg.dfsHosts))
	for i, h := range cfg.dfsHosts {
		addrs[i] = net.JoinHostPort(h, strconv.Itoa(cfg.dfsPort))
		if listening(addrs[i]) {
			return nil, fmt.Errorf("%s is already in use (another dfs server or a test running?); choose others with -dfs-hosts", addrs[i])
		}
	}
	for i, h := range cfg.dfsHosts {
		data := filepath.Join(d.root, "server-"+h)
		c, err := startChild("dfs server "+h, filepath.Join(d.root, "server-"+h+".log"),
			cfg.dfsBinary, "server", "--listen", addrs[i], "--data", data, "--log-level", "warn")
		if err != nil {
			return nil, err
		}
		d.servers = append(d.servers, c)
	}
	for i, c := range d.servers {
		addr := addrs[i]
		if err := waitFor(ctx, 30*time.Second, c.name, func() (bool, error) {
			if c.exited() {
				return false, fmt.Errorf("exited; see %s", c.log.Name())
			}
			return listening(addr), nil
		}); err != nil {
			return nil, err
		}
	}
	d.env = []string{"DFS_SERVER=" + addrs[0]}
	cli := func(args ...string) error {
		_, err := runCmd(ctx, 60*time.Second, d.env, append([]string{cfg.dfsBinary}, args...)...)
		return err
	}
	for _, a := range addrs[1:] {
		if err := cli("peer", "probe", a); err != nil {
			return nil, err
		}
	}
	create := []string{"volume", "create", d.volume, "replica", "3"}
	for i, a := range addrs {
		create = append(create, fmt.Sprintf("%s:%s", a, filepath.Join(d.root, "brick-"+cfg.dfsHosts[i])))
	}
	if err := cli(append(create, "--yes")...); err != nil {
		return nil, err
	}
	if err := cli("volume", "start", d.volume); err != nil {
		return nil, err
	}
	// Foreground client as our own child: its pid is the FUSE daemon's.
	d.client, err = startChild("dfs mount", filepath.Join(d.root, "mount.log"),
		cfg.dfsBinary, "mount", "-f", "-o", "log-level=WARNING", addrs[0]+":/"+d.volume, d.mnt)
	if err != nil {
		return nil, err
	}
	if err := waitFor(ctx, 60*time.Second, "dfs mount", func() (bool, error) {
		if d.client.exited() {
			return false, fmt.Errorf("exited; see %s", d.client.log.Name())
		}
		return mounted(d.mnt), nil
	}); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *dfsSystem) Dir() string { return d.mnt }

func (d *dfsSystem) Procs() map[string]int {
	m := map[string]int{}
	if d.client != nil && !d.client.exited() {
		m["client"] = d.client.cmd.Process.Pid
	}
	for i, s := range d.servers {
		if !s.exited() {
			m["server "+d.cfg.dfsHosts[i]] = s.cmd.Process.Pid
		}
	}
	return m
}

func (d *dfsSystem) PeakRSS() map[string]int64 { return peakRSS(d.Procs()) }

func (d *dfsSystem) Close() error {
	var errs []error
	if err := unmount(d.mnt); err != nil {
		errs = append(errs, err)
	}
	if d.client != nil {
		d.client.stop(15 * time.Second)
	}
	for _, s := range d.servers {
		s.stop(30 * time.Second)
	}
	if len(errs) == 0 {
		errs = append(errs, os.RemoveAll(d.root))
	}
	return errors.Join(errs...)
}

// ---- GlusterFS ----

type glusterSystem struct {
	root     string
	mnt      string
	host     string
	volume   string
	glusterd *child
	created  bool
}

const glusterdAddr = "127.0.0.1:24007"

func startGluster(ctx context.Context, cfg *config) (_ system, err error) {
	for _, bin := range []string{"glusterd", "gluster", "glusterfsd", "mount.glusterfs"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("GlusterFS is not installed (%s not found; run make bench-deps)", bin)
		}
	}
	if listening(glusterdAddr) {
		return nil, fmt.Errorf("%s is already in use (a glusterd not started by the benchmark?)", glusterdAddr)
	}
	host := hostname()
	if ips, err := net.LookupHost(host); err != nil || len(ips) == 0 || !strings.HasPrefix(ips[0], "127.") {
		return nil, fmt.Errorf("host name %q does not resolve to a loopback address (%v %v); Gluster needs a brick host name other than localhost", host, ips, err)
	}
	g := &glusterSystem{root: filepath.Join(cfg.workDir, "gluster"), host: host, volume: "dfsbench"}
	g.mnt = filepath.Join(g.root, "mnt")
	defer func() {
		if err != nil {
			_ = g.Close()
		}
	}()
	if err := os.MkdirAll(g.mnt, 0o755); err != nil {
		return nil, err
	}
	// glusterd's own volfile, bound to 127.0.0.1 only so that it neither
	// leaves loopback nor takes port 24007 of 127.0.0.2-4 from dfs servers.
	vol, err := os.ReadFile("/etc/glusterfs/glusterd.vol")
	if err != nil {
		return nil, fmt.Errorf("read glusterd.vol: %w", err)
	}
	text := strings.Replace(string(vol), "type mgmt/glusterd",
		"type mgmt/glusterd\n    option transport.socket.bind-address 127.0.0.1", 1)
	volfile := filepath.Join(g.root, "glusterd.vol")
	if err := os.WriteFile(volfile, []byte(text), 0o644); err != nil {
		return nil, err
	}
	g.glusterd, err = startChild("glusterd", filepath.Join(g.root, "glusterd.out"),
		"glusterd", "-N", "-f", volfile, "-l", filepath.Join(g.root, "glusterd.log"))
	if err != nil {
		return nil, err
	}
	if err := waitFor(ctx, 30*time.Second, "glusterd", func() (bool, error) {
		if g.glusterd.exited() {
			return false, fmt.Errorf("exited; see %s", filepath.Join(g.root, "glusterd.log"))
		}
		_, err := g.cli(ctx, "pool", "list")
		return err == nil, err
	}); err != nil {
		return nil, err
	}
	// A volume left over by an interrupted earlier run.
	if _, err := g.cli(ctx, "volume", "info", g.volume); err == nil {
		g.created = true
		g.stopVolume()
	}
	create := []string{"volume", "create", g.volume, "replica", "3"}
	for i := 1; i <= 3; i++ {
		create = append(create, fmt.Sprintf("%s:%s", host, filepath.Join(g.root, fmt.Sprintf("brick%d", i))))
	}
	if _, err := g.cli(ctx, append(create, "force")...); err != nil {
		return nil, err
	}
	g.created = true
	if _, err := g.cli(ctx, "volume", "start", g.volume); err != nil {
		return nil, err
	}
	if _, err := runCmd(ctx, 60*time.Second, nil, "mount", "-t", "glusterfs", host+":/"+g.volume, g.mnt); err != nil {
		return nil, err
	}
	if !mounted(g.mnt) {
		return nil, errors.New("mount -t glusterfs returned but nothing is mounted")
	}
	return g, nil
}

func (g *glusterSystem) cli(ctx context.Context, args ...string) (string, error) {
	return runCmd(ctx, 120*time.Second, nil, append([]string{"gluster", "--mode=script"}, args...)...)
}

func (g *glusterSystem) Dir() string { return g.mnt }

// Procs finds glusterd (our child) and the processes glusterd spawned for
// this volume: bricks, the self-heal daemon and the FUSE client.
func (g *glusterSystem) Procs() map[string]int {
	m := map[string]int{}
	if g.glusterd != nil && !g.glusterd.exited() {
		m["glusterd"] = g.glusterd.cmd.Process.Pid
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		line := strings.Join(args, " ")
		switch filepath.Base(args[0]) {
		case "glusterfsd":
			if strings.Contains(line, "--volfile-id "+g.volume+".") {
				m["brick "+argAfter(args, "--brick-name")] = pid
			}
		case "glusterfs":
			switch {
			case strings.Contains(line, "--volfile-id=/"+g.volume) && strings.Contains(line, g.mnt):
				m["client"] = pid
			case strings.Contains(line, "--volfile-id shd/"+g.volume):
				m["self-heal daemon"] = pid
			}
		}
	}
	return m
}

func argAfter(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return filepath.Base(args[i+1])
		}
	}
	return "?"
}

func (g *glusterSystem) PeakRSS() map[string]int64 { return peakRSS(g.Procs()) }

func (g *glusterSystem) stopVolume() {
	ctx := context.Background()
	if _, err := g.cli(ctx, "volume", "stop", g.volume, "force"); err != nil {
		logf("   gluster: %v", err)
	}
	if _, err := g.cli(ctx, "volume", "delete", g.volume); err != nil {
		logf("   gluster: %v", err)
	}
}

func (g *glusterSystem) Close() error {
	var errs []error
	if err := unmount(g.mnt); err != nil {
		errs = append(errs, err)
	}
	procs := g.Procs()
	if g.created && g.glusterd != nil && !g.glusterd.exited() {
		g.stopVolume()
	}
	// Whatever glusterd started for this volume and left running.
	var names []string
	for name := range procs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if name == "glusterd" {
			continue
		}
		pid := procs[name]
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(b), g.volume) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if g.glusterd != nil {
		g.glusterd.stop(20 * time.Second)
	}
	if len(errs) == 0 {
		errs = append(errs, os.RemoveAll(g.root))
	}
	return errors.Join(errs...)
}
