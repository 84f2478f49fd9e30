package store

import (
	"errors"
	"math/bits"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Buffers of chunk reads. A read verifies whole blocks (64 KiB by
// default), so a small read (a random reader's 4 KiB) reads a block into
// a buffer, verifies it, and keeps only its part: that buffer comes from
// readPool and goes back to it at once, and the part is copied out. Before,
// every such read allocated and zeroed a fresh block-sized buffer, and the
// garbage collection of those cost as much CPU as the read itself.
// Buffers a read returns whole (the client's 1 MiB read-ahead of a chunk)
// leave the store with the answer: readBuffer below, recycled by the
// garbage collector once the answer is written out.

// readPool holds read buffers in power-of-two sizes from 2^minReadShift to
// 2^maxReadShift bytes; their contents are arbitrary.
var readPool [maxReadShift - minReadShift + 1]sync.Pool

const (
	minReadShift = 9  // 512 B, the smallest block size
	maxReadShift = 22 // 4 MiB, the largest chunk
)

// readTier is the index in readPool of the smallest size holding n
// bytes, or -1 if n is past the largest.
func readTier(n int) int {
	s := max(bits.Len(uint(n-1)), minReadShift)
	if n <= 0 {
		s = minReadShift
	}
	if s > maxReadShift {
		return -1
	}
	return s - minReadShift
}

// getReadBuf returns a buffer of n bytes with arbitrary contents; give it
// back with putReadBuf once nothing refers to it.
func getReadBuf(n int) []byte {
	t := readTier(n)
	if t < 0 {
		return make([]byte, n)
	}
	if b, ok := readPool[t].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<(t+minReadShift))
}

// putReadBuf gives back a buffer of getReadBuf.
func putReadBuf(b []byte) {
	c := cap(b)
	if c&(c-1) != 0 || c < 1<<minReadShift || c > 1<<maxReadShift {
		return // not one of ours
	}
	b = b[:0]
	readPool[bits.Len(uint(c))-1-minReadShift].Put(&b)
}

// preadFile reads the file at path from off into buf, as much as it holds
// (short at its end), with plain system calls: os.Open would also try to
// register the file with the network poller and set a finalizer, which
// cost a small read as much as the read itself.
func preadFile(path string, buf []byte, off int64) (int, error) {
	return preadOpen(path, 0, buf, off)
}

// preadOpen opens path with the extra open flags and reads from off into
// buf until it is full or the file ends. With O_DIRECT a read short of
// directAlign is the end of the file.
func preadOpen(path string, flags int, buf []byte, off int64) (int, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|flags, 0)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		k, err := unix.Pread(fd, buf[n:], off+int64(n))
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return n, err
		case k == 0:
			return n, nil
		}
		n += k
		if flags&unix.O_DIRECT != 0 && k%directAlign != 0 {
			return n, nil // the end of the file
		}
	}
	return n, nil
}

// Large reads (a client's read-ahead of a whole chunk) bypass the page
// cache: the chunk file is opened with O_DIRECT and the device writes
// straight into the answer's buffer. A buffered read of a cold chunk
// first fills fresh page-cache pages (allocating them, adding them to the
// LRU, faulting them in on these VMs) and then copies them out: that was
// about a fifth of the serving brick's CPU in a cold sequential read.
// The pages would not be read again from this cache anyway: the reader's
// kernel caches what it read, and staged chunk writes bypass the page
// cache too (stagewrite.go), so what a sequential reader reads was not in
// it. Small reads (a random reader's 4 KiB) still go through the page
// cache, which serves their repeats. The kernel keeps direct reads
// coherent with buffered writes (it writes back dirty pages of the range
// first), so a direct read sees every byte written before it.

// minDirectRead is the smallest read done with O_DIRECT.
const minDirectRead = 128 << 10

// readBuffer returns a buffer of n bytes for a read returned whole: at
// least minDirectRead bytes, its address is aligned and its capacity
// rounded up to directAlign, as a direct read needs. Its contents are
// arbitrary (a recycled chunk buffer) for n above half a default chunk.
func readBuffer(n int) []byte {
	if n < minDirectRead {
		return make([]byte, n)
	}
	if n > recycleSize/2 && n <= recycleSize {
		if b := recycledBuffer(); b != nil {
			return b[:n]
		}
	}
	rounded := (n + directAlign - 1) &^ (directAlign - 1)
	b := make([]byte, rounded)
	if directOK(b) {
		return b[:n]
	}
	b = make([]byte, rounded+directAlign)
	o := int(directAlign-uintptr(unsafe.Pointer(unsafe.SliceData(b)))%directAlign) % directAlign
	return b[o : o+n : o+rounded]
}

// Whole-chunk read buffers are recycled. The answer of a read leaves the
// store and is written out by gRPC after the handler returns, so the store
// never learns when its buffer is free; the garbage collector does: a
// recycled buffer carries a finalizer, which puts it back in a free list
// once nothing refers to it any more, instead of letting it be collected.
// A sequential reader so reuses a few buffers instead of allocating (and
// zeroing, and faulting in) a fresh chunk-sized buffer per read, which
// cost the serving brick a quarter of its CPU in garbage collection and
// page faults. At most recycleMax buffers ever carry a finalizer; reads
// beyond them, while all of them are in use, allocate as before.
const (
	recycleSize = DefaultChunkSize
	recycleMax  = 16
)

var recycled struct {
	mu   sync.Mutex
	free [][]byte // buffers of recycleSize bytes nothing refers to
	made int      // buffers made to be recycled
}

// recycledBuffer returns a buffer of recycleSize bytes with arbitrary
// contents that goes back to the free list once unreachable, or nil if
// recycleMax of them are in use.
func recycledBuffer() []byte {
	recycled.mu.Lock()
	var b []byte
	switch {
	case len(recycled.free) > 0:
		b = recycled.free[len(recycled.free)-1]
		recycled.free[len(recycled.free)-1] = nil
		recycled.free = recycled.free[:len(recycled.free)-1]
	case recycled.made < recycleMax:
		b = make([]byte, recycleSize)
		if !directOK(b) {
			recycled.mu.Unlock()
			return nil // not on a page boundary: not worth recycling
		}
		recycled.made++
	}
	recycled.mu.Unlock()
	if b != nil {
		// The finalizer ran (or the buffer is new): set it again. It
		// must not refer to b, or b would never be unreachable.
		runtime.SetFinalizer(unsafe.SliceData(b), recycleBuffer)
	}
	return b
}

// recycleBuffer is the finalizer of a recycled buffer, which starts at p:
// nothing refers to it any more; it goes back to the free list.
func recycleBuffer(p *byte) {
	recycled.mu.Lock()
	recycled.free = append(recycled.free, unsafe.Slice(p, recycleSize))
	recycled.mu.Unlock()
}

// preadChunk reads the chunk file at path from off into buf as preadFile
// does, with O_DIRECT when the read is large, aligned (off, buf's address,
// and buf's capacity covering its length rounded up to directAlign: a
// readBuffer) and the file system takes it; through the page cache
// otherwise.
func (s *Store) preadChunk(path string, buf []byte, off int64) (int, error) {
	rounded := (len(buf) + directAlign - 1) &^ (directAlign - 1)
	if len(buf) < minDirectRead || off%directAlign != 0 || cap(buf) < rounded ||
		!directOK(buf) || s.stage.noDirect.Load() {
		return preadFile(path, buf, off)
	}
	n, err := preadDirect(path, buf[:rounded], off)
	if errors.Is(err, unix.EINVAL) {
		// No O_DIRECT on this file system (tmpfs), or not at this
		// alignment: through the page cache, now and from now on.
		s.stage.noDirect.Store(true)
		return preadFile(path, buf, off)
	}
	return min(n, len(buf)), err
}

// preadDirect reads the file at path from off into buf with O_DIRECT, as
// much as it holds (short at its end); off, len(buf) and buf's address
// are multiples of directAlign.
func preadDirect(path string, buf []byte, off int64) (int, error) {
	return preadOpen(path, unix.O_DIRECT, buf, off)
}
