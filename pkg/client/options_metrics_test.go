package client_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
	"github.com/dfsproject/dfs/pkg/metrics"
)

// Config.DialOptions reach every connection: the metrics interceptors of
// `dfs mount -o debug-addr=` count the calls to servers and bricks.
func TestDialOptionsCountClientCalls(t *testing.T) {
	c := clienttest.Start(t, clienttest.Options{})
	reg := metrics.New()
	cfg := client.DefaultConfig()
	cfg.Servers, cfg.Volume, cfg.Logger = c.Servers(), c.Volume, testLogger(t)
	cfg.DialOptions = reg.DialOptions()
	v, err := client.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.GetAttr(t.Context(), v.Root()); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(reg.Handler())
	defer ts.Close()
	resp, err := ts.Client().Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	for _, want := range []string{
		`dfs_grpc_client_handled_total{code="OK",method="GetLayout",service="dfs.v1.Manager"} 1`,
		`dfs_grpc_client_handled_total{code="OK",method="GetAttr",service="dfs.v1.BrickService"}`,
		`dfs_grpc_client_handling_seconds_count{method="GetAttr",service="dfs.v1.BrickService"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
