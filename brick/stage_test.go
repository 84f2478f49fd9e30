package brick

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

func writeChunk(file layout.ID, idx uint64, off int, data []byte) *dfspb.StoreCommand {
	return &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{
		File: file[:], Index: idx, Offset: uint32(off), Data: data}}}
}

// stageFiles counts a brick's staging files.
func stageFiles(t *testing.T, b *Brick) int {
	t.Helper()
	n, _, err := b.store.StageUsage()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sameChunks checks that every running brick holds want for each chunk,
// with the same chunk record as the others.
func sameChunks(ctx context.Context, rs *replicaSet, file layout.ID, want map[uint64][]byte) error {
	for idx, w := range want {
		var rec *dfspb.ChunkInfo
		for i, b := range rs.bricks {
			got, err := b.store.ReadChunk(ctx, file, idx, 0, len(w)+1)
			if err != nil || !bytes.Equal(got, w) {
				return fmt.Errorf("brick %d chunk %d: %d bytes, %v", i, idx, len(got), err)
			}
			info, err := b.store.ChunkInfo(ctx, file, idx)
			if err != nil {
				return err
			}
			if rec == nil {
				rec = info
			} else if !proto.Equal(rec, info) {
				return fmt.Errorf("brick %d chunk %d: record %v differs from %v", i, idx, info, rec)
			}
		}
	}
	return nil
}

// TestStagedWritesWithAFollowerDown: sequential chunk writes go beside
// the log while a follower is down; when it returns it applies the
// entries without their bytes, repairs the chunks from the others at once
// (no scrub), and ends with the same records and bytes.
func TestStagedWritesWithAFollowerDown(t *testing.T) {
	rs := newReplicaSet(t, 3)
	ctx := t.Context()
	li, _ := rs.leader()
	file := layout.NewID()
	want := map[uint64][]byte{}
	write := func(idx uint64, off int, data []byte) {
		t.Helper()
		r, err := rs.mutate(writeChunk(file, idx, off, data))
		if err != nil || r.Code != 0 {
			t.Fatalf("write chunk %d: %v %v", idx, r, err)
		}
		w := want[idx]
		if len(w) < off+len(data) {
			w = append(w, make([]byte, off+len(data)-len(w))...)
		}
		copy(w[off:], data)
		want[idx] = w
	}
	data := func(seed, n int) []byte {
		return bytes.Repeat([]byte(fmt.Sprintf("seed %d;", seed)), n/7+1)[:n]
	}
	write(0, 0, data(0, 1<<20))
	f := (li + 1) % 3
	rs.stop(f)
	for idx := uint64(1); idx < 6; idx++ {
		write(idx, 0, data(int(idx), 1<<20))
	}
	write(0, 128<<10, data(10, 256<<10))               // inside a chunk: copied
	write(6, 0, data(11, 300000))                      // ends unaligned: a new chunk
	write(6, 300000-300000%(64<<10), data(12, 200000)) // extends it
	rs.start(f)
	eventually(t, func() error { return sameChunks(ctx, rs, file, want) })
	if n := rs.bricks[f].stage.pendingCount(); n != 0 {
		t.Fatalf("%d repairs pending", n)
	}
	if n := rs.bricks[f].stage.repaired.Load(); n < 6 {
		t.Fatalf("the returning follower repaired %d chunks, want all 7 written while it was down (or 6 if one was rewritten before it caught up)", n)
	}
	for i, b := range rs.bricks {
		if n := stageFiles(t, b); n != 0 {
			t.Errorf("brick %d keeps %d staging files", i, n)
		}
	}
}

// TestStagedWriteWithoutMajorityFails: with both followers down a staged
// write cannot reach a majority: it fails as the log path would and
// leaves no staging file.
func TestStagedWriteWithoutMajorityFails(t *testing.T) {
	rs := newReplicaSet(t, 3)
	li, lc := rs.leader()
	file := layout.NewID()
	if r, err := lc.Mutate(t.Context(), writeChunk(file, 0, 0, make([]byte, 256<<10))); err != nil || r.Code != 0 {
		t.Fatalf("write: %v %v", r, err)
	}
	for i := range rs.bricks {
		if i != li {
			rs.stop(i)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := lc.Mutate(ctx, writeChunk(file, 1, 0, make([]byte, 256<<10)))
	if c := status.Code(err); c != codes.Unavailable && c != codes.FailedPrecondition {
		t.Fatalf("write without a majority = %v", err)
	}
	if n := stageFiles(t, rs.bricks[li]); n != 0 {
		t.Fatalf("%d staging files left", n)
	}
}

func TestClientCannotSendStagedWrite(t *testing.T) {
	rs := newReplicaSet(t, 1)
	_, lc := rs.leader()
	file := layout.NewID()
	_, err := lc.Mutate(t.Context(), &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{
		File: file[:], StageId: make([]byte, 16), Length: 1 << 16, BlockCrcs: []uint32{1}}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("staged write from a client = %v", err)
	}
}

// TestPushStreamsPerMember: at most stagePeerStreams pushes to a member
// are on the wire at once; the next waits for one to end, and a push that
// gives up while waiting takes no stream.
func TestPushStreamsPerMember(t *testing.T) {
	st := newStager(nil)
	ctx := t.Context()
	var held []func()
	for range stagePeerStreams {
		done, err := st.stream(ctx, "a:1")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, done)
	}
	// Another member has its own streams.
	other, err := st.stream(ctx, "b:1")
	if err != nil {
		t.Fatal(err)
	}
	other()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := st.stream(short, "a:1"); err == nil {
		t.Fatal("a push got a stream beyond the member's limit")
	}
	got := make(chan func(), 1)
	go func() {
		done, err := st.stream(ctx, "a:1")
		if err != nil {
			t.Error(err)
		}
		got <- done
	}()
	select {
	case <-got:
		t.Fatal("a push got a stream while all were taken")
	case <-time.After(50 * time.Millisecond):
	}
	held[0]()
	select {
	case done := <-got:
		done()
	case <-time.After(5 * time.Second):
		t.Fatal("a released stream was not handed to the waiting push")
	}
	for _, done := range held[1:] {
		done()
	}
}
