package brick

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// StoreVersion is the newest set of store commands this binary applies.
// A leader proposes a command of a newer set only once every member of
// its replica set has said it applies it (membersAt): during a rolling
// upgrade a follower still running an older binary would apply an unknown
// command differently, or not at all, and its copy would silently
// diverge. Older commands stay valid forever.
//
//	1: the commands of the first releases
//	2: staged chunk writes (WriteChunkCmd.stage_id), WriteExtentsCmd
//	3: RenameCmd.sealed_target
const StoreVersion = 3

// versionChunkWrites is the store version of staged chunk writes and
// WriteExtentsCmd.
const versionChunkWrites = 2

// versionSealedTarget is the store version that checks
// RenameCmd.sealed_target.
const versionSealedTarget = 3

// versionCheck remembers what membersAt learned of one member set.
type versionCheck struct {
	mu      sync.Mutex
	members []string  // sorted member addresses the answer is for
	version uint32    // the lowest version they reported
	at      time.Time // when they were asked
	asking  bool
}

// versionRecheck is how long a member set that was not all at the wanted
// version is left before it is asked again.
const versionRecheck = 10 * time.Second

// membersAt reports whether every member of the replica set applies store
// commands of version v. A member set found at v is never asked again
// (binaries are not downgraded under a running volume); one that was not
// is asked again after versionRecheck, or when the set changes. Only one
// caller asks at a time, and while it does the others get false (they
// use the older commands), so a hung member never stalls writes.
func (b *Brick) membersAt(ctx context.Context, v uint32) bool {
	if v <= 1 {
		return true
	}
	ms, err := b.group.Members()
	if err != nil {
		return false
	}
	addrs := make([]string, 0, len(ms))
	for _, m := range ms {
		addrs = append(addrs, m.Address)
	}
	slices.Sort(addrs)
	c := &b.versions
	c.mu.Lock()
	same := slices.Equal(c.members, addrs)
	if same && c.version >= v {
		c.mu.Unlock()
		return true
	}
	if c.asking || (same && time.Since(c.at) < versionRecheck) {
		c.mu.Unlock()
		return false
	}
	c.asking = true
	c.mu.Unlock()

	low := uint32(StoreVersion)
	for _, a := range addrs {
		if a != b.cfg.Address {
			low = min(low, b.memberVersion(ctx, a))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members, c.version, c.at, c.asking = addrs, low, time.Now(), false
	return low >= v
}

// memberVersion asks the brick at addr which store commands it applies:
// 1 for a binary older than the question, 0 when it does not answer.
func (b *Brick) memberVersion(ctx context.Context, addr string) uint32 {
	c, err := b.peer(addr)
	if err != nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := c.Status(ctx, &dfspb.BrickStatusRequest{})
	if err != nil {
		return 0
	}
	return max(st.GetStoreVersion(), 1)
}

// splitExtents turns a WriteExtentsCmd into one WriteChunkCmd per extent,
// for a replica set with a member that does not apply WriteExtentsCmd.
func splitExtents(w *dfspb.WriteExtentsCmd, nowNs int64) []*dfspb.StoreCommand {
	out := make([]*dfspb.StoreCommand, 0, len(w.Extents))
	for _, e := range w.Extents {
		out = append(out, &dfspb.StoreCommand{NowNs: nowNs, Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{
			File: w.File, Index: w.Index, Offset: e.Offset, Data: e.Data,
		}}})
	}
	return out
}
