package mux

import (
	"io"
	"net"
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
