package store

import (
	"errors"
	"math/bits"
	"sync"

	"golang.org/x/sys/unix"
)

// Buffers of chunk reads. A read verifies whole blocks (64 KiB by
// default), so a small read (a random reader's 4 KiB) reads a block into
// a buffer, verifies it, and keeps only its part: that buffer comes from
// readPool and goes back to it at once, and the part is copied out. Before,
// every such read allocated and zeroed a fresh block-sized buffer, and the
// garbage collection of those cost as much CPU as the read itself.
// Buffers a read returns whole (the client's 1 MiB read-ahead of a chunk)
// are allocated as before: they leave the store with the answer.

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
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
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
	}
	return n, nil
}
