package client_test

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

// TestReadLentSeesOwnWrites: a sequential reader through ReadLent
// while another handle of the same client rewrites and flushes parts of
// the file: a read started after a flush returned sees what it wrote
// (reads see this client's writes), and data lent stays unchanged until
// released, however the cache is invalidated meanwhile.
func TestReadLentSeesOwnWrites(t *testing.T) {
	e := newEnv(t, clienttest.Options{Subvolumes: 2})
	const chunks = 6
	size := chunks * client.ChunkSize
	n := e.writeFile(e.v, e.v.Root(), "f", bytes.Repeat([]byte{0}, size))
	v := e.open()
	r, err := v.Open(e.ctx, n, syscall.O_RDONLY)
	mustOK(t, "open", err)
	defer r.Release(e.ctx)
	w, err := v.Open(e.ctx, n, syscall.O_RDWR)
	mustOK(t, "open", err)
	defer w.Release(e.ctx)

	// Generation g is written as byte g over the first 64 KiB of every
	// chunk; flushed[k] is the last generation flushed.
	var flushed atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for g := 1; g < 120; g++ {
			select {
			case <-stop:
				return
			default:
			}
			part := bytes.Repeat([]byte{byte(g)}, 64<<10)
			for k := range chunks {
				if _, err := w.WriteAt(e.ctx, part, int64(k*client.ChunkSize)); err != nil {
					t.Error(err)
					return
				}
			}
			if err := w.Flush(e.ctx); err != nil {
				t.Error(err)
				return
			}
			flushed.Store(int32(g))
		}
	}()
	type loan struct {
		data    [][]byte
		copy    []byte
		release func()
	}
	var held []loan
	lent, reads := 0, 0
	defer func() { t.Logf("%d of %d reads lent", lent, reads) }()
	for pass := 0; pass < 15; pass++ {
		for off := 0; off < size; off += 256 << 10 {
			buf := make([]byte, 256<<10) // a copied answer is buf itself
			min := byte(flushed.Load())
			bufs, release, err := r.ReadLent(e.ctx, buf, int64(off))
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			got := bytes.Join(bufs, nil)
			if &bufs[0][0] != &buf[0] {
				lent++
			}
			reads++
			if off%client.ChunkSize == 0 && got[0] < min {
				t.Fatalf("pass %d: read at %d got generation %d after generation %d was flushed", pass, off, got[0], min)
			}
			held = append(held, loan{bufs, got, release})
			if len(held) > 4 {
				l := held[0]
				held = held[1:]
				if !bytes.Equal(bytes.Join(l.data, nil), l.copy) {
					t.Fatal("lent data changed while held")
				}
				l.release()
			}
		}
	}
	for _, l := range held {
		if !bytes.Equal(bytes.Join(l.data, nil), l.copy) {
			t.Fatal("lent data changed while held")
		}
		l.release()
	}
}
