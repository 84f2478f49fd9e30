package wire

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
)

// ServerOptions make a gRPC server use the codec and a buffer pool that
// does not zero the buffers it hands out.
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
