package client_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

// cp -a writes a file, then sets its times, owner and mode before close:
// the changes show at once and reach the volume with the close commit, so
// create-write-utimens-chown-chmod-close costs two commands.
func TestAttrChangesRideOnTheCloseCommit(t *testing.T) {
	for _, size := range []int{100, 3 << 20} {
		e := newEnv(t, clienttest.Options{})
		root := e.v.Root()
		n, _, err := e.v.Create(e.ctx, root, "f", 0o644, 0, 0, true)
		mustOK(t, "create", err)
		before := e.applied()
		f, err := e.v.Open(e.ctx, n, syscall.O_WRONLY)
		mustOK(t, "open", err)
		_, err = f.WriteAt(e.ctx, make([]byte, size), 0)
		mustOK(t, "write", err)
		mtime := time.Unix(1_000_000_000, 7)
		a, err := e.v.SetAttr(e.ctx, n, client.SetAttrIn{Mask: client.SetMtime | client.SetAtime, Mtime: mtime, Atime: mtime})
		mustOK(t, "utimens", err)
		if a.MtimeNs != mtime.UnixNano() {
			t.Fatalf("utimens on an open file shows mtime %d, want %d", a.MtimeNs, mtime.UnixNano())
		}
		_, err = e.v.SetAttr(e.ctx, n, client.SetAttrIn{Mask: client.SetUID | client.SetGID, UID: 1000, GID: 100})
		mustOK(t, "chown", err)
		a, err = e.v.SetAttr(e.ctx, n, client.SetAttrIn{Mask: client.SetMode, Mode: 0o600})
		mustOK(t, "chmod", err)
		if a.Mode != 0o600 || a.Uid != 1000 || a.Gid != 100 || a.MtimeNs != mtime.UnixNano() || a.Size != uint64(size) {
			t.Fatalf("attrs while open: %v", a)
		}
		mustOK(t, "close", f.Release(e.ctx))
		// Inline: one WriteInline carries all; chunked: the chunk writes
		// and one CommitSize.
		chunks := uint64((size + client.ChunkSize - 1) / client.ChunkSize)
		if size <= client.InlineMax {
			chunks = 0
		}
		if got := e.applied() - before; got != chunks+1 {
			t.Errorf("size %d: %d commands for write+utimens+chown+chmod+close, want %d", size, got, chunks+1)
		}
		other := e.open()
		got, err := other.GetAttr(e.ctx, n)
		mustOK(t, "getattr from another client", err)
		if got.Mode != 0o600 || got.Uid != 1000 || got.Gid != 100 || got.MtimeNs != mtime.UnixNano() || got.Size != uint64(size) {
			t.Errorf("size %d: another client sees %v", size, got)
		}
	}
}

// A write after utimens sets mtime again, as on a local file system.
func TestWriteAfterUtimensMovesMtime(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	n, _, err := e.v.Create(e.ctx, e.v.Root(), "f", 0o644, 0, 0, true)
	mustOK(t, "create", err)
	f, err := e.v.Open(e.ctx, n, syscall.O_WRONLY)
	mustOK(t, "open", err)
	_, err = f.WriteAt(e.ctx, []byte("a"), 0)
	mustOK(t, "write", err)
	old := time.Unix(1_000_000_000, 0)
	_, err = e.v.SetAttr(e.ctx, n, client.SetAttrIn{Mask: client.SetMtime, Mtime: old})
	mustOK(t, "utimens", err)
	_, err = f.WriteAt(e.ctx, []byte("b"), 1)
	mustOK(t, "write", err)
	mustOK(t, "close", f.Release(e.ctx))
	a, err := e.open().GetAttr(e.ctx, n)
	mustOK(t, "getattr", err)
	if a.MtimeNs <= old.UnixNano() {
		t.Errorf("mtime %d after a write that followed utimens(%d)", a.MtimeNs, old.UnixNano())
	}
}
