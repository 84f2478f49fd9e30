package client_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// tWriter routes log output to t.Log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// env is a fake volume with a client open on it.
type env struct {
	t   *testing.T
	c   *clienttest.Cluster
	v   *client.Volume
	ctx context.Context
}

func newEnv(t *testing.T, opts clienttest.Options, mods ...func(*client.Config)) *env {
	t.Helper()
	c := clienttest.Start(t, opts)
	e := &env{t: t, c: c, ctx: t.Context()}
	e.v = e.open(mods...)
	return e
}

// open opens another client (Volume) on the fake volume.
func (e *env) open(mods ...func(*client.Config)) *client.Volume {
	e.t.Helper()
	cfg := client.DefaultConfig()
	cfg.Servers = e.c.Servers()
	cfg.Volume = e.c.Volume
	cfg.Logger = testLogger(e.t)
	cfg.FailoverTimeout = 3 * time.Second
	for _, m := range mods {
		m(&cfg)
	}
	v, err := client.Open(e.ctx, cfg)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.t.Cleanup(func() { _ = v.Close() })
	return v
}

// layout returns the fake volume's placement.
func (e *env) layout() *layout.Layout {
	vl := e.c.Manager.Layout()
	l := &layout.Layout{VolumeID: vl.VolumeId, Version: vl.Version, Subvolumes: len(vl.Subvolumes)}
	for _, p := range vl.Partitions {
		l.Partitions = append(l.Partitions, int(p))
	}
	return l
}

func (e *env) subOf(id layout.ID) int { return e.layout().SubvolumeOfDir(id) }

// mkdirOn makes directories in parent until one lands on subvolume sub
// (or, with same, on parent's subvolume).
func (e *env) mkdirWhere(parent client.Node, prefix string, pred func(client.Node) bool) client.Node {
	e.t.Helper()
	for i := range 64 {
		n, _, err := e.v.Mkdir(e.ctx, parent, prefix+string(rune('a'+i%26))+strings.Repeat("x", i/26), 0o755, 0, 0)
		if err != nil {
			e.t.Fatalf("mkdir: %v", err)
		}
		if pred(n) {
			return n
		}
	}
	e.t.Fatalf("no directory landed where wanted")
	return client.Node{}
}

func (e *env) create(dir client.Node, name string) client.Node {
	e.t.Helper()
	n, _, err := e.v.Create(e.ctx, dir, name, 0o644, 0, 0, true)
	if err != nil {
		e.t.Fatalf("create %s: %v", name, err)
	}
	return n
}

// writeFile creates (or truncates) name in dir with data, through a File.
func (e *env) writeFile(v *client.Volume, dir client.Node, name string, data []byte) client.Node {
	e.t.Helper()
	n, _, err := v.Create(e.ctx, dir, name, 0o644, 0, 0, false)
	if err != nil {
		e.t.Fatalf("create %s: %v", name, err)
	}
	f, err := v.Open(e.ctx, n, syscall.O_RDWR|syscall.O_TRUNC)
	if err != nil {
		e.t.Fatalf("open %s: %v", name, err)
	}
	if len(data) > 0 {
		if _, err := f.WriteAt(e.ctx, data, 0); err != nil {
			e.t.Fatalf("write %s: %v", name, err)
		}
	}
	if err := f.Release(e.ctx); err != nil {
		e.t.Fatalf("close %s: %v", name, err)
	}
	return n
}

// readAll reads a whole file through a new File of v.
func (e *env) readAll(v *client.Volume, n client.Node) []byte {
	e.t.Helper()
	f, err := v.Open(e.ctx, n, 0)
	if err != nil {
		e.t.Fatalf("open: %v", err)
	}
	defer f.Release(e.ctx)
	a, err := v.GetAttr(e.ctx, n)
	if err != nil {
		e.t.Fatalf("getattr: %v", err)
	}
	buf := make([]byte, a.Size+100)
	got, err := f.ReadAt(e.ctx, buf, 0)
	if err != nil && got != int(a.Size) {
		e.t.Fatalf("read: %d bytes, %v", got, err)
	}
	return buf[:got]
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

func mustOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// chunks returns how many chunks the fake volume's stores hold.
func (e *env) chunks() uint64 {
	var n uint64
	for _, sv := range e.c.Subvolumes {
		s, err := sv.Store().Statfs(e.ctx)
		if err != nil {
			e.t.Fatalf("statfs: %v", err)
		}
		n += s.Chunks
	}
	return n
}

// applied returns how many commands the fake volume applied in all.
func (e *env) applied() uint64 {
	var n uint64
	for _, sv := range e.c.Subvolumes {
		n += sv.Applied()
	}
	return n
}

var fileType = dfspb.FileType_FILE_TYPE_FILE
