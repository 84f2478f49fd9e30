// Package integration runs dfs as its users do: real `dfs server`
// processes on loopback addresses (127.0.0.2, 127.0.0.3, ...), driven by
// the real `dfs` CLI, with real Raft and Pebble state on disk.
//
// Tests here do not run in parallel: they share the loopback addresses
// and port 24007, like servers on separate machines would.
package integration

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

var (
	dfsBinary = flag.String("dfs-binary", "", "dfs binary to test; built from ./cmd/dfs when empty")
	loopNet   = flag.String("net", "127.0.0", "the first three octets of the loopback addresses the test servers take (N.2, N.3, ...); pick another to run two test binaries side by side")
)

func TestMain(m *testing.M) {
	flag.Parse()
	if *dfsBinary == "" {
		dir, err := os.MkdirTemp("", "dfs-integration-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		*dfsBinary = filepath.Join(dir, "dfs")
		build := exec.Command("go", "build", "-o", *dfsBinary, "../cmd/dfs")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building dfs:", err)
			os.Exit(1)
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// server is one `dfs server` process.
type server struct {
	t       *testing.T
	host    string // 127.0.0.N
	addr    string // host:24007
	data    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// cluster is a set of servers of one test.
type cluster struct {
	t       *testing.T
	servers []*server
}

// newCluster prepares n servers on 127.0.0.2 ... 127.0.0.(n+1) (see -net) and starts
// them, each a pool of one.
func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	c := &cluster{t: t}
	root := t.TempDir()
	for i := 0; i < n; i++ {
		host := fmt.Sprintf("%s.%d", *loopNet, i+2)
		s := &server{t: t, host: host, addr: host + ":24007", data: filepath.Join(root, "srv"+host), logPath: filepath.Join(root, host+".log")}
		c.servers = append(c.servers, s)
		s.start()
	}
	t.Cleanup(func() {
		for _, s := range c.servers {
			s.kill()
		}
		if t.Failed() {
			for _, s := range c.servers {
				s.dumpLog()
			}
		}
	})
	for _, s := range c.servers {
		s.awaitUp()
	}
	return c
}

func (s *server) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	s.cmd = exec.Command(*dfsBinary, "server", "--listen", s.addr, "--data", s.data, "--log-level", "info")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start server %s: %v", s.addr, err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); logf.Close(); close(s.exited) }()
}

// awaitUp waits until the server answers the CLI.
func (s *server) awaitUp() {
	s.t.Helper()
	eventually(s.t, 20*time.Second, "server "+s.addr+" answers", func() error {
		select {
		case <-s.exited:
			return fmt.Errorf("server exited: %v", s.cmd.ProcessState)
		default:
		}
		r := dfs(s.t, s.addr, "pool", "list")
		return r.err()
	})
}

// kill sends SIGKILL and waits for the process to go.
func (s *server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.exited
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		s.t.Errorf("server %s did not stop within 20 s of SIGTERM", s.addr)
		s.kill()
	}
}

func (s *server) dumpLog() {
	b, _ := os.ReadFile(s.logPath)
	text := string(b)
	var dump string
	if i := strings.Index(text, "SIGQUIT"); i >= 0 {
		text, dump = text[:i], text[i:]
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	s.t.Logf("---- last log lines of %s ----\n%s", s.addr, strings.Join(lines, "\n"))
	if dump != "" {
		s.t.Logf("---- goroutines of %s in dfs bricks and Raft (of its SIGQUIT dump) ----\n%s", s.addr, brickGoroutines(dump))
	}
}

// brickGoroutines keeps the goroutines of a Go goroutine dump whose
// stacks pass through the brick, its Raft group or hashicorp/raft: a
// whole server's dump is thousands of lines, more than a test log shows.
func brickGoroutines(dump string) string {
	var keep []string
	for _, g := range strings.Split(dump, "\n\n") {
		if strings.Contains(g, "dfs/brick") || strings.Contains(g, "raftgroup") || strings.Contains(g, "hashicorp/raft") {
			keep = append(keep, g)
		}
	}
	return strings.Join(keep, "\n\n")
}

// result is one CLI run.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) err() error {
	if r.code != 0 {
		return fmt.Errorf("dfs %s: exit %d: %s", strings.Join(r.args, " "), r.code, strings.TrimSpace(r.stderr))
	}
	return nil
}

// dfs runs the CLI against server addr, with stdin not a terminal.
func dfs(t *testing.T, addr string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"--server", addr}, args...)
	cmd := exec.CommandContext(ctx, *dfsBinary, full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader("")
	err := cmd.Run()
	r := result{args: args, stdout: out.String(), stderr: errb.String()}
	if err != nil {
		r.code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		}
	}
	return r
}

// must runs the CLI and fails the test on a non-zero exit.
func must(t *testing.T, addr string, args ...string) string {
	t.Helper()
	r := dfs(t, addr, args...)
	if err := r.err(); err != nil {
		t.Fatal(err)
	}
	return r.stdout
}

// jsonInto runs a read command with --json and decodes it into m.
func jsonInto(t *testing.T, addr string, m proto.Message, args ...string) error {
	t.Helper()
	r := dfs(t, addr, append([]string{"--json"}, args...)...)
	if err := r.err(); err != nil {
		return err
	}
	if err := protojson.Unmarshal([]byte(r.stdout), m); err != nil {
		return fmt.Errorf("decode %q: %v", r.stdout, err)
	}
	return nil
}

// eventually polls cond until it holds or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
