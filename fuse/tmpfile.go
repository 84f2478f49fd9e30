package fuse

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

var _ fs.NodeTmpfiler = (*node)(nil)

// Tmpfile makes an unnamed file in n (open(2) with O_TMPFILE): it is
// created under a hidden name that cannot collide (a random id) and
// unlinked at once while open, so it lives as an orphan until its last
// close, like any file unlinked while open. The name exists for the time
// of one Raft round.
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *gofuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	uid, gid := caller(ctx)
	mctx, cancel := n.fsys.mutation(ctx)
	defer cancel()
	vol := n.fsys.vol
	name := ".dfs-tmpfile-" + layout.NewID().String()
	cn, attr, err := vol.Create(mctx, n.cn, name, mode&0o7777, uid, gid, true)
	if err != nil {
		return nil, nil, 0, nameErrno(ctx, err, n)
	}
	f, err := vol.OpenFresh(mctx, cn, attr, int(flags&^(syscall.O_TRUNC|syscall.O_EXCL)))
	if err != nil {
		_ = vol.Unlink(mctx, n.cn, name)
		return nil, nil, 0, toErrno(err)
	}
	if err := vol.Unlink(mctx, n.cn, name); err != nil {
		_ = f.Release(mctx)
		return nil, nil, 0, toErrno(err)
	}
	a := proto.Clone(attr).(*dfspb.Attr)
	a.Nlink = 0
	in := n.newChild(ctx, cn, a, out)
	return in, n.fsys.newHandle(in, f), openFlags(flags), 0
}
