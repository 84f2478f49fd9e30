package brick

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/dfsproject/dfs/brick/store"
)

// writeSpace is checkSpace for the data path (Mutate, StageChunk): the
// same test against the same reserve, from one statfs(2). checkSpace goes
// through DiskUsage, which also reads /proc/self/mounts for the file
// system's type and device; once per chunk write on every member that was
// 3% of the servers' CPU in a sequential write.
func (b *Brick) writeSpace() error {
	var st unix.Statfs_t
	if err := unix.Statfs(b.cfg.Path, &st); err != nil {
		return nil // no figure: let the write try
	}
	total := st.Blocks * uint64(st.Bsize)
	avail := st.Bavail * uint64(st.Bsize)
	reserve := max(total*uint64(b.reservePct.Load())/100, MinReserve)
	if avail < reserve {
		return fmt.Errorf("%w: %s has %d MiB available, below its reserve of %d MiB (storage.reserve)", store.ErrNoSpace, b.cfg.Path, avail>>20, reserve>>20)
	}
	return nil
}
