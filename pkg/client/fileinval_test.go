package client_test

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

// TestChangedOpenReportsOtherClientsCommit checks that a file open here is
// reported changed (its cached pages may be stale) once RefreshOpenFile has
// seen another client's commit, and not for this client's buffered
// writes, which leave the committed version alone.
func TestChangedOpenReportsOtherClientsCommit(t *testing.T) {
	e := newEnv(t, clienttest.Options{Subvolumes: 2})
	n := e.writeFile(e.v, e.v.Root(), "f", bytes.Repeat([]byte{1}, 2*client.ChunkSize))
	f, err := e.v.Open(e.ctx, n, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release(e.ctx)

	// Own buffered writes, flushed to the chunks but not committed.
	for i := range 40 {
		if _, err := f.WriteAt(e.ctx, bytes.Repeat([]byte{2}, 4096), int64(i)*40960); err != nil {
			t.Fatal(err)
		}
	}
	e.v.RefreshOpenFile(e.ctx, n, 0)
	if got := e.v.TakeChangedOpen(); len(got) != 0 {
		t.Fatalf("changed after own buffered writes: %v", got)
	}

	// Another client commits a write.
	other := e.open()
	g, err := other.Open(e.ctx, n, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WriteAt(e.ctx, []byte("other"), 100); err != nil {
		t.Fatal(err)
	}
	if err := g.Release(e.ctx); err != nil {
		t.Fatal(err)
	}
	// Attributes younger than maxAge are not asked for again.
	e.v.RefreshOpenFile(e.ctx, n, time.Hour)
	if got := e.v.TakeChangedOpen(); len(got) != 0 {
		t.Fatalf("changed without a refresh: %v", got)
	}
	e.v.RefreshOpenFile(e.ctx, n, 0)
	got := e.v.TakeChangedOpen()
	if !slices.ContainsFunc(got, func(m client.Node) bool { return m.ID == n.ID }) {
		t.Fatalf("TakeChangedOpen = %v, want %v after another client's commit", got, n.ID)
	}
	if again := e.v.TakeChangedOpen(); len(again) != 0 {
		t.Fatalf("reported twice: %v", again)
	}
	// The other client's bytes and this client's buffered ones read back.
	p := make([]byte, 4096+200)
	if _, err := f.ReadAt(e.ctx, p, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p[:100], bytes.Repeat([]byte{2}, 100)) {
		t.Fatal("own buffered write not read back")
	}
}

// TestScatteredWritesFullBufferFlushesFattest checks that random 4 KiB
// writes over many chunks that fill the write buffer commit many extents
// per Raft entry: the fullest chunk buffers are written first, the others
// keep gathering writes.
func TestScatteredWritesFullBufferFlushesFattest(t *testing.T) {
	const chunks = 32
	e := newEnv(t, clienttest.Options{Subvolumes: 1}, func(c *client.Config) {
		c.WriteBuffer = 256 << 10 // 64 writes of 4 KiB
		c.FlushParallelism = 2
	})
	n := e.writeFile(e.v, e.v.Root(), "f", make([]byte, chunks*client.ChunkSize))
	f, err := e.v.Open(e.ctx, n, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release(e.ctx)
	model := make([]byte, chunks*client.ChunkSize)
	mutations := func() int64 {
		var m int64
		for _, b := range e.c.Subvolumes[0].Bricks {
			m += b.Mutations()
		}
		return m / int64(len(e.c.Subvolumes[0].Bricks))
	}
	before := mutations()
	r := rand.New(rand.NewPCG(3, 4))
	const writes = 1000
	for range writes {
		off := int64(r.IntN(chunks*client.ChunkSize/8192)) * 8192
		p := make([]byte, 4096)
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		copy(model[off:], p)
		if _, err := f.WriteAt(e.ctx, p, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Flush(e.ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes, %d entries", writes, mutations()-before)
	// Writing every dirty chunk whenever the buffer filled took about
	// one entry per two writes here.
	if got := mutations() - before; got > writes/8 {
		t.Fatalf("%d random writes took %d Raft entries, want at most %d", writes, got, writes/8)
	}
	if got := e.readAll(e.open(), n); !bytes.Equal(got, model) {
		t.Fatal("another client reads other bytes than were written")
	}
}

// TestEmptyWriteAtZero: a write of nothing at offset 0 of a chunked file
// is a no-op that returns at once.
func TestEmptyWriteAtZero(t *testing.T) {
	e := newEnv(t, clienttest.Options{Subvolumes: 1})
	n := e.writeFile(e.v, e.v.Root(), "f", make([]byte, 2*client.ChunkSize))
	f, err := e.v.Open(e.ctx, n, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release(e.ctx)
	if k, err := f.WriteAt(e.ctx, nil, 0); k != 0 || err != nil {
		t.Fatalf("WriteAt(nil, 0) = %d, %v", k, err)
	}
	if got := f.Size(); got != 2*client.ChunkSize {
		t.Fatalf("size %d after an empty write, want %d", got, 2*client.ChunkSize)
	}
}
