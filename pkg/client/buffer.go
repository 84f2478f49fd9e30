package client

// extent is a dirty byte range [off, end) within one chunk; buf holds its
// bytes (len(buf) == end-off; spare capacity lets it grow in place).
type extent struct {
	off, end int
	buf      []byte
}

// chunkBuf holds the written but unflushed data of one chunk as its dirty
// extents: sorted, disjoint and with no touching neighbours, each with its
// own buffer. Memory follows the bytes written, not the span they cover,
// so random writes over many chunks fill the write buffer only with what
// they wrote. A chunkBuf is guarded by its openInode's mutex while dirty
// and is read-only once it is being flushed.
type chunkBuf struct {
	ext []extent
}

// write copies p to chunk offset off. limit is the largest chunk offset
// the buffer may need to cover (the chunk size for a chunked file,
// InlineMax for an inline one). With eager set (a chunked file, written in
// large pieces), an extent that starts at the chunk's beginning or grows
// at its end takes all the room up to limit at once, so that a sequential
// stream is copied exactly once; otherwise an extent growing at its end
// doubles. It returns the change in the buffer's memory (capacity).
func (b *chunkBuf) write(off int, p []byte, limit int, eager bool) int {
	end := off + len(p)
	if len(p) == 0 {
		return 0
	}
	// The extents [i, j) overlap or touch [off, end).
	i := 0
	for i < len(b.ext) && b.ext[i].end < off {
		i++
	}
	j := i
	for j < len(b.ext) && b.ext[j].off <= end {
		j++
	}
	if i == j {
		c := len(p)
		if eager && (off == 0 || limit-off <= 2*len(p)) {
			c = max(c, limit-off)
		}
		e := extent{off: off, end: end, buf: make([]byte, len(p), c)}
		copy(e.buf, p)
		b.ext = append(b.ext, extent{})
		copy(b.ext[i+1:], b.ext[i:])
		b.ext[i] = e
		return c
	}
	first, last := b.ext[i], b.ext[j-1]
	lo, hi := min(off, first.off), max(end, last.end)
	if j == i+1 && lo == first.off && hi-lo <= cap(first.buf) {
		// Within the extent's room: in place.
		e := &b.ext[i]
		e.buf = e.buf[:hi-lo]
		e.end = hi
		copy(e.buf[off-lo:], p)
		return 0
	}
	c := hi - lo
	switch {
	case eager && off <= last.end && end >= last.end:
		c = max(c, limit-lo)
	case lo == first.off:
		c = max(c, min(2*cap(first.buf), limit-lo))
	}
	nb := make([]byte, hi-lo, c)
	delta := c
	for _, e := range b.ext[i:j] {
		copy(nb[e.off-lo:], e.buf)
		delta -= cap(e.buf)
	}
	copy(nb[off-lo:], p)
	b.ext[i] = extent{off: lo, end: hi, buf: nb}
	b.ext = append(b.ext[:i+1], b.ext[j:]...)
	return delta
}

// mem is the buffer's memory (the capacity of its extents).
func (b *chunkBuf) mem() int {
	n := 0
	for _, e := range b.ext {
		n += cap(e.buf)
	}
	return n
}

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
	old := b.ext
	before := b.mem()
	b.ext = nil
	delta := b.write(off, data, limit, false) - before
	for _, e := range old {
		delta += b.write(e.off, e.buf, limit, false)
	}
	return delta
}

// truncate drops the dirty bytes at and past chunk offset n. It returns
// the change in memory (negative for the extents dropped).
func (b *chunkBuf) truncate(n int) int {
	delta := 0
	out := b.ext[:0]
	for _, e := range b.ext {
		if e.off >= n {
			delta -= cap(e.buf)
			continue
		}
		if e.end > n {
			e.end = n
			e.buf = e.buf[:n-e.off]
		}
		out = append(out, e)
	}
	clear(b.ext[len(out):])
	b.ext = out
	return delta
}

// end is the end of the last dirty extent.
func (b *chunkBuf) end() int {
	if len(b.ext) == 0 {
		return 0
	}
	return b.ext[len(b.ext)-1].end
}
