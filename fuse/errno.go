package fuse

import (
	"context"
	"encoding/binary"
	"errors"
	"syscall"

	gofuse "github.com/hanwen/go-fuse/v2/fuse"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// errnoTable maps client sentinels to errno values, in order.
var errnoTable = []struct {
	err   error
	errno syscall.Errno
}{
	{client.ErrNotFound, syscall.ENOENT},
	{client.ErrExists, syscall.EEXIST},
	{client.ErrNotEmpty, syscall.ENOTEMPTY},
	{client.ErrNotDir, syscall.ENOTDIR},
	{client.ErrIsDir, syscall.EISDIR},
	{client.ErrNameTooLong, syscall.ENAMETOOLONG},
	{client.ErrInvalid, syscall.EINVAL},
	// A directory being removed (sealed) refuses new entries: to the
	// caller it is already gone.
	{client.ErrStale, syscall.ENOENT},
	{client.ErrTooBig, syscall.EFBIG},
	{client.ErrNoSpace, syscall.ENOSPC},
	{client.ErrNoAttr, syscall.ENODATA},
	{client.ErrReadOnly, syscall.EROFS},
	{client.ErrNotSupported, syscall.EOPNOTSUPP},
	{client.ErrNotPermitted, syscall.EPERM},
	{context.Canceled, syscall.EINTR},
}

// toErrno translates a client error into the errno the kernel returns to
// the application: the one place where that happens. Failures of the
// cluster (ErrUnavailable after the failover timeout, ErrIO, ErrCorrupt)
// and anything unknown are EIO.
func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	for _, e := range errnoTable {
		if errors.Is(err, e.err) {
			return e.errno
		}
	}
	return syscall.EIO
}

// inodeErrno is toErrno for an operation on the inode a node names:
// there ErrNotFound means the inode itself is gone (another client removed
// or replaced it while this kernel still held a name for it, within the
// entry timeout). That is ESTALE, as on NFS: a system call that walked a
// path to the inode then walks it again with a fresh lookup
// (LOOKUP_REVAL) and finds what the name means now.
func inodeErrno(err error) syscall.Errno {
	if errors.Is(err, client.ErrNotFound) {
		return syscall.ESTALE
	}
	return toErrno(err)
}

// inoOf folds a 128-bit inode id into the 64-bit inode number the kernel
// sees. The root is 1; no other inode gets 0 or 1.
func inoOf(id layout.ID) uint64 {
	if id == layout.RootID {
		return 1
	}
	ino := binary.LittleEndian.Uint64(id[:8]) ^ binary.LittleEndian.Uint64(id[8:])
	if ino <= 1 {
		ino += 2
	}
	return ino
}

// typeBits returns the S_IFMT bits of a file type.
func typeBits(t dfspb.FileType) uint32 {
	switch t {
	case dfspb.FileType_FILE_TYPE_DIR:
		return syscall.S_IFDIR
	case dfspb.FileType_FILE_TYPE_SYMLINK:
		return syscall.S_IFLNK
	case dfspb.FileType_FILE_TYPE_FIFO:
		return syscall.S_IFIFO
	case dfspb.FileType_FILE_TYPE_SOCKET:
		return syscall.S_IFSOCK
	case dfspb.FileType_FILE_TYPE_CHAR:
		return syscall.S_IFCHR
	case dfspb.FileType_FILE_TYPE_BLOCK:
		return syscall.S_IFBLK
	}
	return syscall.S_IFREG
}

// fileType returns the file type of S_IFMT bits.
func fileType(mode uint32) (dfspb.FileType, bool) {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG, 0:
		return dfspb.FileType_FILE_TYPE_FILE, true
	case syscall.S_IFIFO:
		return dfspb.FileType_FILE_TYPE_FIFO, true
	case syscall.S_IFSOCK:
		return dfspb.FileType_FILE_TYPE_SOCKET, true
	case syscall.S_IFCHR:
		return dfspb.FileType_FILE_TYPE_CHAR, true
	case syscall.S_IFBLK:
		return dfspb.FileType_FILE_TYPE_BLOCK, true
	}
	return 0, false
}

// blockSize is st_blksize: the I/O size applications should use.
const blockSize = 128 << 10

// fillAttr converts dfs attributes for the kernel.
func fillAttr(a *dfspb.Attr, out *gofuse.Attr) {
	var id layout.ID
	copy(id[:], a.Id)
	out.Ino = inoOf(id)
	out.Size = a.Size
	out.Blocks = (a.Size + 511) / 512
	out.Mode = typeBits(a.Type) | a.Mode&0o7777
	out.Nlink = a.Nlink
	out.Uid, out.Gid = a.Uid, a.Gid
	out.Rdev = uint32(a.Rdev)
	out.Blksize = blockSize
	out.Atime, out.Atimensec = splitNs(a.AtimeNs)
	out.Mtime, out.Mtimensec = splitNs(a.MtimeNs)
	out.Ctime, out.Ctimensec = splitNs(a.CtimeNs)
}

// splitNs splits nanoseconds since the epoch into seconds and
// nanoseconds (0 to 999999999). Times before 1970 have negative seconds,
// which the kernel reads back from the protocol's unsigned field.
func splitNs(ns int64) (uint64, uint32) {
	sec, nsec := ns/1e9, ns%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	return uint64(sec), uint32(nsec)
}
