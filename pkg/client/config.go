package client

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"

	"github.com/dfsproject/dfs/pkg/wire"
)

// DefaultPort is the dfs server port used for a Servers entry without one.
const DefaultPort = 24007

// Defaults of Config.
const (
	DefaultCallTimeout = 5 * time.Second
	// DefaultPingTimeout is network.ping-timeout when the layout does not
	// set it.
	DefaultPingTimeout = 5 * time.Second
	// failoverSlack is added to network.ping-timeout to get the default
	// FailoverTimeout: time to notice a dead leader, plus time to elect
	// and reach a new one.
	failoverSlack = 5 * time.Second
	// maxNameLen is NAME_MAX.
	maxNameLen = 255
)

// Data placement constants. They are part of the brick store's format
// (brick/store DefaultChunkSize, DefaultInlineMax).
const (
	// ChunkSize is the size of a file data chunk.
	ChunkSize = 1 << 20
	// InlineMax is the largest file whose data lives inline in its inode
	// record.
	InlineMax = 64 << 10
)

// Config configures a Volume. Start from DefaultConfig, set Servers and
// Volume.
type Config struct {
	// Servers are dfs servers (host or host:port; port DefaultPort when
	// omitted) to fetch the volume layout from. Open asks them in order;
	// the layout watch also uses the servers the layout lists. Required.
	Servers []string
	// Volume is the name of the volume. Required.
	Volume string
	// Logger receives the client's log messages. Default: discard (also
	// when nil).
	Logger *slog.Logger
	// CallTimeout bounds one attempt of one RPC to one brick or server.
	// Default: 5 s.
	CallTimeout time.Duration
	// FailoverTimeout is how long an operation keeps retrying through
	// leader changes and dead bricks before it fails with ErrUnavailable.
	// Default (0): the volume option network.ping-timeout (5 s) plus 5 s,
	// following the option when the layout changes.
	FailoverTimeout time.Duration
	// ReadOnly makes every mutation fail with ErrReadOnly (mount -o ro).
	// Default: false.
	ReadOnly bool
	// AttrTimeout and EntryTimeout are how long the kernel may cache
	// attributes and directory entries. The client library does not use
	// them; the FUSE layer does. Default: 1 s each.
	AttrTimeout  time.Duration
	EntryTimeout time.Duration
	// WriteBuffer is how many bytes of written data a File may hold
	// before it flushes. Default: 8 MiB.
	WriteBuffer int
	// FlushParallelism is how many chunk writes of one file may be in
	// flight at once. Default: 8.
	FlushParallelism int
	// DialOptions are added to every gRPC connection the client makes,
	// before its own (which win where they conflict): the metrics
	// interceptors of `dfs mount -o debug-addr=`, for one. Default: none;
	// the connections always use the data path's codec (pkg/wire), which
	// receives chunk data with one copy instead of three, and may be
	// overridden here.
	DialOptions []grpc.DialOption
}

// DefaultConfig returns a Config with every field at its default; Servers
// and Volume are empty.
func DefaultConfig() Config {
	return Config{
		Logger:           slog.New(slog.DiscardHandler),
		CallTimeout:      DefaultCallTimeout,
		AttrTimeout:      time.Second,
		EntryTimeout:     time.Second,
		WriteBuffer:      8 << 20,
		FlushParallelism: 8,
	}
}

// Validate reports whether the config can be used to Open a volume. The
// error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	switch {
	case len(c.Servers) == 0:
		return fmt.Errorf("%w: no servers", ErrInvalidConfig)
	case c.Volume == "":
		return fmt.Errorf("%w: no volume name", ErrInvalidConfig)
	case c.CallTimeout < 0 || c.FailoverTimeout < 0 || c.AttrTimeout < 0 || c.EntryTimeout < 0:
		return fmt.Errorf("%w: negative timeout", ErrInvalidConfig)
	case c.WriteBuffer < 0 || c.FlushParallelism < 0:
		return fmt.Errorf("%w: negative write buffer or parallelism", ErrInvalidConfig)
	}
	for _, s := range c.Servers {
		if _, err := normalizeServer(s); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
	}
	return nil
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = d.CallTimeout
	}
	if c.AttrTimeout == 0 {
		c.AttrTimeout = d.AttrTimeout
	}
	if c.EntryTimeout == 0 {
		c.EntryTimeout = d.EntryTimeout
	}
	if c.WriteBuffer == 0 {
		c.WriteBuffer = d.WriteBuffer
	}
	// A buffer must hold at least one whole chunk.
	c.WriteBuffer = max(c.WriteBuffer, ChunkSize)
	if c.FlushParallelism == 0 {
		c.FlushParallelism = d.FlushParallelism
	}
	c.DialOptions = append(wire.DialOptions(), c.DialOptions...)
	return c
}

// normalizeServer adds the default port to a bare host.
func normalizeServer(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty server address")
	}
	if host, port, err := net.SplitHostPort(s); err == nil {
		if host == "" {
			return "", fmt.Errorf("server address %q has no host", s)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return "", fmt.Errorf("server address %q has a bad port", s)
		}
		return s, nil
	}
	return net.JoinHostPort(s, strconv.Itoa(DefaultPort)), nil
}
