package client

import (
	"context"
	"maps"
	"slices"
	"time"
)

// Page-cache coherence for a kernel that does not drop a file's cached
// pages by itself when its mtime changes (a FUSE mount with explicit data
// cache control; docs/decisions/0014-page-cache-and-own-writes.md). Such a
// kernel keeps the pages filled by this Volume's own reads and writes, so
// random reads after writes hit the page cache; the Volume reports which
// open files another client's commit may have made stale
// (TakeChangedOpen), and RefreshOpenFile makes sure such a commit is noticed
// even when no request about the file reaches the client, because every
// read is answered from the page cache.

// TakeChangedOpen returns the files open here whose committed version
// moved (a commit: another client's, or this Volume's own at close, fsync
// or truncate) since the attributes first seen at their opening or since
// the last call that returned them, and forgets the mark. It may be called
// concurrently with every other method.
func (v *Volume) TakeChangedOpen() []Node {
	var out []Node
	for _, st := range v.openStates() {
		st.mu.Lock()
		if st.changed {
			st.changed = false
			out = append(out, st.node)
		}
		st.mu.Unlock()
	}
	return out
}

// RefreshOpenFile fetches the attributes of n if a File of it is open here
// and its attributes came from the subvolume maxAge or longer ago (one
// GetAttr), so that TakeChangedOpen reports another client's commit
// within about maxAge of it plus the caller's period. A file that cannot
// be reached is left as it was. It may be called concurrently with every
// other method.
func (v *Volume) RefreshOpenFile(ctx context.Context, n Node, maxAge time.Duration) {
	st := v.lookupOpen(n.ID)
	if st == nil {
		return
	}
	st.mu.Lock()
	due := !st.removed && time.Since(st.attrAt) >= maxAge
	st.mu.Unlock()
	if !due {
		return
	}
	a, err := v.getAttr(ctx, st.node)
	if err != nil {
		return
	}
	st.mu.Lock()
	st.adopt(a)
	st.mu.Unlock()
}

// Background is the Volume's background context: it ends when the Volume
// is closed.
func (v *Volume) Background() context.Context { return v.bg }

// openStates returns the shared state of every file open here.
func (v *Volume) openStates() []*openInode {
	v.openMu.Lock()
	defer v.openMu.Unlock()
	return slices.Collect(maps.Values(v.open))
}
