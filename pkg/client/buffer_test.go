package client

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestChunkBufModel drives a chunkBuf with random writes, fills and
// truncations against a model of the chunk's dirty bytes, and checks the
// extents (sorted, disjoint, not touching, exactly the dirty bytes), the
// memory it reports, and that scattered small writes cost memory in
// proportion to what they wrote.
func TestChunkBufModel(t *testing.T) {
	const size = 256 << 10
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 9))
		var b chunkBuf
		model := make([]byte, size)
		dirty := make([]bool, size)
		mem := 0
		for step := range 150 {
			switch k := r.IntN(10); {
			case k < 8:
				n := 1 + r.IntN(8192)
				if r.IntN(4) == 0 {
					n = 1 + r.IntN(50000)
				}
				off := r.IntN(size - n + 1)
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(r.Uint32())
				}
				mem += b.write(off, p, size, r.IntN(2) == 0)
				copy(model[off:], p)
				for i := off; i < off+n; i++ {
					dirty[i] = true
				}
			case k < 9:
				off, n := r.IntN(size/2), r.IntN(size/2)
				data := make([]byte, n)
				for i := range data {
					data[i] = byte(r.Uint32())
				}
				mem += b.fillUnder(off, data, size)
				for i := off; i < off+n; i++ {
					if !dirty[i] {
						model[i], dirty[i] = data[i-off], true
					}
				}
			default:
				n := r.IntN(size)
				mem += b.truncate(n)
				for i := n; i < size; i++ {
					dirty[i] = false
				}
			}
			if mem != b.mem() {
				t.Fatalf("seed %d step %d: deltas sum to %d, mem() %d", seed, step, mem, b.mem())
			}
			prev := -2
			got := make([]bool, size)
			for _, e := range b.ext {
				if e.off <= prev || e.off >= e.end || len(e.buf) != e.end-e.off {
					t.Fatalf("seed %d step %d: bad extent [%d, %d) after %d, %d bytes", seed, step, e.off, e.end, prev, len(e.buf))
				}
				if !bytes.Equal(e.buf, model[e.off:e.end]) {
					t.Fatalf("seed %d step %d: extent [%d, %d) holds other bytes", seed, step, e.off, e.end)
				}
				for i := e.off; i < e.end; i++ {
					got[i] = true
				}
				prev = e.end
			}
			for i := range got {
				if got[i] != dirty[i] {
					t.Fatalf("seed %d step %d: byte %d dirty %v, want %v", seed, step, i, got[i], dirty[i])
				}
			}
		}
	}

	// 64 scattered 4 KiB writes: memory follows the 256 KiB written, not
	// the 1 MiB they span.
	var b chunkBuf
	for i := range 64 {
		b.write(i*16384+4096, make([]byte, 4096), 1<<20, true)
	}
	if m := b.mem(); m > 64*4096 {
		t.Fatalf("64 scattered 4 KiB writes hold %d bytes, want %d", m, 64*4096)
	}
}
