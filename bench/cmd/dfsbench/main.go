// Command dfsbench runs one workload, in one run, on a local directory, on a
// dfs replica 3 volume served by three local `dfs server` processes and on a
// GlusterFS replica 3 volume on this machine, and prints the figures side by
// side with the ratios dfs/GlusterFS and dfs/local.
//
// It is started by `make bench` (bench/bench.mk); docs/performance.md tells
// how to run it and how to read its table. It must run as root: it mounts
// file systems, starts glusterd and drops the page cache between phases.
//
// Every process it starts and every mount it makes is stopped or unmounted
// before it exits, also after a failed phase or on SIGINT/SIGTERM. All
// traffic stays on loopback addresses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// config is the parsed command line.
type config struct {
	dfsBinary    string
	resultsDir   string
	workDir      string
	systems      []string
	seqBytes     int64
	smallFiles   int
	smallSize    int
	tree         string
	skipTree     bool
	fioRuntime   time.Duration
	fioSize      int64
	metaThreads  int
	metaCount    int
	phaseTimeout time.Duration
	dfsHosts     []string
	dfsPort      int
	compare      string
	quick        bool
}

func main() {
	os.Exit(mainErr())
}

func mainErr() int {
	var cfg config
	var systems, hosts string
	var seqMiB, fioMiB int
	flag.StringVar(&cfg.dfsBinary, "dfs", "bin/dfs", "path to the dfs binary")
	flag.StringVar(&cfg.resultsDir, "results", "bench/results", "directory for the JSON results")
	flag.StringVar(&cfg.workDir, "workdir", "/var/tmp/dfsbench", "scratch directory (local system, bricks, mounts); removed at the end")
	flag.StringVar(&systems, "systems", "local,dfs,gluster", "systems to measure, comma-separated")
	flag.IntVar(&seqMiB, "seq-mib", 1024, "size of the sequential file in MiB")
	flag.IntVar(&cfg.smallFiles, "files", 5000, "number of small files")
	flag.IntVar(&cfg.smallSize, "file-size", 4096, "size of each small file in bytes")
	flag.StringVar(&cfg.tree, "tree", "/usr/local/go/src", "source tree to copy, walk, read back and remove")
	flag.BoolVar(&cfg.skipTree, "skip-tree", false, "skip the source-tree phases")
	flag.DurationVar(&cfg.fioRuntime, "fio-runtime", 60*time.Second, "duration of the fio random read/write phase (0 skips it)")
	flag.IntVar(&fioMiB, "fio-mib", 256, "size of the fio file in MiB")
	flag.IntVar(&cfg.metaThreads, "meta-threads", 8, "threads of the metadata mix")
	flag.IntVar(&cfg.metaCount, "meta-count", 500, "create/stat/rename/unlink rounds per thread in the metadata mix")
	flag.DurationVar(&cfg.phaseTimeout, "phase-timeout", 15*time.Minute, "abort a phase that runs longer than this")
	flag.StringVar(&hosts, "dfs-hosts", "127.0.0.2,127.0.0.3,127.0.0.4", "loopback addresses of the three dfs servers")
	flag.IntVar(&cfg.dfsPort, "dfs-port", 24007, "port of the dfs servers")
	flag.StringVar(&cfg.compare, "compare", "", "an earlier JSON result: print this run's figures as ratios to it")
	flag.BoolVar(&cfg.quick, "quick", false, "a short run: 64 MiB file, 500 small files, fio 10 s, no source tree, 100 rounds of metadata mix (explicit flags win)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "dfsbench: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		return 2
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.quick {
		if !set["seq-mib"] {
			seqMiB = 64
		}
		if !set["files"] {
			cfg.smallFiles = 500
		}
		if !set["fio-runtime"] {
			cfg.fioRuntime = 10 * time.Second
		}
		if !set["skip-tree"] {
			cfg.skipTree = true
		}
		if !set["meta-count"] {
			cfg.metaCount = 100
		}
	}
	cfg.seqBytes = int64(seqMiB) << 20
	cfg.fioSize = int64(fioMiB) << 20
	cfg.systems = splitList(systems)
	cfg.dfsHosts = splitList(hosts)
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(os.Stderr, "dfsbench: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "dfsbench: %v\n", err)
		return 1
	}
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (c *config) validate() error {
	for _, s := range c.systems {
		if s != "local" && s != "dfs" && s != "gluster" {
			return fmt.Errorf("-systems: unknown system %q (local, dfs, gluster)", s)
		}
	}
	switch {
	case len(c.systems) == 0:
		return errors.New("-systems: none given")
	case c.seqBytes <= 0 || c.smallFiles <= 0 || c.smallSize < 0:
		return errors.New("-seq-mib and -files must be positive")
	case c.metaThreads <= 0 || c.metaCount <= 0:
		return errors.New("-meta-threads and -meta-count must be positive")
	case len(c.dfsHosts) != 3:
		return errors.New("-dfs-hosts: need exactly three addresses")
	case c.fioSize < 1<<20:
		return errors.New("-fio-mib must be at least 1")
	}
	if !filepath.IsAbs(c.workDir) || filepath.Clean(c.workDir) == "/" {
		return errors.New("-workdir must be an absolute path below /")
	}
	return nil
}

// run measures every system in turn, prints the table and saves the JSON.
func run(ctx context.Context, cfg *config) error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (mounts, glusterd, drop_caches)")
	}
	abs, err := filepath.Abs(cfg.dfsBinary)
	if err != nil {
		return err
	}
	cfg.dfsBinary = abs
	if err := os.MkdirAll(cfg.resultsDir, 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(cfg.workDir); err != nil {
		return fmt.Errorf("clean %s: %w", cfg.workDir, err)
	}
	if err := os.MkdirAll(cfg.workDir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(cfg.workDir)

	res := &Result{
		Time:    time.Now().UTC(),
		Host:    hostname(),
		Kernel:  kernel(),
		LoadAvg: loadAvg(),
		CPUs:    runtime.NumCPU(),
		Command: strings.Join(os.Args, " "),
		Config:  cfg.summary(),
	}
	for _, name := range cfg.systems {
		if ctx.Err() != nil {
			break
		}
		sr := measureSystem(ctx, cfg, name)
		res.Systems = append(res.Systems, sr)
	}
	printTable(os.Stdout, res)
	path, err := saveResult(cfg.resultsDir, res)
	if err != nil {
		return err
	}
	fmt.Printf("\nresults saved to %s\n", path)
	if cfg.compare != "" {
		old, err := loadResult(cfg.compare)
		if err != nil {
			return fmt.Errorf("-compare: %w", err)
		}
		printCompare(os.Stdout, res, old, cfg.compare)
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	return nil
}

// measureSystem sets a system up, runs the workload on it and tears it
// down, whatever happens in between.
func measureSystem(ctx context.Context, cfg *config, name string) SystemResult {
	sr := SystemResult{Name: name}
	logf("== %s: setting up", name)
	sys, err := newSystem(ctx, cfg, name)
	if err != nil {
		sr.Skipped = err.Error()
		logf("== %s: skipped: %v", name, err)
		return sr
	}
	defer func() {
		logf("== %s: tearing down", name)
		if err := sys.Close(); err != nil {
			logf("== %s: teardown: %v", name, err)
		}
	}()
	sr.Phases = runWorkload(ctx, cfg, sys)
	sr.RSS = sys.PeakRSS()
	return sr
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
}

func (c *config) summary() map[string]string {
	return map[string]string{
		"seq_bytes":     fmt.Sprint(c.seqBytes),
		"small_files":   fmt.Sprint(c.smallFiles),
		"small_size":    fmt.Sprint(c.smallSize),
		"tree":          c.tree,
		"skip_tree":     fmt.Sprint(c.skipTree),
		"fio_runtime":   c.fioRuntime.String(),
		"fio_size":      fmt.Sprint(c.fioSize),
		"meta_threads":  fmt.Sprint(c.metaThreads),
		"meta_count":    fmt.Sprint(c.metaCount),
		"dfs_hosts":     strings.Join(c.dfsHosts, ","),
		"quick":         fmt.Sprint(c.quick),
		"phase_timeout": c.phaseTimeout.String(),
	}
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// loadAvg is /proc/loadavg at the start: other work on the machine skews
// every figure.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
