package brick

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dfsproject/dfs/brick/store"
	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// TestSnapshotCarriesNoDataYetFollowerCatchesUp: a member that was down
// while the log was compacted gets a snapshot, which holds the metadata
// only; it keeps the chunks it had, fetches the others from the other
// members, and ends with every chunk whole and equal to the leader's.
func TestSnapshotCarriesNoDataYetFollowerCatchesUp(t *testing.T) {
	rs := newReplicaSet(t, 3)
	for i := range rs.bricks {
		rs.stop(i)
		rs.cfgs[i].TrailingLogs = 2
		rs.cfgs[i].SnapshotThreshold = 1 << 20 // only when asked
		rs.start(i)
	}
	ctx := t.Context()
	li, lc := rs.leader()
	file := layout.NewID()
	data := func(idx, gen int) []byte {
		return bytes.Repeat([]byte(fmt.Sprintf("chunk %d gen %d;", idx, gen)), 60000)[:700000+idx*1000]
	}
	write := func(c dfspb.BrickServiceClient, idx, gen int) {
		t.Helper()
		r, err := c.Mutate(ctx, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{
			File: file[:], Index: uint64(idx), Data: data(idx, gen)}}})
		if err != nil || r.Code != 0 {
			t.Fatalf("write chunk %d: %v %v", idx, r, err)
		}
	}
	for idx := range 4 {
		write(lc, idx, 0)
	}
	// A follower goes down, once it holds chunks 0-3; chunks change and
	// appear meanwhile.
	f := (li + 1) % 3
	for rs.bricks[f].AppliedIndex() < rs.bricks[li].AppliedIndex() {
		time.Sleep(10 * time.Millisecond)
	}
	inoBefore := chunkInode(t, rs.cfgs[f].Path, file, 0)
	rs.stop(f)
	li, lc = rs.leader()
	write(lc, 1, 1)
	for idx := 4; idx < 8; idx++ {
		write(lc, idx, 1)
	}
	for i, b := range rs.bricks {
		if b != nil {
			if err := b.group.Snapshot(); err != nil {
				t.Fatalf("snapshot on brick %d: %v", i, err)
			}
		}
	}
	rs.start(f)
	want := map[int][]byte{0: data(0, 0), 1: data(1, 1), 2: data(2, 0), 3: data(3, 0)}
	for idx := 4; idx < 8; idx++ {
		want[idx] = data(idx, 1)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		bad := ""
		for idx, w := range want {
			got, err := rs.bricks[f].store.ReadChunk(ctx, file, uint64(idx), 0, len(w))
			if err != nil || !bytes.Equal(got, w) {
				bad = fmt.Sprintf("chunk %d: %d bytes, %v", idx, len(got), err)
				break
			}
		}
		if bad == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("follower not whole 30 s after its restart: %s (applied %d, leader %d)", bad, rs.bricks[f].AppliedIndex(), rs.bricks[li].AppliedIndex())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// It did catch up through a snapshot (it never took one itself).
	if si := rs.bricks[f].RaftStats()["last_snapshot_index"]; si == "0" || si == "" {
		t.Fatalf("follower's last snapshot index %q: it caught up from the log, not a snapshot", si)
	}
	// The chunk it held and that did not change is the same file (a hard
	// link into the restored generation), not a copy fetched again.
	if ino := chunkInode(t, rs.cfgs[f].Path, file, 0); ino != inoBefore {
		t.Fatalf("chunk 0 has inode %d after the snapshot, %d before: fetched again instead of kept", ino, inoBefore)
	}
	// Nothing is left marked bad.
	var reports []store.ScrubReport
	if _, err := rs.bricks[f].store.Scrub(ctx, func(r store.ScrubReport) { reports = append(reports, r) }); err != nil || len(reports) > 0 {
		t.Fatalf("scrub of the caught-up follower: %v, %d bad chunks", err, len(reports))
	}
}

// chunkInode returns the inode number of the chunk file of (file, idx) in
// the brick at path (whatever its store generation).
func chunkInode(t *testing.T, path string, file layout.ID, idx int) uint64 {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(path, MetaDir, "store", "gen-*", "chunks", "*", fmt.Sprintf("%s.%d", file, idx)))
	if err != nil || len(m) != 1 {
		t.Fatalf("chunk file of %s.%d: %v %v", file, idx, m, err)
	}
	fi, err := os.Stat(m[0])
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
