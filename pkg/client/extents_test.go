package client_test

import (
	"bytes"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

// TestScatteredWritesOneRoundPerChunk checks that random writes buffered
// over a few chunks commit in one Raft entry per chunk (WriteExtents), not
// one per write, and read back right from another client.
func TestScatteredWritesOneRoundPerChunk(t *testing.T) {
	e := newEnv(t, clienttest.Options{Subvolumes: 1})
	n := e.writeFile(e.v, e.v.Root(), "f", make([]byte, 3*client.ChunkSize))
	f, err := e.v.Open(e.ctx, n, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	model := make([]byte, 3*client.ChunkSize)
	r := rand.New(rand.NewPCG(1, 2))
	for range 60 { // 4 KiB writes, 4 KiB aligned, none adjacent to another
		off := int64(r.IntN(3*client.ChunkSize/8192)) * 8192
		p := make([]byte, 4096)
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		copy(model[off:], p)
		if _, err := f.WriteAt(e.ctx, p, off); err != nil {
			t.Fatal(err)
		}
	}
	var before int64
	for _, b := range e.c.Subvolumes[0].Bricks {
		before += b.Mutations()
	}
	if err := f.Flush(e.ctx); err != nil {
		t.Fatal(err)
	}
	var after int64
	for _, b := range e.c.Subvolumes[0].Bricks {
		after += b.Mutations()
	}
	// One entry per chunk touched, and the size commit.
	if got := after - before; got > 4 {
		t.Fatalf("flush of 60 scattered writes over 3 chunks took %d Raft entries, want at most 4", got)
	}
	_ = f.Release(e.ctx)

	other := e.open()
	g, err := other.Open(e.ctx, n, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Release(e.ctx)
	got := make([]byte, len(model))
	if k, err := g.ReadAt(e.ctx, got, 0); k != len(got) {
		t.Fatalf("read %d of %d bytes: %v", k, len(got), err)
	}
	if !bytes.Equal(got, model) {
		t.Fatal("another client reads other bytes than were written")
	}
}
