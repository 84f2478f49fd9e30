package brick

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// logBytes is the size of the blob segments of brick i's Raft log.
func (rs *replicaSet) logBytes(i int) int64 {
	dir := filepath.Join(rs.cfgs[i].Path, MetaDir, "raft", "log", "blobs")
	ents, err := os.ReadDir(dir)
	if err != nil {
		rs.t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// TestLogWithinBudget: the chunk data the Raft log keeps stays within the
// brick's budget: the group snapshots and compacts its log when it is
// exceeded, and every member can still read every chunk.
func TestLogWithinBudget(t *testing.T) {
	rs := newReplicaSet(t, 3)
	const budget = 8 << 20
	for i := range rs.bricks {
		rs.stop(i)
		rs.cfgs[i].LogBytesBudget = budget
		rs.start(i)
	}
	ctx := t.Context()
	data := make([]byte, 1<<20)
	var files []layout.ID
	for i := range 40 {
		for j := range data {
			data[j] = byte(i * j)
		}
		f := layout.NewID()
		r, err := rs.mutate(&dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{File: f[:], Data: data}}})
		if err != nil || r.Code != 0 {
			t.Fatalf("write %d: %v %v", i, r, err)
		}
		files = append(files, f)
	}
	// The budget is checked every second.
	deadline := time.Now().Add(15 * time.Second)
	for {
		over := ""
		for i := range rs.bricks {
			if n := rs.logBytes(i); n > 2*budget {
				over = fmt.Sprintf("brick %d: log holds %d MiB of chunk data, budget %d MiB", i, n>>20, budget>>20)
			}
		}
		if over == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(over)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, f := range files {
		for b := range rs.bricks {
			got, err := rs.bricks[b].store.ReadChunk(ctx, f, 0, 0, 1<<20)
			if err != nil || len(got) != 1<<20 || got[1] != byte(i) {
				t.Fatalf("brick %d, chunk of write %d after compaction: %d bytes, %v", b, i, len(got), err)
			}
		}
	}
}
