package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// Test servers of this package listen on 127.0.1.x so that they never
// meet those of other packages' tests running at the same time.
func testAddr(t *testing.T, i int) string {
	t.Helper()
	host := fmt.Sprintf("127.0.1.%d", i)
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func startServer(t *testing.T, addr, dir string) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen, cfg.DataDir = addr, dir
	cfg.HeartbeatInterval = 200 * time.Millisecond
	level := slog.LevelWarn
	if os.Getenv("DFS_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: level})).With("server", addr)
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func client(t *testing.T, addr string) dfspb.ManagerClient {
	t.Helper()
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return dfspb.NewManagerClient(c)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or the deadline passes.
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

func TestPoolAndVolumeLifecycle(t *testing.T) {
	var servers []*Server
	var addrs []string
	for i := 2; i <= 4; i++ {
		addr := testAddr(t, i)
		addrs = append(addrs, addr)
		servers = append(servers, startServer(t, addr, t.TempDir()))
	}
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	c := client(t, addrs[0])
	eventually(t, 10*time.Second, "pool of one", func() error {
		r, err := c.PeerList(ctxT(t), &dfspb.PeerListRequest{})
		if err != nil {
			return err
		}
		if len(r.Peers) != 1 {
			return fmt.Errorf("peers %v", r.Peers)
		}
		return nil
	})
	for _, a := range addrs[1:] {
		if _, err := c.PeerProbe(ctxT(t), &dfspb.PeerProbeRequest{Address: a}); err != nil {
			t.Fatalf("probe %s: %v", a, err)
		}
	}
	r, err := c.PeerList(ctxT(t), &dfspb.PeerListRequest{})
	if err != nil || len(r.Peers) != 3 {
		t.Fatalf("pool list: %v %v", r, err)
	}
	for _, p := range r.Peers {
		if !p.Voter {
			t.Errorf("peer %s should be a voter", p.Address)
		}
	}
	// Any server answers.
	c3 := client(t, addrs[2])
	brickRoot := t.TempDir()
	req := &dfspb.VolumeCreateRequest{Name: "gv0", Replica: 3}
	for i, a := range addrs {
		host, _, _ := net.SplitHostPort(a)
		_ = host
		req.Bricks = append(req.Bricks, &dfspb.BrickSpec{Host: a, Path: filepath.Join(brickRoot, fmt.Sprintf("b%d", i))})
	}
	if _, err := c3.VolumeCreate(ctxT(t), req); err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := c3.VolumeCreate(ctxT(t), req); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second create: %v, want AlreadyExists", err)
	}
	if _, err := c3.VolumeStart(ctxT(t), &dfspb.VolumeStartRequest{Name: "gv0"}); err != nil {
		t.Fatalf("start: %v", err)
	}
	eventually(t, 10*time.Second, "3 bricks online", func() error {
		st, err := c.VolumeStatus(ctxT(t), &dfspb.VolumeStatusRequest{Name: "gv0"})
		if err != nil {
			return err
		}
		for _, b := range st.Volumes[0].Bricks {
			if !b.Online || b.Port == 0 {
				return fmt.Errorf("brick %s:%s offline (%s)", b.Host, b.Path, b.Error)
			}
		}
		return nil
	})
	l, err := c3.GetLayout(ctxT(t), &dfspb.GetLayoutRequest{Volume: "gv0"})
	if err != nil || len(l.Subvolumes) != 1 || len(l.Subvolumes[0].Bricks) != 3 || len(l.Partitions) != 1024 {
		t.Fatalf("layout: %v %v", l, err)
	}
	if _, err := c.VolumeStop(ctxT(t), &dfspb.VolumeStopRequest{Name: "gv0"}); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := c.VolumeDelete(ctxT(t), &dfspb.VolumeDeleteRequest{Name: "gv0"}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	for i := range addrs {
		if _, err := os.Stat(filepath.Join(brickRoot, fmt.Sprintf("b%d", i), ".dfs")); !os.IsNotExist(err) {
			t.Errorf("brick %d still has .dfs after delete: %v", i, err)
		}
	}
}
