// Package metrics is the monitoring side of every dfs process: Prometheus
// metrics and Go's pprof profiles, served over HTTP.
//
// A process makes one Registry (New) and hands it to whatever it runs: a
// dfs server passes it to its bricks, so one scrape of the server's port
// covers the server, its manager member and every brick it hosts. The
// Registry holds
//
//   - the Go runtime and process collectors (go_*, process_*);
//   - gRPC metrics, filled by the interceptors of ServerOptions and
//     DialOptions: dfs_grpc_server_handled_total{service,method,code},
//     dfs_grpc_server_handling_seconds{service,method} and their
//     dfs_grpc_client_* counterparts;
//   - gauges that the process reads at scrape time (RegisterGauges), such
//     as the per-brick Raft state, so nothing polls in the background.
//
// Handler serves /metrics (Prometheus text format) and the pprof handlers
// under /debug/pprof/ on a ServeMux of its own; http.DefaultServeMux is
// never served. This package is the only importer of the Prometheus client
// library.
//
// A Registry's methods may be called concurrently, also while it serves.
package metrics

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds one process's metrics.
type Registry struct {
	reg *prometheus.Registry

	serverHandled *prometheus.CounterVec
	serverSeconds *prometheus.HistogramVec
	clientHandled *prometheus.CounterVec
	clientSeconds *prometheus.HistogramVec
}

// LatencyBuckets are the bounds, in seconds, of the gRPC handling-time
// histograms: 100 µs (a metadata read on loopback) to 10 s (a call that
// rode out a failover).
var LatencyBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// New returns a Registry with the Go runtime, process and gRPC metrics.
func New() *Registry {
	r := &Registry{
		reg: prometheus.NewRegistry(),
		serverHandled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dfs_grpc_server_handled_total",
			Help: "gRPC calls served, by service, method and status code.",
		}, []string{"service", "method", "code"}),
		serverSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dfs_grpc_server_handling_seconds",
			Help:    "Time to serve a gRPC call (a stream: its whole life), by service and method.",
			Buckets: LatencyBuckets,
		}, []string{"service", "method"}),
		clientHandled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dfs_grpc_client_handled_total",
			Help: "gRPC calls made and finished, by service, method and status code.",
		}, []string{"service", "method", "code"}),
		clientSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dfs_grpc_client_handling_seconds",
			Help:    "Time from starting a gRPC call to its end as the caller saw it, by service and method.",
			Buckets: LatencyBuckets,
		}, []string{"service", "method"}),
	}
	r.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		r.serverHandled, r.serverSeconds, r.clientHandled, r.clientSeconds,
	)
	return r
}

// Gauge describes one gauge whose value is read at scrape time.
type Gauge struct {
	// Name is the metric name, e.g. dfs_brick_raft_term.
	Name string
	// Help is the one-line description shown by Prometheus.
	Help string
	// Labels are the label names; every sample gives a value for each.
	Labels []string
}

// SetFunc records one sample of the gauge named name, with one value per
// label of its Gauge, in order.
type SetFunc func(name string, value float64, labelValues ...string)

// GaugeSet is a registered group of gauges; Unregister removes it.
type GaugeSet struct {
	r *Registry
	c *gaugeCollector
}

// RegisterGauges registers gauges whose values read reports at every
// scrape by calling set once per sample. read may be called concurrently
// with itself and must not block for long: it runs while a scrape waits.
// A sample of a name not in gauges, or with the wrong number of label
// values, makes the scrape report an error. Two sets must not share a
// gauge name.
func (r *Registry) RegisterGauges(gauges []Gauge, read func(set SetFunc)) (*GaugeSet, error) {
	c := &gaugeCollector{descs: map[string]gaugeDesc{}, read: read}
	for _, g := range gauges {
		if _, dup := c.descs[g.Name]; dup {
			return nil, fmt.Errorf("metrics: gauge %s listed twice", g.Name)
		}
		c.descs[g.Name] = gaugeDesc{prometheus.NewDesc(g.Name, g.Help, g.Labels, nil), len(g.Labels)}
	}
	if err := r.reg.Register(c); err != nil {
		return nil, fmt.Errorf("metrics: register gauges: %w", err)
	}
	return &GaugeSet{r: r, c: c}, nil
}

// Unregister stops reporting the set's gauges.
func (s *GaugeSet) Unregister() { s.r.reg.Unregister(s.c) }

type gaugeDesc struct {
	desc   *prometheus.Desc
	labels int
}

// gaugeCollector is a prometheus.Collector that reads its values when
// collected.
type gaugeCollector struct {
	descs map[string]gaugeDesc
	read  func(SetFunc)
}

func (c *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d.desc
	}
}

func (c *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	c.read(func(name string, v float64, labelValues ...string) {
		d, ok := c.descs[name]
		if !ok {
			ch <- prometheus.NewInvalidMetric(prometheus.NewDesc(name, "unregistered gauge", nil, nil),
				fmt.Errorf("metrics: gauge %s was not registered", name))
			return
		}
		m, err := prometheus.NewConstMetric(d.desc, prometheus.GaugeValue, v, labelValues...)
		if err != nil {
			m = prometheus.NewInvalidMetric(d.desc, err)
		}
		ch <- m
	})
}

// Handler serves /metrics and the pprof pages: /debug/pprof/ (the index
// and every named profile: heap, goroutine, allocs, block, mutex, ...),
// /debug/pprof/profile (CPU, ?seconds=N, default 30), /debug/pprof/trace,
// /debug/pprof/cmdline and /debug/pprof/symbol.
func (r *Registry) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "dfs: /metrics (Prometheus), /debug/pprof/ (Go profiles)")
	})
	return mux
}

// HTTPServer returns an http.Server for Handler. It bounds only the time
// to read a request's header: a CPU profile or trace answers after the
// seconds it was asked to sample.
func (r *Registry) HTTPServer() *http.Server {
	return &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 10 * time.Second}
}
