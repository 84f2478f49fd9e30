package fuse

import (
	"context"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"

	"github.com/dfsproject/dfs/pkg/client"
)

// dirPage is how many entries a directory handle asks for at a time.
const dirPage = 1024

// dirHandle is an open directory. It pages through the listing with the
// client (one RPC per page, the last name read as cursor) and keeps only
// the current page. Offsets are positions in the listing: 1 for ".", 2 for
// "..", 3 for the first entry, and so on; the kernel passes the offset of
// the last entry it consumed to continue, or 0 to rewind.
type dirHandle struct {
	dir *node

	mu    sync.Mutex
	pos   int               // index of the next entry to produce (0 = ".")
	base  int               // index of ents[0]
	ents  []client.DirEntry // the current page
	after string            // name of the last entry loaded
	eof   bool              // no page follows ents
	last  client.DirEntry   // the entry produced last, for Lookup
}

var (
	_ fs.FileReaddirenter = (*dirHandle)(nil)
	_ fs.FileSeekdirer    = (*dirHandle)(nil)
	_ fs.FileLookuper     = (*dirHandle)(nil)
	_ fs.FileReleasedirer = (*dirHandle)(nil)
)

// firstEntry is the index of the first real entry, after "." and "..".
const firstEntry = 2

// Readdirent produces the next entry (nil at the end).
func (d *dirHandle) Readdirent(ctx context.Context) (*gofuse.DirEntry, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.last = client.DirEntry{}
	switch d.pos {
	case 0:
		d.pos++
		return &gofuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: inoOf(d.dir.cn.ID), Off: uint64(d.pos)}, 0
	case 1:
		d.pos++
		ino := uint64(1)
		if _, p := d.dir.Parent(); p != nil {
			ino = p.StableAttr().Ino
		}
		return &gofuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: ino, Off: uint64(d.pos)}, 0
	}
	for d.pos >= d.base+len(d.ents) {
		if d.eof {
			return nil, 0
		}
		rctx, done := d.dir.fsys.interruptible(ctx)
		err := d.load(rctx)
		done()
		if err != nil {
			return nil, toErrno(err)
		}
	}
	e := d.ents[d.pos-d.base]
	d.pos++
	d.last = e
	return &gofuse.DirEntry{Name: e.Name, Mode: typeBits(e.Type), Ino: inoOf(e.Node.ID), Off: uint64(d.pos)}, 0
}

// load replaces the current page by the next one. Callers hold mu.
func (d *dirHandle) load(ctx context.Context) error {
	page, eof, err := d.dir.fsys.vol.ReadDir(ctx, d.dir.cn, d.after, dirPage)
	if err != nil {
		return err
	}
	d.base += len(d.ents)
	d.ents = page
	d.eof = eof || len(page) == 0
	if len(page) > 0 {
		d.after = page[len(page)-1].Name
	}
	return nil
}

// rewind starts the listing over. Callers hold mu.
func (d *dirHandle) rewind() {
	d.base, d.ents, d.after, d.eof = firstEntry, nil, "", false
}

// Seekdir moves to offset off: 0 rewinds (and lists afresh, as
// rewinddir(3) must); an offset behind the current page re-reads from the
// start.
func (d *dirHandle) Seekdir(_ context.Context, off uint64) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off == 0 || int(off) < d.base {
		d.rewind()
	}
	d.pos = int(off)
	d.last = client.DirEntry{}
	return 0
}

// Lookup serves READDIRPLUS for the entry just produced, from the
// attributes its page carried. An entry whose inode lives on another
// subvolume (a subdirectory) has none: declining makes the bridge send it
// without attributes, and the kernel looks it up only if it needs to.
func (d *dirHandle) Lookup(ctx context.Context, name string, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	d.mu.Lock()
	e := d.last
	d.mu.Unlock()
	if e.Name != name || e.Attr == nil {
		return nil, syscall.ENOENT
	}
	return d.dir.newChild(ctx, e.Node, e.Attr, out), 0
}

// Releasedir closes the directory.
func (d *dirHandle) Releasedir(context.Context, uint32) {}
