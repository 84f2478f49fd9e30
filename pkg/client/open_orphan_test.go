package client_test

import (
	"errors"
	"os"
	"testing"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

// TestOpenOfOrphanIsStale: a file removed while one client has it open
// stays (nlink 0) for that client until its last close; another client
// that still holds the inode from an earlier lookup (a kernel's cached
// name) must not open it, or its writes would go where no name leads
// (fsx found this: a write through a second mount lost). It gets
// ErrNotFound (ESTALE at the mount: the kernel walks the path again).
// The client that has it open can still open it again (/proc/PID/fd).
func TestOpenOfOrphanIsStale(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	a, b := e.open(), e.open()
	n := e.writeFile(a, a.Root(), "f", []byte("old"))
	f, err := a.Open(e.ctx, n, os.O_RDWR)
	mustOK(t, "open", err)
	defer f.Release(e.ctx)
	mustOK(t, "unlink", a.Unlink(e.ctx, a.Root(), "f"))

	if g, err := b.Open(e.ctx, n, os.O_WRONLY); !errors.Is(err, client.ErrNotFound) {
		if err == nil {
			g.Release(e.ctx)
		}
		t.Fatalf("another client opened the orphan: %v; want ErrNotFound", err)
	}
	g, err := a.Open(e.ctx, n, os.O_RDONLY)
	mustOK(t, "reopen by the client that has it open", err)
	mustOK(t, "release", g.Release(e.ctx))
}
