package integration

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// httpGet fetches url and fails the test on any error or non-200 answer.
func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v: %.200s", url, resp.Status, err, b)
	}
	return b
}

// sumMetric adds up every sample of metric name (any labels) in a
// Prometheus text exposition.
func sumMetric(t *testing.T, text []byte, name string) (sum float64, samples int) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(string(text)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		sum += v
		samples++
	}
	return sum, samples
}

// Every server serves /metrics and pprof on its port; a mount with
// debug-addr serves its own, with the client's RPC counts.
func TestMetricsAndProfiles(t *testing.T) {
	c := pool(t, 3)
	c.volume(t, "gv0", 1)
	dir := t.TempDir()
	log := filepath.Join(t.TempDir(), "client.log")
	debug := c.servers[0].host + ":6060"
	r := dfs(t, c.servers[0].addr, "mount", "-o", "log-file="+log+",debug-addr="+debug, c.servers[0].host+":/gv0", dir)
	if r.code != 0 {
		b, _ := os.ReadFile(log)
		t.Fatalf("dfs mount: exit %d: %s\nclient log:\n%s", r.code, r.stderr, b)
	}
	t.Cleanup(func() { unmount(t, dir) })
	writeRandom(t, filepath.Join(dir, "f"), 3<<20, 1)

	eventually(t, 20*time.Second, "one manager leader and one brick leader", func() error {
		var mgr, bricks, up float64
		for _, s := range c.servers {
			text := httpGet(t, "http://"+s.addr+"/metrics")
			n, _ := sumMetric(t, text, "dfs_manager_is_leader")
			mgr += n
			n, _ = sumMetric(t, text, "dfs_brick_is_leader")
			bricks += n
			n, _ = sumMetric(t, text, "dfs_brick_up")
			up += n
			if peers, _ := sumMetric(t, text, "dfs_manager_peers"); peers != 3 {
				return fmt.Errorf("%s: dfs_manager_peers %v, want 3", s.addr, peers)
			}
		}
		if mgr != 1 || bricks != 1 || up != 3 {
			return fmt.Errorf("manager leaders %v, brick leaders %v, bricks up %v; want 1, 1, 3", mgr, bricks, up)
		}
		return nil
	})
	// The brick leader served the writes; its server counts them.
	var mutates float64
	for _, s := range c.servers {
		text := httpGet(t, "http://"+s.addr+"/metrics")
		n, _ := sumMetric(t, text, `dfs_grpc_server_handled_total{code="OK",method="Mutate",service="dfs.v1.BrickService"}`)
		mutates += n
	}
	if mutates == 0 {
		t.Error("no server counted a BrickService Mutate")
	}
	client := httpGet(t, "http://"+debug+"/metrics")
	if n, _ := sumMetric(t, client, `dfs_grpc_client_handled_total{code="OK",method="GetLayout",service="dfs.v1.Manager"}`); n < 1 {
		t.Errorf("client counted %v GetLayout calls", n)
	}
	if n, _ := sumMetric(t, client, `dfs_grpc_client_handled_total{code="OK",method="Mutate",service="dfs.v1.BrickService"}`); n < 1 {
		t.Errorf("client counted %v Mutate calls", n)
	}
	// CPU profiles of a server and of the client: gzipped protobuf.
	for _, base := range []string{"http://" + c.servers[1].addr, "http://" + debug} {
		p := httpGet(t, base+"/debug/pprof/profile?seconds=1")
		if len(p) < 2 || p[0] != 0x1f || p[1] != 0x8b {
			t.Errorf("%s CPU profile is not gzip (%d bytes)", base, len(p))
		}
	}
}
