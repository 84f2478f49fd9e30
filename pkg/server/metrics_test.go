package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// scrape GETs the server's /metrics over its one port.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s %v: %s", resp.Status, err, b)
	}
	return string(b)
}

// missing returns the lines of want that text lacks.
func missing(text string, want ...string) []string {
	var out []string
	for _, w := range want {
		if !strings.Contains(text, w) {
			out = append(out, w)
		}
	}
	return out
}

func TestMetricsOnServerPort(t *testing.T) {
	addr := testAddr(t, 20)
	s := startServer(t, addr, t.TempDir())
	defer s.Close()
	c := client(t, addr)
	eventually(t, 10*time.Second, "pool of one", func() error {
		_, err := c.PeerList(ctxT(t), &dfspb.PeerListRequest{})
		return err
	})
	brickPath := filepath.Join(t.TempDir(), "b0")
	if _, err := c.VolumeCreate(ctxT(t), &dfspb.VolumeCreateRequest{Name: "mv", Bricks: []*dfspb.BrickSpec{{Host: addr, Path: brickPath}}}); err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := c.VolumeStart(ctxT(t), &dfspb.VolumeStartRequest{Name: "mv"}); err != nil {
		t.Fatalf("start: %v", err)
	}
	var brickAddr string
	eventually(t, 10*time.Second, "brick online", func() error {
		st, err := c.VolumeStatus(ctxT(t), &dfspb.VolumeStatusRequest{Name: "mv"})
		if err != nil {
			return err
		}
		b := st.Volumes[0].Bricks[0]
		if !b.Online || b.Port == 0 {
			return fmt.Errorf("brick offline (%s)", b.Error)
		}
		host, _, _ := net.SplitHostPort(addr)
		brickAddr = net.JoinHostPort(host, fmt.Sprint(b.Port))
		return nil
	})
	// One call to the brick's own port, counted in the server's registry.
	bc, err := grpc.NewClient(brickAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	if _, err := dfspb.NewBrickServiceClient(bc).Ping(ctxT(t), &dfspb.BrickPingRequest{}); err != nil {
		t.Fatalf("brick ping: %v", err)
	}

	labels := fmt.Sprintf(`{brick=%q,volume="mv"}`, brickPath)
	eventually(t, 10*time.Second, "brick leads its group", func() error {
		if m := missing(scrape(t, addr), "dfs_brick_is_leader"+labels+" 1"); m != nil {
			return fmt.Errorf("lacks %q", m)
		}
		return nil
	})
	text := scrape(t, addr)
	if m := missing(text,
		"dfs_manager_is_leader 1",
		"dfs_manager_peers 1",
		`dfs_grpc_server_handled_total{code="OK",method="VolumeCreate",service="dfs.v1.Manager"} 1`,
		`dfs_grpc_server_handled_total{code="OK",method="Ping",service="dfs.v1.BrickService"} 1`,
		`dfs_grpc_server_handling_seconds_count{method="VolumeStart",service="dfs.v1.Manager"} 1`,
		"dfs_brick_up"+labels+" 1",
		"dfs_brick_raft_term"+labels+" ",
		"dfs_brick_commit_index"+labels+" ",
		"dfs_brick_last_log_index"+labels+" ",
		"dfs_brick_applied_index"+labels+" ",
		"dfs_brick_free_bytes"+labels+" ",
		"dfs_brick_size_bytes"+labels+" ",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	); m != nil {
		t.Errorf("/metrics lacks:\n%s", strings.Join(m, "\n"))
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "dfs_brick_free_bytes") && strings.HasSuffix(line, " 0") {
			t.Errorf("brick file system reported full: %s", line)
		}
	}

	// pprof shares the port too.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "goroutine profile:") {
		t.Errorf("goroutine profile: %s %.100q", resp.Status, b)
	}

	if _, err := c.VolumeStop(ctxT(t), &dfspb.VolumeStopRequest{Name: "mv"}); err != nil {
		t.Fatalf("stop: %v", err)
	}
	eventually(t, 10*time.Second, "stopped brick leaves the metrics", func() error {
		if strings.Contains(scrape(t, addr), "dfs_brick_up"+labels) {
			return fmt.Errorf("dfs_brick_up%s still reported", labels)
		}
		return nil
	})
}
