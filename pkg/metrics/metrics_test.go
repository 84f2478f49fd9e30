package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startHealth serves gRPC's health service with r's interceptors and
// returns a client whose connection also reports to r.
func startHealth(t *testing.T, r *Registry) healthpb.HealthClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(r.ServerOptions()...)
	hs := health.NewServer()
	hs.SetServingStatus("dfs", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	conn, err := grpc.NewClient(ln.Addr().String(), append(r.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
	})
	return healthpb.NewHealthClient(conn)
}

// value finds the sample of metric name whose labels include want:
// a counter's or gauge's value, a histogram's sample count. ok is false
// when there is none.
func value(t *testing.T, r *Registry, name string, want map[string]string) (v float64, ok bool) {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func TestUnaryCallsCountedWithCode(t *testing.T) {
	r := New()
	hc := startHealth(t, r)
	ctx := context.Background()
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "dfs"}); err != nil {
		t.Fatal(err)
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "dfs"}); err != nil {
		t.Fatal(err)
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("Check of an unknown service: %v, want NotFound", err)
	}
	check := map[string]string{"service": "grpc.health.v1.Health", "method": "Check"}
	with := func(code string) map[string]string {
		m := map[string]string{"code": code}
		for k, v := range check {
			m[k] = v
		}
		return m
	}
	for _, side := range []string{"server", "client"} {
		for code, want := range map[string]float64{"OK": 2, "NotFound": 1} {
			if got, _ := value(t, r, "dfs_grpc_"+side+"_handled_total", with(code)); got != want {
				t.Errorf("%s handled_total{code=%s} = %v, want %v", side, code, got, want)
			}
		}
		if got, _ := value(t, r, "dfs_grpc_"+side+"_handling_seconds", check); got != 3 {
			t.Errorf("%s handling_seconds count = %v, want 3", side, got)
		}
	}
}

func TestStreamCountedWhenItEnds(t *testing.T) {
	r := New()
	hc := startHealth(t, r)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "dfs"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	watch := map[string]string{"service": "grpc.health.v1.Health", "method": "Watch"}
	if _, ok := value(t, r, "dfs_grpc_client_handled_total", watch); ok {
		t.Fatal("a stream still open was counted")
	}
	cancel()
	if _, err := st.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("Recv after cancel: %v", err)
	}
	watch["code"] = "Canceled"
	if got, _ := value(t, r, "dfs_grpc_client_handled_total", watch); got != 1 {
		t.Errorf("client Watch{code=Canceled} = %v, want 1", got)
	}
	// The server sees the cancellation a moment later.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, _ := value(t, r, "dfs_grpc_server_handled_total", watch); got == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server never counted the cancelled Watch")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSplitMethod(t *testing.T) {
	for full, want := range map[string][2]string{
		"/dfs.BrickService/Write":      {"dfs.BrickService", "Write"},
		"/grpc.health.v1.Health/Check": {"grpc.health.v1.Health", "Check"},
		"odd":                          {"unknown", "odd"},
	} {
		if s, m := splitMethod(full); s != want[0] || m != want[1] {
			t.Errorf("splitMethod(%q) = %q, %q; want %q, %q", full, s, m, want[0], want[1])
		}
	}
}

func TestGaugesReadAtScrape(t *testing.T) {
	r := New()
	term := 3.0
	set, err := r.RegisterGauges([]Gauge{
		{Name: "dfs_test_term", Help: "a term", Labels: []string{"volume", "brick"}},
		{Name: "dfs_test_leader", Help: "leads"},
	}, func(set SetFunc) {
		set("dfs_test_term", term, "gv0", "/b1")
		set("dfs_test_leader", 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := value(t, r, "dfs_test_term", map[string]string{"volume": "gv0", "brick": "/b1"}); got != 3 {
		t.Errorf("term %v, want 3", got)
	}
	term = 4
	if got, _ := value(t, r, "dfs_test_term", nil); got != 4 {
		t.Errorf("term after change %v, want 4", got)
	}
	if got, _ := value(t, r, "dfs_test_leader", nil); got != 1 {
		t.Errorf("leader %v, want 1", got)
	}
	set.Unregister()
	if _, ok := value(t, r, "dfs_test_term", nil); ok {
		t.Error("gauge still reported after Unregister")
	}
	if _, err := r.RegisterGauges([]Gauge{{Name: "dfs_x"}, {Name: "dfs_x"}}, func(SetFunc) {}); err == nil {
		t.Error("a duplicate gauge name was accepted")
	}
}

func TestBadGaugeSampleFailsTheScrape(t *testing.T) {
	r := New()
	if _, err := r.RegisterGauges([]Gauge{{Name: "dfs_test_g", Labels: []string{"a"}}}, func(set SetFunc) {
		set("dfs_test_g", 1) // missing its label value
		set("dfs_test_unknown", 1)
	}); err != nil {
		t.Fatal(err)
	}
	_, err := r.reg.Gather()
	if err == nil || !strings.Contains(err.Error(), "dfs_test_unknown") {
		t.Errorf("gather error %v, want one naming dfs_test_unknown", err)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

func TestHandlerServesMetricsAndPprof(t *testing.T) {
	r := New()
	hc := startHealth(t, r)
	if _, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "dfs"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RegisterGauges([]Gauge{{Name: "dfs_manager_is_leader", Help: "test"}}, func(set SetFunc) { set("dfs_manager_is_leader", 1) }); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(r.Handler())
	defer ts.Close()
	defer http.DefaultClient.CloseIdleConnections()

	text := get(t, ts.URL+"/metrics")
	for _, want := range []string{
		`dfs_grpc_server_handled_total{code="OK",method="Check",service="grpc.health.v1.Health"} 1`,
		`dfs_grpc_client_handled_total{code="OK",method="Check",service="grpc.health.v1.Health"} 1`,
		`dfs_grpc_server_handling_seconds_bucket{method="Check",service="grpc.health.v1.Health",le="0.0001"}`,
		`dfs_grpc_server_handling_seconds_bucket{method="Check",service="grpc.health.v1.Health",le="10"} 1`,
		"dfs_manager_is_leader 1",
		"go_goroutines ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	index := get(t, ts.URL+"/debug/pprof/")
	for _, want := range []string{"goroutine", "heap", "profile"} {
		if !strings.Contains(index, want) {
			t.Errorf("/debug/pprof/ index lacks %q", want)
		}
	}
	if g := get(t, ts.URL+"/debug/pprof/goroutine?debug=1"); !strings.Contains(g, "goroutine profile:") {
		t.Errorf("goroutine profile starts %.80q", g)
	}
	if p := get(t, ts.URL+"/debug/pprof/profile?seconds=1"); len(p) == 0 {
		t.Error("empty CPU profile")
	}
	if c := get(t, ts.URL+"/debug/pprof/cmdline"); !strings.Contains(c, "metrics.test") {
		t.Errorf("cmdline %q", c)
	}
	resp, err := http.Get(ts.URL + "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing: %s, want 404", resp.Status)
	}
}
