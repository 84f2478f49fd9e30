package store

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/dfsproject/dfs/pkg/layout"
)

// TestReadChunkConcurrentSmallReads: small reads of several chunks
// from many goroutines at once (pooled buffers shared between them) each
// return their own bytes, which stay intact while the other goroutines
// go on reading; reads past a chunk's end return what it holds.
func TestReadChunkConcurrentSmallReads(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.NoSync = true; c.Logger = nil })
	ctx := context.Background()
	file := layout.NewID()
	const chunks = 4
	datas := make([][]byte, chunks)
	for i := range chunks {
		datas[i] = pattern(byte(10+i), DefaultChunkSize-777*i)
		if r := h.apply(writeChunkCmd(file, uint64(i), 0, datas[i])); r.Code != 0 {
			t.Fatal(ResultError(r))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			type kept struct {
				idx, off int
				got      []byte
			}
			var held []kept
			for i := range 400 {
				idx := (g + i) % chunks
				off := (i*7919 + g*4099) % (len(datas[idx]) + 100)
				n := 1 + (i*31)%6000
				got, err := h.s.ReadChunk(ctx, file, uint64(idx), int64(off), n)
				if err != nil {
					errs <- err.Error()
					return
				}
				want := datas[idx][min(off, len(datas[idx])):min(off+n, len(datas[idx]))]
				if !bytes.Equal(got, want) {
					errs <- "wrong bytes"
					return
				}
				held = append(held, kept{idx, off, got})
			}
			for _, k := range held {
				d := datas[k.idx]
				if !bytes.Equal(k.got, d[min(k.off, len(d)):min(k.off+len(k.got), len(d))]) {
					errs <- "bytes returned changed afterwards"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
