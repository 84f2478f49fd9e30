package fuse

import (
	"context"
	"errors"
	"io"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/dfsproject/dfs/pkg/client"
)

// handle is an open regular file.
type handle struct {
	fsys *fsys
	f    *client.File
	of   *openFile // the mount's record of the open file (inval.go)
}

var (
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileFsyncer   = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileAllocater = (*handle)(nil)
)

// Read reads at off. It honours interrupts after interruptGrace (a read is
// safe to abandon).
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (gofuse.ReadResult, syscall.Errno) {
	rctx, done := h.fsys.interruptible(ctx)
	defer done()
	h.touch(rctx)
	data, release, err := h.f.ReadLent(rctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, toErrno(err)
	}
	return &lentResult{data: data, release: release}, 0
}

// lentResult answers a read with the client's data slices (its read-ahead
// chunk buffers, lent until go-fuse has written the reply: Done), written
// to the kernel with one writev and no copy. go-fuse does not call Done
// for some replies (one of size 0, one to a connection already gone); the
// lent buffers are then only collected rather than reused, which costs
// garbage, not correctness.
type lentResult struct {
	data    [][]byte
	release func()
}

// Slices makes go-fuse write the slices as they are (writev).
func (r *lentResult) Slices() ([][]byte, gofuse.Status) { return r.data, gofuse.OK }

func (r *lentResult) Bytes(buf []byte) ([]byte, gofuse.Status) {
	if len(r.data) == 1 {
		return r.data[0], gofuse.OK
	}
	buf = buf[:0]
	for _, d := range r.data {
		buf = append(buf, d...)
	}
	return buf, gofuse.OK
}

func (r *lentResult) Size() int {
	n := 0
	for _, d := range r.data {
		n += len(d)
	}
	return n
}

func (r *lentResult) Done() {
	if r.release != nil {
		r.release()
		r.release = nil
	}
}

// Write buffers data at off (copied; the kernel's buffer is reused).
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	mctx, cancel := h.fsys.mutation(ctx)
	defer cancel()
	h.touch(mctx)
	n, err := h.f.WriteAt(mctx, data, off)
	if err != nil {
		return 0, toErrno(err)
	}
	return uint32(n), 0
}

// Flush commits buffered writes (close(2)); its error is close's.
func (h *handle) Flush(ctx context.Context) syscall.Errno {
	mctx, cancel := h.fsys.mutation(ctx)
	defer cancel()
	err := h.f.Flush(mctx)
	h.releaseLocks(ctx, mctx)
	return toErrno(err)
}

// Fsync commits buffered writes.
func (h *handle) Fsync(ctx context.Context, _ uint32) syscall.Errno {
	mctx, cancel := h.fsys.mutation(ctx)
	defer cancel()
	return toErrno(h.f.Fsync(mctx))
}

// Release closes the file; the kernel ignores the result, so failures are
// logged (Flush has reported them to close(2) already).
func (h *handle) Release(ctx context.Context) syscall.Errno {
	mctx, cancel := h.fsys.mutation(ctx)
	defer cancel()
	if err := h.f.Release(mctx); err != nil {
		h.fsys.logger.Warn("release: buffered data lost", "id", h.f.Node().ID, "err", err)
	}
	h.fsys.open.remove(h.of)
	h.releaseLocks(ctx, mctx)
	return 0
}

// Allocate implements fallocate(2). Mode 0 extends the file: dfs files are
// sparse and space is not reserved, so a later write can still fail for
// lack of space. KEEP_SIZE alone does nothing (nothing is reserved).
// PUNCH_HOLE|KEEP_SIZE zeroes the range (client.File.PunchHole; the kernel
// drops the range from its page cache). Other modes are not supported.
func (h *handle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	switch mode {
	case 0:
	case unix.FALLOC_FL_KEEP_SIZE:
		return 0
	case unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE:
		mctx, cancel := h.fsys.mutation(ctx)
		defer cancel()
		return toErrno(h.f.PunchHole(mctx, off, size))
	default:
		return syscall.EOPNOTSUPP
	}
	if end := off + size; end > h.f.Size() {
		mctx, cancel := h.fsys.mutation(ctx)
		defer cancel()
		return toErrno(h.f.Truncate(mctx, end))
	}
	return 0
}
