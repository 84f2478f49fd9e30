// Package mux shares one TCP listener between gRPC and other protocols.
//
// A dfs server listens on one port (24007 by default, like glusterd) and a
// brick on one port of its own, yet each carries two protocols: gRPC and
// the Raft transport of its group. mux tells them apart by the first byte of
// every accepted connection:
//
//   - A connection dialled with Dial(addr, tag, ...) starts with tag, which
//     mux consumes before handing the connection to the listener returned by
//     Listener.Tagged(tag).
//   - A connection that starts with 'G' or 'H' (an HTTP/1 GET or HEAD
//     request line) is handed, first byte included, to Listener.HTTP()
//     once that has been called. Only GET and HEAD can be told apart
//     from the other protocols: a POST starts with 'P' like HTTP/2's
//     preface and goes to Default, so the HTTP listener serves reads
//     only (metrics, pprof).
//   - Any other connection (gRPC's HTTP/2 preface starts with 'P') is handed,
//     first byte included, to Listener.Default().
//
// Tags must not be 'P', 'G' or 'H'. A connection that sends nothing within the
// configured handshake timeout is closed.
//
// All methods may be called concurrently. Closing a sub-listener stops only
// it, and closes the connections it handed out that are still open (a Raft
// group can be shut down and opened again on the same port);
// Listener.Close closes the TCP listener and every sub-listener. Connections
// already handed out are the caller's.
package mux

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ErrClosed is returned by Accept on a closed listener.
var ErrClosed = errors.New("mux: listener closed")

// HandshakeTimeout bounds how long a new connection may take to send its
// first byte.
const HandshakeTimeout = 10 * time.Second

// Listener demultiplexes one net.Listener.
type Listener struct {
	ln       net.Listener
	def      *subListener
	mu       sync.Mutex
	tagged   map[byte]*subListener
	http     *subListener // nil until HTTP is called
	done     chan struct{}
	closeErr error
	once     sync.Once
}

// New starts demultiplexing ln. It takes ownership of ln.
func New(ln net.Listener) *Listener {
	l := &Listener{ln: ln, tagged: map[byte]*subListener{}, done: make(chan struct{})}
	l.def = l.newSub()
	go l.serve()
	return l
}

// Listen opens a TCP listener on addr and demultiplexes it.
func Listen(addr string) (*Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return New(ln), nil
}

// Addr is the address of the underlying listener.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Default returns the listener for connections without a known tag (gRPC).
func (l *Listener) Default() net.Listener { return l.def }

// HTTP returns the listener for HTTP/1 GET and HEAD requests: connections
// whose first byte is 'G' or 'H', handed out with that byte unread. Until
// HTTP is first called such connections go to Default. Calling it again
// returns the same listener, or a new one once that one is closed.
func (l *Listener) HTTP() net.Listener {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.http == nil || l.http.isClosed() {
		l.http = l.newSub()
	}
	return l.http
}

// isHTTPMethod reports whether b starts an HTTP/1 request line that mux
// routes to the HTTP listener (GET, HEAD).
func isHTTPMethod(b byte) bool { return b == 'G' || b == 'H' }

// Tagged returns the listener for connections dialled with tag.
func (l *Listener) Tagged(tag byte) net.Listener {
	if tag == 'P' {
		panic("mux: tag 'P' is reserved for HTTP/2")
	}
	if isHTTPMethod(tag) {
		panic("mux: tags 'G' and 'H' are reserved for HTTP/1 (Listener.HTTP)")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.tagged[tag]
	if !ok || s.isClosed() {
		s = l.newSub()
		l.tagged[tag] = s
	}
	return s
}

// Close stops accepting connections on every sub-listener.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.closeErr = l.ln.Close()
		l.mu.Lock()
		subs := []*subListener{l.def}
		for _, s := range l.tagged {
			subs = append(subs, s)
		}
		if l.http != nil {
			subs = append(subs, l.http)
		}
		l.mu.Unlock()
		for _, s := range subs {
			s.Close()
		}
	})
	return l.closeErr
}

func (l *Listener) newSub() *subListener {
	return &subListener{parent: l, conns: make(chan net.Conn), done: make(chan struct{}), open: map[*peekedConn]bool{}}
}

func (l *Listener) serve() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.Close()
			return
		}
		go l.route(c)
	}
}

func (l *Listener) route(c net.Conn) {
	br := bufio.NewReaderSize(c, 1)
	_ = c.SetReadDeadline(time.Now().Add(HandshakeTimeout))
	first, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	l.mu.Lock()
	sub, ok := l.tagged[first[0]]
	httpSub := l.http
	l.mu.Unlock()
	switch {
	case ok:
		_, _ = br.Discard(1)
	case httpSub != nil && isHTTPMethod(first[0]):
		sub = httpSub
	default:
		sub = l.def
	}
	conn := &peekedConn{Conn: c, r: br, sub: sub}
	if !sub.track(conn) {
		c.Close()
		return
	}
	select {
	case sub.conns <- conn:
	case <-sub.done:
		c.Close()
	case <-l.done:
		c.Close()
	}
}

// Dial connects to a mux listener at addr and announces tag.
func Dial(addr string, tag byte, timeout time.Duration) (net.Conn, error) {
	return DialFrom("", addr, tag, timeout)
}

// DialFrom is Dial from the host of local, the address this process
// listens on ("host:port" or a bare host; see SourceDialer).
func DialFrom(local, addr string, tag byte, timeout time.Duration) (net.Conn, error) {
	d := SourceDialer(local)
	d.Timeout = timeout
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if timeout > 0 {
		_ = c.SetWriteDeadline(time.Now().Add(timeout))
	}
	if _, err := c.Write([]byte{tag}); err != nil {
		c.Close()
		return nil, fmt.Errorf("mux: announce tag to %s: %w", addr, err)
	}
	_ = c.SetWriteDeadline(time.Time{})
	return c, nil
}

type subListener struct {
	parent *Listener
	conns  chan net.Conn
	done   chan struct{}
	once   sync.Once

	mu     sync.Mutex
	open   map[*peekedConn]bool // handed out (or about to be) and not closed
	closed bool
}

func (s *subListener) track(c *peekedConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.open[c] = true
	return true
}

func (s *subListener) untrack(c *peekedConn) {
	s.mu.Lock()
	delete(s.open, c)
	s.mu.Unlock()
}

func (s *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, ErrClosed
	case <-s.parent.done:
		return nil, ErrClosed
	}
}

// Close stops this sub-listener and closes its open connections.
func (s *subListener) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.mu.Lock()
		s.closed = true
		open := s.open
		s.open = nil
		s.mu.Unlock()
		for c := range open {
			c.Conn.Close()
		}
	})
	return nil
}

func (s *subListener) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *subListener) Addr() net.Addr { return s.parent.Addr() }

// peekedConn reads through the buffered reader that holds the peeked byte.
type peekedConn struct {
	net.Conn
	r   *bufio.Reader
	sub *subListener
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *peekedConn) Close() error {
	c.sub.untrack(c)
	return c.Conn.Close()
}

// SourceDialer returns a dialer whose connections leave from the host of
// local, the address this process listens on ("host:port" or a bare host;
// an empty, unspecified or non-IP host: the system's choice). A server
// dials from the address it listens on, so that its peers see the
// address they know it by, and a firewall rule on that address cuts its
// connections both ways, as it would on a machine of its own.
func SourceDialer(local string) *net.Dialer {
	host := local
	if h, _, err := net.SplitHostPort(local); err == nil {
		host = h
	}
	d := &net.Dialer{}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	return d
}

// ContextDialer is SourceDialer(local) as the dial function gRPC takes
// (grpc.WithContextDialer).
func ContextDialer(local string) func(context.Context, string) (net.Conn, error) {
	d := SourceDialer(local)
	return func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
}
