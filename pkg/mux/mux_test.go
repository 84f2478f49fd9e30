package mux

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRoutesByFirstByte(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	raftLn := l.Tagged('R')
	addr := l.Addr().String()

	got := make(chan string, 2)
	accept := func(ln net.Listener) {
		c, err := ln.Accept()
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- string(b)
	}
	go accept(raftLn)
	go accept(l.Default())

	rc, err := Dial(addr, 'R', time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rc.Write([]byte("raft-bytes"))
	rc.Close()
	pc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	pc.Write([]byte("PRI * HTTP/2.0"))
	pc.Close()

	seen := map[string]bool{<-got: true, <-got: true}
	for _, want := range []string{"raft-bytes", "PRI * HTTP/2.0"} {
		if !seen[want] {
			t.Errorf("sub-listeners got %v, want %q among them", seen, want)
		}
	}
}

func TestCloseUnblocksAccept(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := l.Tagged('R').Accept(); errc <- err }()
	l.Close()
	select {
	case err := <-errc:
		if err != ErrClosed {
			t.Fatalf("Accept after Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}

func TestSubListenerCloseIsLocal(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	first := l.Tagged('R')
	first.Close()
	if _, err := first.Accept(); err != ErrClosed {
		t.Fatalf("Accept on closed sub-listener: %v", err)
	}
	again := l.Tagged('R')
	go func() {
		c, err := Dial(l.Addr().String(), 'R', time.Second)
		if err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
	}()
	c, err := again.Accept()
	if err != nil {
		t.Fatalf("reopened sub-listener: %v", err)
	}
	c.Close()
}

// GET and HEAD reach an http.Server on HTTP() with the request intact,
// while tagged and other connections keep their listeners.
func TestHTTPGetAndHead(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Method", r.Method)
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l.HTTP()) }()
	defer func() {
		srv.Close()
		if err := <-served; err != http.ErrServerClosed && err != ErrClosed {
			t.Errorf("Serve: %v", err)
		}
	}()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	base := "http://" + l.Addr().String()

	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "GET /metrics" {
		t.Errorf("GET body %q, want %q", body, "GET /metrics")
	}
	resp, err = hc.Head(base + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if m := resp.Header.Get("X-Method"); m != "HEAD" {
		t.Errorf("HEAD reached the handler as %q", m)
	}

	// An HTTP/2 preface still goes to Default, a tagged one to its
	// listener.
	raftLn := l.Tagged('R')
	got := make(chan string, 2)
	for _, ln := range []net.Listener{raftLn, l.Default()} {
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			defer c.Close()
			b, _ := io.ReadAll(c)
			got <- string(b)
		}()
	}
	rc, err := Dial(l.Addr().String(), 'R', time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rc.Write([]byte("GET-looking raft bytes"))
	rc.Close()
	pc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	pc.Write([]byte("PRI * HTTP/2.0"))
	pc.Close()
	seen := map[string]bool{<-got: true, <-got: true}
	for _, want := range []string{"GET-looking raft bytes", "PRI * HTTP/2.0"} {
		if !seen[want] {
			t.Errorf("sub-listeners got %v, want %q among them", seen, want)
		}
	}
}

// Before HTTP is called, a GET goes to Default with its first byte.
func TestGetWithoutHTTPListenerGoesToDefault(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		c, err := l.Default().Accept()
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- string(b)
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.1\r\n"))
	c.Close()
	if s := <-got; s != "GET / HTTP/1.1\r\n" {
		t.Errorf("Default got %q", s)
	}
}

func TestHTTPListenerCloseAndReopen(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	first := l.HTTP()
	if l.HTTP() != first {
		t.Fatal("HTTP returned a second listener while the first is open")
	}
	first.Close()
	if _, err := first.Accept(); err != ErrClosed {
		t.Fatalf("Accept on closed HTTP listener: %v", err)
	}
	again := l.HTTP()
	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err == nil {
			c.Write([]byte("HEAD / HTTP/1.0\r\n\r\n"))
			c.Close()
		}
	}()
	c, err := again.Accept()
	if err != nil {
		t.Fatalf("reopened HTTP listener: %v", err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if !strings.HasPrefix(string(b), "HEAD /") {
		t.Errorf("reopened HTTP listener read %q", b)
	}
}

func TestHTTPMethodTagsRefused(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tag := range []byte{'G', 'H', 'P'} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Tagged(%q) did not panic", tag)
				}
			}()
			l.Tagged(tag)
		}()
	}
}
