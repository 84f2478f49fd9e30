package client

// extent is a dirty byte range [off, end) within one chunk.
type extent struct{ off, end int }

// chunkBuf holds the written but unflushed data of one chunk: data covers
// chunk offsets [base, base+len(data)); only the ranges in ext hold written
// bytes (the rest of data is filler and never sent). ext is sorted,
// disjoint and has no touching neighbours. A chunkBuf is guarded by its
// openInode's mutex while dirty and is read-only once it is being flushed.
type chunkBuf struct {
	base int
	data []byte
	ext  []extent
}

// write copies p to chunk offset off, growing data as needed. limit is the
// largest chunk offset the buffer may need to cover (the chunk size for a
// chunked file, InlineMax for an inline one). With eager set (a chunked
// file, written in large pieces), a buffer that starts at the chunk's
// beginning or grows at its end takes all the room up to limit at once, so
// that a sequential stream is copied exactly once; otherwise it grows by
// doubling. It returns the change in the buffer's memory (capacity).
func (b *chunkBuf) write(off int, p []byte, limit int, eager bool) int {
	end := off + len(p)
	before := cap(b.data)
	switch {
	case b.data == nil:
		c := len(p)
		if eager && (off == 0 || limit-off <= 2*len(p)) {
			c = max(c, limit-off)
		}
		b.base, b.data = off, make([]byte, len(p), c)
	case off >= b.base && end-b.base <= cap(b.data):
		if end-b.base > len(b.data) {
			b.data = b.data[:end-b.base]
		}
	default:
		lo, hi := min(off, b.base), max(end, b.base+len(b.data))
		c := hi - lo
		if eager && off == b.base+len(b.data) {
			c = max(c, limit-lo)
		} else {
			c = max(c, min(2*cap(b.data), limit-lo))
		}
		nd := make([]byte, hi-lo, c)
		copy(nd[b.base-lo:], b.data)
		b.base, b.data = lo, nd
	}
	copy(b.data[off-b.base:], p)
	b.addExtent(off, end)
	return cap(b.data) - before
}

// addExtent marks [off, end) dirty, merging with overlapping and touching
// extents.
func (b *chunkBuf) addExtent(off, end int) {
	if off >= end {
		return
	}
	out := b.ext[:0:0]
	placed := false
	for _, e := range b.ext {
		switch {
		case e.end < off:
			out = append(out, e)
		case e.off > end:
			if !placed {
				out = append(out, extent{off, end})
				placed = true
			}
			out = append(out, e)
		default: // overlapping or touching: absorb
			off, end = min(off, e.off), max(end, e.end)
		}
	}
	if !placed {
		out = append(out, extent{off, end})
	}
	b.ext = out
}

// bytes returns the dirty bytes of extent e (aliasing the buffer).
func (b *chunkBuf) bytes(e extent) []byte { return b.data[e.off-b.base : e.end-b.base] }

// full reports whether the whole of [0, size) is dirty.
func (b *chunkBuf) full(size int) bool {
	return len(b.ext) == 1 && b.ext[0].off == 0 && b.ext[0].end >= size
}

// covers reports whether [off, end) is entirely dirty.
func (b *chunkBuf) covers(off, end int) bool {
	for _, e := range b.ext {
		if e.off <= off && e.end >= end {
			return true
		}
	}
	return off >= end
}

// fillUnder puts data (chunk offsets [off, off+len(data))) under the dirty
// bytes: the result holds data where nothing was written and the written
// bytes elsewhere, all of it dirty. It returns the change in memory.
func (b *chunkBuf) fillUnder(off int, data []byte, limit int) int {
	old := *b
	*b = chunkBuf{}
	delta := b.write(off, data, limit, false) - cap(old.data)
	for _, e := range old.ext {
		delta += b.write(e.off, old.bytes(e), limit, false)
	}
	return delta
}

// truncate drops the dirty bytes at and past chunk offset n. It returns
// the change in memory (negative when the buffer empties).
func (b *chunkBuf) truncate(n int) int {
	out := b.ext[:0]
	for _, e := range b.ext {
		if e.off >= n {
			continue
		}
		e.end = min(e.end, n)
		out = append(out, e)
	}
	b.ext = out
	if len(b.ext) == 0 {
		c := cap(b.data)
		b.data = nil
		return -c
	}
	return 0
}

// end is the end of the last dirty extent.
func (b *chunkBuf) end() int {
	if len(b.ext) == 0 {
		return 0
	}
	return b.ext[len(b.ext)-1].end
}
