package wire

import (
	"context"
	"net"
	"sync"
	"syscall"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// chunkServer answers every ReadChunk with a fresh copy of a 1 MiB chunk,
// as the brick store does.
type chunkServer struct {
	dfspb.UnimplementedBrickServiceServer
	chunk []byte
}

func (s *chunkServer) ReadChunk(ctx context.Context, req *dfspb.ReadChunkRequest) (*dfspb.ReadResponse, error) {
	data := make([]byte, len(s.chunk))
	copy(data, s.chunk)
	return &dfspb.ReadResponse{Data: data}, nil
}

// BenchmarkReadChunk: 1 MiB ReadChunk calls over loopback TCP, 8 in
// flight (the client's read-ahead), with gRPC's default codec and buffer
// pool and with this package's. Compare CPU per call (ns/op at full load
// of the benchmark's cores) and B/op.
func BenchmarkReadChunk(b *testing.B) {
	for _, bc := range []struct {
		name string
		srv  []grpc.ServerOption
		dial []grpc.DialOption
	}{
		{"default", nil, nil},
		{"wire", ServerOptions(), DialOptions()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := grpc.NewServer(append([]grpc.ServerOption{grpc.MaxSendMsgSize(8 << 20)}, bc.srv...)...)
			dfspb.RegisterBrickServiceServer(srv, &chunkServer{chunk: make([]byte, 1<<20)})
			go srv.Serve(ln)
			defer srv.Stop()
			conn, err := grpc.NewClient(ln.Addr().String(), append(bc.dial,
				grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20)))...)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			cl := dfspb.NewBrickServiceClient(conn)
			ctx := context.Background()
			b.SetBytes(1 << 20)
			b.ResetTimer()
			cpu0 := cpuTime(b)
			var wg sync.WaitGroup
			next := make(chan struct{})
			for range 8 {
				wg.Go(func() {
					for range next {
						r, err := cl.ReadChunk(ctx, &dfspb.ReadChunkRequest{Length: 1 << 20})
						if err != nil || len(r.Data) != 1<<20 {
							b.Errorf("read: %v, %d bytes", err, len(r.GetData()))
							return
						}
					}
				})
			}
			for range b.N {
				next <- struct{}{}
			}
			close(next)
			wg.Wait()
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's user and system CPU time so far, in ns: the
// machine is shared, so wall time per call says little.
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
