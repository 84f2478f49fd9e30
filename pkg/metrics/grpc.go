package metrics

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// ServerOptions are the options that make a grpc.Server count and time
// its calls in r. Pass them to grpc.NewServer beside any others.
func (r *Registry) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(r.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(r.StreamServerInterceptor()),
	}
}

// DialOptions are the options that make a client connection count and
// time its calls in r.
func (r *Registry) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(r.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(r.StreamClientInterceptor()),
	}
}

// UnaryServerInterceptor counts and times unary calls served.
func (r *Registry) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		observe(r.serverHandled, r.serverSeconds, info.FullMethod, start, err)
		return resp, err
	}
}

// StreamServerInterceptor counts and times streams served, each once it
// ends.
func (r *Registry) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		observe(r.serverHandled, r.serverSeconds, info.FullMethod, start, err)
		return err
	}
}

// UnaryClientInterceptor counts and times unary calls made.
func (r *Registry) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		start := time.Now()
		err := invoker(ctx, method, req, reply, cc, opts...)
		observe(r.clientHandled, r.clientSeconds, method, start, err)
		return err
	}
}

// StreamClientInterceptor counts and times streams made. A stream is
// recorded when the caller sees its end: RecvMsg returns an error (io.EOF
// counts as OK), or, for a call whose server sends one message, that
// message arrives. A stream the caller abandons without reading to its
// end is not recorded.
func (r *Registry) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		start := time.Now()
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			observe(r.clientHandled, r.clientSeconds, method, start, err)
			return nil, err
		}
		return &clientStream{ClientStream: cs, r: r, method: method, start: start, serverStreams: desc.ServerStreams}, nil
	}
}

type clientStream struct {
	grpc.ClientStream
	r             *Registry
	method        string
	start         time.Time
	serverStreams bool
	once          sync.Once
}

func (s *clientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	switch {
	case errors.Is(err, io.EOF):
		s.done(nil)
	case err != nil:
		s.done(err)
	case !s.serverStreams:
		s.done(nil) // the one answer of a client-streaming call
	}
	return err
}

func (s *clientStream) done(err error) {
	s.once.Do(func() { observe(s.r.clientHandled, s.r.clientSeconds, s.method, s.start, err) })
}

// observe records one finished call of fullMethod ("/pkg.Service/Method").
func observe(handled *prometheus.CounterVec, seconds *prometheus.HistogramVec, fullMethod string, start time.Time, err error) {
	service, method := splitMethod(fullMethod)
	handled.WithLabelValues(service, method, status.Code(err).String()).Inc()
	seconds.WithLabelValues(service, method).Observe(time.Since(start).Seconds())
}

// splitMethod splits "/dfs.BrickService/Write" into "dfs.BrickService"
// and "Write".
func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}
