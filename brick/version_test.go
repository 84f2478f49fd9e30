package brick

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// TestMembersAtAndWriteExtents checks the store-version gate: a replica
// set whose members all run this binary is found at StoreVersion, one
// with a member that does not answer is not (and is asked again once it
// does), and a WriteExtents is committed whole or, below version 2, one
// extent per entry, with the same result either way.
func TestMembersAtAndWriteExtents(t *testing.T) {
	rs := newReplicaSet(t, 3)
	li, c := rs.leader()
	makeRoot(t, c)
	b := rs.bricks[li]
	ctx := context.Background()
	if !b.membersAt(ctx, StoreVersion) {
		t.Fatal("three bricks of this binary: membersAt(StoreVersion) false")
	}
	st, err := c.Status(ctx, &dfspb.BrickStatusRequest{})
	if err != nil || st.StoreVersion != StoreVersion {
		t.Fatalf("Status: store version %d, %v; want %d", st.GetStoreVersion(), err, StoreVersion)
	}

	// A member that does not answer counts as older until it is back.
	other := (li + 1) % 3
	b.versions = versionCheck{}
	rs.stop(other)
	if b.membersAt(ctx, StoreVersion) {
		t.Fatal("membersAt true with a member down")
	}
	rs.start(other)
	b.versions.at = b.versions.at.Add(-versionRecheck)
	eventually(t, func() error {
		if !b.membersAt(ctx, StoreVersion) {
			b.versions.at = b.versions.at.Add(-versionRecheck)
			return fmt.Errorf("membersAt still false with every member back")
		}
		return nil
	})

	file := layout.NewID()
	exts := []*dfspb.ChunkExtent{{Offset: 0, Data: []byte("hello")}, {Offset: 100, Data: []byte("world")}}
	write := func(index uint64) *dfspb.ChunkInfo {
		t.Helper()
		_, c := rs.leader()
		res, err := c.Mutate(ctx, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteExtents{WriteExtents: &dfspb.WriteExtentsCmd{File: file[:], Index: index, Extents: exts}}})
		if err != nil || res.GetCode() != 0 {
			t.Fatalf("WriteExtents: %v %v", err, res.GetMessage())
		}
		return res.GetChunk()
	}
	applied := func() uint64 { i, _ := rs.leader(); return rs.bricks[i].AppliedIndex() }
	a0 := applied()
	whole := write(0)
	if n := applied() - a0; n != 1 {
		t.Fatalf("WriteExtents of 2 extents on an upgraded set took %d entries, want 1", n)
	}
	// As if a member were older: the leader splits the command.
	li, _ = rs.leader()
	var addrs []string
	for _, cfg := range rs.cfgs {
		addrs = append(addrs, cfg.Address)
	}
	slices.Sort(addrs)
	rs.bricks[li].versions = versionCheck{members: addrs, version: 1, at: time.Now()}
	a1 := applied()
	split := write(1)
	if n := applied() - a1; n != 2 {
		t.Fatalf("WriteExtents of 2 extents with an older member took %d entries, want 2", n)
	}
	if whole.Length != split.Length || len(whole.Crcs) != len(split.Crcs) || whole.Crcs[0] != split.Crcs[0] {
		t.Fatalf("whole %v, split %v: want the same chunk", whole, split)
	}
}
