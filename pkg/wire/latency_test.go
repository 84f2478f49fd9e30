package wire

import (
	"context"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/dfsproject/dfs/pkg/mux"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// lookupServer answers every Lookup with an entry and its attributes, the
// size of a real brick's answer.
type lookupServer struct {
	dfspb.UnimplementedBrickServiceServer
}

func (lookupServer) Lookup(_ context.Context, req *dfspb.LookupRequest) (*dfspb.StoreResult, error) {
	id := make([]byte, 16)
	return &dfspb.StoreResult{Dirent: &dfspb.Dirent{
		Name: req.Name, Id: id, Type: dfspb.FileType_FILE_TYPE_FILE, Locator: req.Parent,
		Attr: &dfspb.Attr{Id: id, Type: dfspb.FileType_FILE_TYPE_FILE, Mode: 0o644, Nlink: 1, Size: 4096,
			AtimeNs: 1, MtimeNs: 2, CtimeNs: 3, Version: 1234},
	}}, nil
}

// latencyCase is one set of options for BenchmarkUnaryLatency: "dfs" is
// what dfs uses (options.go), the others add one option to it; all get
// the message size limits and the brick listener's mux.
type latencyCase struct {
	name string
	srv  []grpc.ServerOption
	dial []grpc.DialOption
}

func latencyCases() []latencyCase {
	win := func(n int32) ([]grpc.ServerOption, []grpc.DialOption) {
		// A window set by hand turns gRPC's BDP estimation (its pings)
		// off.
		return []grpc.ServerOption{grpc.InitialWindowSize(n), grpc.InitialConnWindowSize(n)},
			[]grpc.DialOption{grpc.WithInitialWindowSize(n), grpc.WithInitialConnWindowSize(n)}
	}
	bufs := func(n int) ([]grpc.ServerOption, []grpc.DialOption) {
		return []grpc.ServerOption{grpc.ReadBufferSize(n), grpc.WriteBufferSize(n)},
			[]grpc.DialOption{grpc.WithReadBufferSize(n), grpc.WithWriteBufferSize(n)}
	}
	ws, wd := win(4 << 20)
	bs0, bd0 := bufs(0)
	bs64, bd64 := bufs(64 << 10)
	cases := []latencyCase{
		{name: "grpc-defaults"},
		{name: "dfs", srv: ServerOptions(), dial: DialOptions()},
		{name: "dfs+workers", srv: append(ServerOptions(), grpc.NumStreamWorkers(uint32(runtime.NumCPU()))), dial: DialOptions()},
		{name: "dfs+window4M", srv: append(ServerOptions(), ws...), dial: append(DialOptions(), wd...)},
		{name: "dfs+bufs0", srv: append(ServerOptions(), bs0...), dial: append(DialOptions(), bd0...)},
		{name: "dfs+bufs64K", srv: append(ServerOptions(), bs64...), dial: append(DialOptions(), bd64...)},
		{name: "dfs+sharedwrite", srv: append(ServerOptions(), grpc.SharedWriteBuffer(true)), dial: append(DialOptions(), grpc.WithSharedWriteBuffer(true))},
		{name: "dfs+keepalive", srv: append(ServerOptions(), grpc.KeepaliveParams(keepalive.ServerParameters{Time: 10 * time.Second})),
			dial: append(DialOptions(), grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second}))},
		{name: "dfs+workers+window4M", srv: append(append(ServerOptions(), grpc.NumStreamWorkers(uint32(runtime.NumCPU()))), ws...), dial: append(DialOptions(), wd...)},
	}
	return cases
}

// BenchmarkUnaryLatency: one small unary call (a Lookup) at a time over
// loopback TCP, through the brick's listener mux, with each set of
// options. ns/op is the round trip; cpu-ns/op the CPU of both sides.
// Run with -cpu 1,2 for GOMAXPROCS effects.
func BenchmarkUnaryLatency(b *testing.B) {
	for _, c := range latencyCases() {
		b.Run(c.name, func(b *testing.B) {
			cl, stop := startLookupServer(b, c.srv, c.dial)
			defer stop()
			ctx := context.Background()
			req := &dfspb.LookupRequest{Parent: make([]byte, 16), Name: "file-000123"}
			for range 100 { // warm up the connection and the pools
				if _, err := cl.Lookup(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for range b.N {
				r, err := cl.Lookup(ctx, req)
				if err != nil || r.Dirent.GetName() != req.Name {
					b.Fatalf("lookup: %v %v", err, r)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkTCPPingPong is the floor: a 64-byte request and a 128-byte
// answer over a loopback TCP connection, one at a time.
func BenchmarkTCPPingPong(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		in, out := make([]byte, 64), make([]byte, 128)
		for {
			if _, err := io.ReadFull(c, in); err != nil {
				return
			}
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	in, out := make([]byte, 128), make([]byte, 64)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(out); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, in); err != nil {
			b.Fatal(err)
		}
	}
}

// startLookupServer serves lookupServer as a brick does (size limits,
// the listener mux) and dials it as the client does.
func startLookupServer(tb testing.TB, srvOpts []grpc.ServerOption, dialOpts []grpc.DialOption) (dfspb.BrickServiceClient, func()) {
	ml, err := mux.Listen("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(append([]grpc.ServerOption{grpc.MaxRecvMsgSize(8 << 20), grpc.MaxSendMsgSize(8 << 20)}, srvOpts...)...)
	dfspb.RegisterBrickServiceServer(srv, lookupServer{})
	go srv.Serve(ml.Default())
	conn, err := grpc.NewClient(ml.Addr().String(), append(dialOpts,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20), grpc.MaxCallSendMsgSize(8<<20)))...)
	if err != nil {
		tb.Fatal(err)
	}
	return dfspb.NewBrickServiceClient(conn), func() {
		conn.Close()
		srv.Stop()
		ml.Close()
	}
}

// TestUnaryOptions: a call works with the options dfs uses.
func TestUnaryOptions(t *testing.T) {
	cl, stop := startLookupServer(t, ServerOptions(), DialOptions())
	defer stop()
	r, err := cl.Lookup(context.Background(), &dfspb.LookupRequest{Parent: make([]byte, 16), Name: "x"})
	if err != nil || r.Dirent.GetName() != "x" || r.Dirent.GetAttr().GetSize() != 4096 {
		t.Fatalf("lookup: %v %v", err, r)
	}
}
