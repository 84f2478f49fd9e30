package wire

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// pool is a mem.BufferPool that does not zero the buffers it hands out:
// gRPC's transport overwrites every byte it asks for (it reads frames
// into them), and zeroing a 16 KiB buffer per HTTP/2 frame cost the
// client as much as a copy of the data. Buffers come in power-of-two
// sizes from 2^minShift to 2^maxShift; larger ones are not pooled. Safe
// for concurrent use.
type pool struct {
	tiers [maxShift - minShift + 1]sync.Pool
}

const (
	minShift = 8  // 256 B
	maxShift = 21 // 2 MiB: a chunk with its message header
)

var _ mem.BufferPool = (*pool)(nil)

func newPool() *pool { return &pool{} }

// tier is the index of the smallest tier holding size bytes, or -1.
func tier(size int) int {
	s := max(bits.Len(uint(size-1)), minShift)
	if size <= 0 {
		s = minShift
	}
	if s > maxShift {
		return -1
	}
	return s - minShift
}

// Get returns a buffer of length size with arbitrary contents.
func (p *pool) Get(size int) *[]byte {
	t := tier(size)
	if t < 0 {
		b := make([]byte, size)
		return &b
	}
	if b, ok := p.tiers[t].Get().(*[]byte); ok {
		*b = (*b)[:size]
		return b
	}
	b := make([]byte, size, 1<<(t+minShift))
	return &b
}

// Put takes back a buffer that Get returned.
func (p *pool) Put(b *[]byte) {
	c := cap(*b)
	if c&(c-1) != 0 || c < 1<<minShift || c > 1<<maxShift {
		return // not one of ours
	}
	p.tiers[bits.Len(uint(c))-1-minShift].Put(b)
}
