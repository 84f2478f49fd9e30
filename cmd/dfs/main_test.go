package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Test servers of this package listen on 127.0.2.x so that they never meet
// those of other packages' tests running at the same time.
func testAddr(t *testing.T, i int) string {
	t.Helper()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.2.%d:0", i))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLog sends a server's log lines to t.Log until the test ends (t.Log
// after the end panics).
type testLog struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func newTestLog(t *testing.T) *testLog {
	w := &testLog{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return w
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// result is one finished run of the command.
type result struct {
	code           int
	stdout, stderr string
}

// dfs runs one command line against server, without a terminal.
func dfs(t *testing.T, server string, line ...string) result {
	t.Helper()
	var stdout, stderr strings.Builder
	c := &cli{stdin: bufio.NewReader(strings.NewReader("")), stdout: &stdout, stderr: &stderr}
	args := append([]string{"--server", server, "--timeout", "20s"}, line...)
	code := c.run(t.Context(), args, func(string) string { return "" })
	if c.conn != nil {
		c.conn.Close()
	}
	return result{code, stdout.String(), stderr.String()}
}

// must runs a command line that has to succeed.
func must(t *testing.T, server string, line ...string) string {
	t.Helper()
	r := dfs(t, server, line...)
	if r.code != exitOK {
		t.Fatalf("dfs %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(line, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// startServer runs `dfs server` until the test ends.
func startServer(t *testing.T, addr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	log := newTestLog(t)
	go func() {
		c := &cli{stdout: log, stderr: log}
		done <- c.run(ctx, []string{"server", "--listen", addr, "--data", t.TempDir(), "--log-level", "warn"}, func(string) string { return "" })
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("dfs server --listen %s: exit %d", addr, code)
		}
	})
	eventually(t, 20*time.Second, "server "+addr+" answers", func() error {
		if r := dfs(t, addr, "pool", "list"); r.code != exitOK {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		return nil
	})
}

// eventually polls cond until it holds or the limit passes.
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
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHelpAndUsage(t *testing.T) {
	unused := "127.0.2.250:1"
	tests := []struct {
		line   string
		code   int
		stdout string // a substring, or "" for none
		stderr string
	}{
		{"help", exitOK, "Usage: dfs [--server HOST[:PORT]]", ""},
		{"--help", exitOK, "dfs volume create VOL", ""},
		{"help volume create", exitOK, "Usage: dfs volume create VOL", ""},
		{"volume create --help", exitOK, "redundancy M", ""},
		{"volume stop gv0 -h", exitOK, "Usage: dfs volume stop", ""},
		{"server --help", exitOK, "--voters N", ""},
		{"volume help", exitOK, "dfs volume reset VOL", ""},
		{"help volume", exitOK, "dfs volume status", ""},
		{"help frob", exitUsage, "", "dfs: no help for 'frob'"},
		{"", exitUsage, "", "Usage: dfs"},
		{"frob", exitUsage, "", "dfs: unknown command 'frob'"},
		{"volume", exitUsage, "", "dfs: volume: command missing"},
		{"volume frob", exitUsage, "", "dfs: unknown command 'volume frob'"},
		{"volume create gv0 replica x h:/b", exitUsage, "", "dfs volume create: replica count must be a number, not 'x'\n\nUsage: dfs volume create"},
		{"volume start", exitUsage, "", "dfs volume start: volume name missing"},
		{"peer status extra", exitUsage, "", "dfs peer status: unexpected argument 'extra'"},
		{"--timeout x volume list", exitUsage, "", "dfs: --timeout must be a positive duration"},
	}
	for _, tt := range tests {
		r := dfs(t, unused, strings.Fields(tt.line)...)
		if r.code != tt.code || !strings.Contains(r.stdout, tt.stdout) || !strings.Contains(r.stderr, tt.stderr) {
			t.Errorf("dfs %s: exit %d\nstdout: %s\nstderr: %s\nwant exit %d, stdout with %q, stderr with %q", tt.line, r.code, r.stdout, r.stderr, tt.code, tt.stdout, tt.stderr)
		}
		if tt.stdout == "" && r.stdout != "" {
			t.Errorf("dfs %s: unexpected stdout %q", tt.line, r.stdout)
		}
	}
}

func TestConnectionFailed(t *testing.T) {
	addr := testAddr(t, 1) // nothing listens there any more
	r := dfs(t, addr, "volume", "info")
	want := fmt.Sprintf("Connection failed. Please check if dfs server is running on %s (start it with 'dfs server --listen %s').\n", addr, addr)
	if r.code != exitFailed || r.stderr != want || r.stdout != "" {
		t.Fatalf("exit %d\nstdout: %q\nstderr: %q\nwant exit 1 and %q", r.code, r.stdout, r.stderr, want)
	}
}

func TestCommandsAgainstServers(t *testing.T) {
	a1, a2 := testAddr(t, 2), testAddr(t, 3)
	startServer(t, a1)
	startServer(t, a2)

	if got := must(t, a1, "volume", "list"); got != "No volumes present in cluster\n" {
		t.Errorf("volume list = %q", got)
	}
	if got := must(t, a1, "peer", "status"); got != "Number of Peers: 0\n" {
		t.Errorf("peer status of a pool of one = %q", got)
	}
	if got := must(t, a1, "peer", "probe", a2); got != "peer probe: success\n" {
		t.Errorf("peer probe = %q", got)
	}
	if got := must(t, a1, "peer", "probe", a2); got != "peer probe: success. Host "+a2+" already in peer list\n" {
		t.Errorf("second peer probe = %q", got)
	}
	status := must(t, a1, "peer", "status")
	if !strings.HasPrefix(status, "Number of Peers: 1\n\nHostname: "+a2+"\n") || !strings.Contains(status, "State: Peer in Cluster (") {
		t.Errorf("peer status:\n%s", status)
	}
	pool := must(t, a2, "pool", "list")
	if !strings.HasPrefix(pool, "UUID") || !strings.Contains(pool, a2+" (this server)") || !strings.Contains(pool, a1) {
		t.Errorf("pool list from %s:\n%s", a2, pool)
	}
	var peers struct {
		Peers []struct {
			Address string `json:"address"`
		} `json:"peers"`
		PoolID string `json:"pool_id"`
	}
	if err := json.Unmarshal([]byte(must(t, a1, "--json", "pool", "list")), &peers); err != nil || len(peers.Peers) != 2 || peers.PoolID == "" {
		t.Errorf("pool list --json: %+v, %v", peers, err)
	}

	root := t.TempDir()
	b1, b2 := filepath.Join(root, "b1"), filepath.Join(root, "b2")
	// Without a terminal, replica 2 does not ask; the server warns.
	r := dfs(t, a2, "volume", "create", "gv0", "replica", "2", a1+":"+b1, a2+":"+b2, "--partitions", "16")
	if r.code != exitOK || r.stdout != "volume create: gv0: success: please start the volume to access data\n" || !strings.Contains(r.stderr, "Warning: Replica 2") {
		t.Fatalf("volume create: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = dfs(t, a1, "volume", "create", "gv0", a1+":"+filepath.Join(root, "b3"))
	if r.code != exitFailed || !strings.HasPrefix(r.stderr, "volume create: gv0: failed: ") || !strings.Contains(r.stderr, "exists") {
		t.Errorf("second volume create: exit %d, stderr %q", r.code, r.stderr)
	}

	info := must(t, a1, "volume", "info", "gv0")
	for _, want := range []string{"\nVolume Name: gv0\n", "Type: Replicate\n", "Status: Created\n", "Number of Bricks: 1 x 2 = 2\n",
		"Partitions: 16\n", "Brick1: " + a1 + ":" + b1 + "\n", "Brick2: " + a2 + ":" + b2 + "\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("volume info lacks %q:\n%s", want, info)
		}
	}
	if got := must(t, a1, "volume", "list"); got != "gv0\n" {
		t.Errorf("volume list = %q", got)
	}
	// --json may also follow the command.
	var list struct {
		Volumes []struct {
			Name string `json:"name"`
		} `json:"volumes"`
	}
	if err := json.Unmarshal([]byte(must(t, a1, "volume", "list", "--json")), &list); err != nil || len(list.Volumes) != 1 || list.Volumes[0].Name != "gv0" {
		t.Errorf("volume list --json: %+v, %v", list, err)
	}
	r = dfs(t, a1, "volume", "status", "gv0")
	if r.code != exitFailed || r.stderr != "volume status: gv0: failed: Volume gv0 is not started\n" {
		t.Errorf("status of a created volume: exit %d, stderr %q", r.code, r.stderr)
	}

	if got := must(t, a2, "volume", "start", "gv0"); got != "volume start: gv0: success\n" {
		t.Errorf("volume start = %q", got)
	}
	eventually(t, 20*time.Second, "bricks online", func() error {
		st := must(t, a1, "volume", "status", "gv0")
		if strings.Count(st, "  Y  ") != 2 {
			return fmt.Errorf("status:\n%s", st)
		}
		return nil
	})
	st := must(t, a1, "volume", "status", "all", "detail")
	for _, want := range []string{"Status of volume: gv0\n", "Disk Space Free      : ", "Subvolumes of volume: gv0\n"} {
		if !strings.Contains(st, want) {
			t.Errorf("status detail lacks %q:\n%s", want, st)
		}
	}

	if got := must(t, a1, "volume", "set", "gv0", "network.ping-timeout", "10"); got != "volume set: success\n" {
		t.Errorf("volume set = %q", got)
	}
	r = dfs(t, a1, "volume", "set", "gv0", "no.such-option", "1")
	if r.code != exitFailed || !strings.HasPrefix(r.stderr, "volume set: gv0: failed: ") {
		t.Errorf("volume set of an unknown option: exit %d, stderr %q", r.code, r.stderr)
	}
	get := must(t, a1, "volume", "get", "gv0", "all")
	if !strings.HasPrefix(get, "Option ") || !tableHas(get, "network.ping-timeout", "10") || !tableHas(get, "features.read-only", "off (DEFAULT)") {
		t.Errorf("volume get all:\n%s", get)
	}
	if info := must(t, a1, "volume", "info"); !strings.Contains(info, "Options Reconfigured:\nnetwork.ping-timeout: 10\n") {
		t.Errorf("volume info after set:\n%s", info)
	}
	if got := must(t, a1, "volume", "reset", "gv0", "all"); got != "volume reset: success: reset volume successful\n" {
		t.Errorf("volume reset = %q", got)
	}
	if get := must(t, a1, "volume", "get", "gv0", "network.ping-timeout"); !tableHas(get, "network.ping-timeout", "5 (DEFAULT)") {
		t.Errorf("volume get after reset:\n%s", get)
	}
	var vols struct {
		Volumes []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"volumes"`
	}
	if err := json.Unmarshal([]byte(must(t, a1, "--json", "volume", "info", "all")), &vols); err != nil || len(vols.Volumes) != 1 || vols.Volumes[0].State != "VOLUME_STATE_STARTED" {
		t.Errorf("volume info --json: %+v, %v", vols, err)
	}

	if got := must(t, a1, "volume", "stop", "gv0"); got != "volume stop: gv0: success\n" {
		t.Errorf("volume stop = %q", got)
	}
	if got := must(t, a1, "volume", "delete", "gv0"); got != "volume delete: gv0: success\n" {
		t.Errorf("volume delete = %q", got)
	}
	r = dfs(t, a1, "volume", "info", "gv0")
	if r.code != exitFailed || !strings.HasPrefix(r.stderr, "volume info: gv0: failed: ") {
		t.Errorf("info of a deleted volume: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := must(t, a1, "peer", "detach", a2); got != "peer detach: success\n" {
		t.Errorf("peer detach = %q", got)
	}
	if got := must(t, a1, "peer", "status"); got != "Number of Peers: 0\n" {
		t.Errorf("peer status after detach = %q", got)
	}
}

// tableHas reports whether out has a table line of key then value.
func tableHas(out, key, value string) bool {
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key && strings.TrimSpace(v) == value {
			return true
		}
	}
	return false
}

func TestConfirmations(t *testing.T) {
	unused := testAddr(t, 4) // nothing listens: a "yes" ends in Connection failed
	tests := []struct {
		line, answer string
		code         int
		asked        string // the question, or "" when dfs must not ask
	}{
		{"volume stop gv0", "n\n", exitFailed, "Stopping volume will make its data inaccessible. Do you want to continue? (y/n) "},
		{"volume stop gv0", "y\n", exitFailed, "Stopping volume will make its data inaccessible."},
		{"volume stop gv0 --yes", "", exitFailed, ""},
		{"volume delete gv0", "no\n", exitFailed, "Deleting volume will erase all information about the volume. Do you want to continue? (y/n) "},
		{"volume delete gv0", "YES\n", exitFailed, "Deleting volume"},
		{"volume delete gv0 --yes", "", exitFailed, ""},
		{"volume create gv0 replica 2 h1:/a h2:/a", "\n", exitFailed, "Do you still want to continue? (y/n) "},
		{"volume create gv0 replica 2 h1:/a h2:/a --yes", "", exitFailed, ""},
		{"volume create gv0 replica 3 h1:/a h2:/a h3:/a", "", exitFailed, ""},
	}
	for _, tt := range tests {
		var stdout, stderr strings.Builder
		c := &cli{stdin: bufio.NewReader(strings.NewReader(tt.answer)), stdout: &stdout, stderr: &stderr, interactive: true}
		code := c.run(t.Context(), append([]string{"--server", unused}, strings.Fields(tt.line)...), func(string) string { return "" })
		if c.conn != nil {
			c.conn.Close()
		}
		yes := strings.HasPrefix(strings.ToLower(tt.answer), "y") || tt.asked == ""
		connected := strings.Contains(stderr.String(), "Connection failed")
		switch {
		case code != tt.code:
			t.Errorf("%s (answer %q): exit %d, want %d; stderr %q", tt.line, tt.answer, code, tt.code, stderr.String())
		case tt.asked != "" && !strings.Contains(stderr.String(), tt.asked):
			t.Errorf("%s: stderr %q does not ask %q", tt.line, stderr.String(), tt.asked)
		case tt.asked == "" && strings.Contains(stderr.String(), "(y/n)"):
			t.Errorf("%s: asked although it must not: %q", tt.line, stderr.String())
		case yes != connected:
			t.Errorf("%s (answer %q): went on = %v, want %v; stderr %q", tt.line, tt.answer, connected, yes, stderr.String())
		}
	}
}
