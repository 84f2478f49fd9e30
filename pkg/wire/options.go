package wire

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
)

// ServerOptions make a gRPC server use the codec and a buffer pool that
// does not zero the buffers it hands out.
//
// Nothing else: BenchmarkUnaryLatency (latency_test.go: one small call at
// a time over loopback TCP, about 60 µs of CPU and 160 allocations per
// call against 15 µs for a TCP ping-pong) found no option that cuts a
// unary call's time or CPU beyond the noise of a shared machine: stream
// workers (NumStreamWorkers), 64 KiB read and write buffers, a shared
// write buffer, keepalive, fixed 4 MiB flow-control windows (which turn
// BDP estimation off: 12 fewer allocations per call, but more CPU per
// 1 MiB ReadChunk, Session 3 in docs/performance.md); no write buffer is
// 2.5 times slower. The cost is gRPC's own per call (HTTP/2 framing, the
// hand-offs between the caller, the transport's reader and writer
// goroutines and the handler's): fewer calls is the lever (the lookup
// pages of pkg/client).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(Codec()),
		experimental.BufferPool(newPool()),
	}
}

// DialOptions make a gRPC client connection use the codec and a buffer
// pool that does not zero the buffers it hands out.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(Codec())),
		experimental.WithBufferPool(newPool()),
	}
}
