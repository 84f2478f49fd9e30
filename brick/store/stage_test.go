package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// stagedCmd is the WriteChunkCmd a leader proposes for data it staged
// under a fresh stage id (returned).
func stagedCmd(s *Store, file layout.ID, index uint64, off int, data []byte) (*dfspb.StoreCommand, []byte) {
	id := make([]byte, StageIDLen)
	_, _ = rand.Read(id)
	crc, blocks := s.StageChecksums(data)
	return cmd(&dfspb.WriteChunkCmd{File: file[:], Index: index, Offset: uint32(off), StageId: id,
		Length: uint32(len(data)), DataCrc: crc, BlockCrcs: blocks}), id
}

// replicas are stores applying the same entries, as the members of one
// subvolume do; missed records the chunks each reported without data.
type replicas struct {
	t      *testing.T
	hs     []*harness
	mu     sync.Mutex
	missed []map[chunkRef]int
}

type chunkRef struct {
	file  layout.ID
	index uint64
}

func newReplicas(t *testing.T, n int) *replicas {
	r := &replicas{t: t}
	for i := range n {
		h := newHarness(t, smallConfig)
		r.hs = append(r.hs, h)
		r.missed = append(r.missed, map[chunkRef]int{})
		h.s.SetOnStageMissing(func(f layout.ID, idx uint64) {
			r.mu.Lock()
			r.missed[i][chunkRef{f, idx}]++
			r.mu.Unlock()
		})
	}
	return r
}

// write stages data on the replicas named in on and applies the staged
// command on all of them; it returns each one's result.
func (r *replicas) write(file layout.ID, index uint64, off int, data []byte, on ...int) []*dfspb.StoreResult {
	r.t.Helper()
	c, id := stagedCmd(r.hs[0].s, file, index, off, data)
	for _, i := range on {
		if err := r.hs[i].s.Stage(context.Background(), id, data); err != nil {
			r.t.Fatalf("Stage on %d: %v", i, err)
		}
	}
	var out []*dfspb.StoreResult
	for _, h := range r.hs {
		out = append(out, h.apply(proto.Clone(c).(*dfspb.StoreCommand)))
		if _, err := os.Stat(h.s.stagePath(id)); !os.IsNotExist(err) {
			r.t.Fatalf("staging file left after apply: %v", err)
		}
	}
	return out
}

// logWrite applies a write through the log on every replica.
func (r *replicas) logWrite(file layout.ID, index uint64, off int, data []byte) {
	r.t.Helper()
	for _, h := range r.hs {
		mustOK(r.t, h.apply(writeChunkCmd(file, index, off, data)))
	}
}

// record is a replica's chunk record, bad-block marks left out or not.
func (r *replicas) record(i int, file layout.ID, index uint64, withBad bool) []byte {
	r.t.Helper()
	info, err := r.hs[i].s.ChunkInfo(context.Background(), file, index)
	if err != nil {
		r.t.Fatalf("ChunkInfo on %d: %v", i, err)
	}
	info = proto.Clone(info).(*dfspb.ChunkInfo)
	if !withBad {
		info.BadBlocks = nil
	}
	v, err := marshalChunk(info)
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}

// check compares every replica's record and data with want; replicas
// missing data (bad blocks) are repaired from the first good one first.
func (r *replicas) check(file layout.ID, index uint64, want []byte) {
	r.t.Helper()
	ctx := context.Background()
	var good []byte
	for _, h := range r.hs {
		if d, err := h.s.ReadChunk(ctx, file, index, 0, h.cfg.ChunkSize); err == nil {
			good = d
			break
		}
	}
	if !bytes.Equal(good, want) {
		r.t.Fatalf("the first good replica holds %d bytes, want %d", len(good), len(want))
	}
	for i, h := range r.hs {
		// Before repair, records agree but for the checksums of blocks
		// marked bad (a partial overwrite of a bad block computes one
		// from the bytes it has).
		if a, b := r.hs[0].chunkInfo(file, index), h.chunkInfo(file, index); len(a.Crcs) != len(b.Crcs) || a.Length != b.Length || a.Version != b.Version {
			r.t.Fatalf("replica %d: chunk record %v differs from replica 0's %v", i, b, a)
		} else {
			bad := map[uint32]bool{}
			for _, x := range append(slices.Clone(a.BadBlocks), b.BadBlocks...) {
				bad[x] = true
			}
			for k := range a.Crcs {
				if !bad[uint32(k)] && a.Crcs[k] != b.Crcs[k] {
					r.t.Fatalf("replica %d: checksum of good block %d differs from replica 0's", i, k)
				}
			}
		}
		if _, err := h.s.ReadChunk(ctx, file, index, 0, h.cfg.ChunkSize); errors.Is(err, ErrCorrupt) {
			if err := h.s.RepairChunk(ctx, file, index, good); err != nil {
				r.t.Fatalf("repair replica %d: %v", i, err)
			}
		}
		if got := h.readAll(file, index); !bytes.Equal(got, want) {
			r.t.Fatalf("replica %d: data differs", i)
		}
		if !bytes.Equal(r.record(i, file, index, true), r.record(0, file, index, true)) {
			r.t.Fatalf("replica %d: chunk record after repair differs from replica 0's", i)
		}
	}
}

func TestStagedWholeChunkRenames(t *testing.T) {
	r := newReplicas(t, 3)
	file := layout.NewID()
	bs := r.hs[0].cfg.BlockSize
	data := pattern(5, 3*bs+100) // ends the chunk: the last block is partial
	c, id := stagedCmd(r.hs[0].s, file, 2, 0, data)
	var before []os.FileInfo
	for _, i := range []int{0, 1} {
		if err := r.hs[i].s.Stage(context.Background(), id, data); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(r.hs[i].s.stagePath(id))
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, fi)
	}
	for i, h := range r.hs {
		res := mustOK(t, h.apply(proto.Clone(c).(*dfspb.StoreCommand)))
		if res.Chunk.Length != uint32(len(data)) {
			t.Fatalf("replica %d: length %d", i, res.Chunk.Length)
		}
	}
	for i := range 2 {
		fi, err := os.Stat(r.hs[i].s.chunkPath(file, 2))
		if err != nil || !os.SameFile(fi, before[i]) {
			t.Fatalf("replica %d: chunk file is not the renamed staging file (%v)", i, err)
		}
	}
	// Replica 2 never had the bytes: its blocks are bad, it said so, and
	// its record is the others'.
	info, _ := r.hs[2].s.ChunkInfo(context.Background(), file, 2)
	if !slices.Equal(info.BadBlocks, []uint32{0, 1, 2, 3}) {
		t.Fatalf("bad blocks on the replica without data: %v", info.BadBlocks)
	}
	if _, err := r.hs[2].s.ReadChunk(context.Background(), file, 2, 0, 10); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a block not held = %v, want ErrCorrupt", err)
	}
	if r.missed[2][chunkRef{file, 2}] != 1 || len(r.missed[0])+len(r.missed[1]) != 0 {
		t.Fatalf("missing reports: %v", r.missed)
	}
	r.check(file, 2, data)
}

func TestStagedPartialWritesCopy(t *testing.T) {
	r := newReplicas(t, 3)
	file := layout.NewID()
	bs := r.hs[0].cfg.BlockSize
	model := pattern(1, 4*bs+300)
	r.logWrite(file, 0, 0, model)

	// Inside the chunk, block aligned at both ends.
	d := pattern(2, 2*bs)
	for _, res := range r.write(file, 0, bs, d, 0, 2) {
		mustOK(t, res)
	}
	copy(model[bs:], d)
	r.check(file, 0, model)

	// From a block boundary past the old (partial) end: ends unaligned.
	d = pattern(3, 2*bs+7)
	for _, res := range r.write(file, 0, 4*bs, d, 1, 2) {
		mustOK(t, res)
	}
	model = append(model[:4*bs], d...)
	r.check(file, 0, model)

	// Past the end with a hole: the old partial last block grows with
	// zeros, the blocks in between are zeros.
	r.logWrite(file, 0, len(model), []byte("tail"))
	model = append(model, "tail"...)
	d = pattern(4, bs)
	for _, res := range r.write(file, 0, 9*bs, d, 0, 1) {
		mustOK(t, res)
	}
	model = append(model, make([]byte, 9*bs-len(model))...)
	model = append(model, d...)
	r.check(file, 0, model)
}

func TestStagedWriteEndingInsideOldDataIsRefused(t *testing.T) {
	r := newReplicas(t, 2)
	file := layout.NewID()
	bs := r.hs[0].cfg.BlockSize
	model := pattern(1, 3*bs)
	r.logWrite(file, 0, 0, model)
	before := r.record(0, file, 0, true)
	for _, res := range r.write(file, 0, 0, pattern(2, bs+5), 0, 1) {
		wantCode(t, res, CodeStale)
	}
	if !bytes.Equal(r.record(0, file, 0, true), before) {
		t.Fatal("a refused staged write changed the chunk")
	}
	r.check(file, 0, model)
}

// TestLogWritesAfterRename: writes through the log after a staged rename,
// in the same batch and in later ones, go to the new file (not to an
// earlier descriptor of the replaced one).
func TestLogWritesAfterRename(t *testing.T) {
	h := newHarness(t, smallConfig)
	file := layout.NewID()
	bs := h.cfg.BlockSize
	first := pattern(1, 2*bs)
	data := pattern(2, 4*bs)
	c, id := stagedCmd(h.s, file, 0, 0, data)
	if err := h.s.Stage(context.Background(), id, data); err != nil {
		t.Fatal(err)
	}
	res := h.applyBatch(
		writeChunkCmd(file, 0, 0, first), // opens the old file in the batch
		c,                                // renames over it
		writeChunkCmd(file, 0, 10, []byte("same batch")),
	)
	for _, r := range res {
		mustOK(t, r)
	}
	want := slices.Clone(data)
	copy(want[10:], "same batch")
	if got := h.readAll(file, 0); !bytes.Equal(got, want) {
		t.Fatal("chunk after a batch with a staged rename differs")
	}
	mustOK(t, h.apply(writeChunkCmd(file, 0, 3*bs+1, []byte("later"))))
	copy(want[3*bs+1:], "later")
	mustOK(t, h.apply(truncChunkCmd(file, 0, 3*bs+3)))
	want = want[:3*bs+3]
	if got := h.readAll(file, 0); !bytes.Equal(got, want) {
		t.Fatal("chunk after later writes differs")
	}
	h.reopen()
	if got := h.readAll(file, 0); !bytes.Equal(got, want) {
		t.Fatal("chunk after reopen differs")
	}
}

// TestStagedReplayFindsChunkWritten: an entry applied again (a replay
// after a crash) without its staging file finds the bytes in the chunk
// file and marks nothing bad.
func TestStagedReplayFindsChunkWritten(t *testing.T) {
	h := newHarness(t, smallConfig)
	var missed int
	h.s.SetOnStageMissing(func(layout.ID, uint64) { missed++ })
	file := layout.NewID()
	bs := h.cfg.BlockSize
	old := pattern(1, 4*bs)
	mustOK(t, h.apply(writeChunkCmd(file, 0, 0, old)))
	data := pattern(2, bs)
	copy(old[bs:], data)
	mustOK(t, h.apply(writeChunkCmd(file, 0, bs, data))) // the bytes a lost batch wrote
	c, _ := stagedCmd(h.s, file, 0, bs, data)
	res := mustOK(t, h.apply(c))
	if len(res.Chunk.BadBlocks) != 0 || missed != 0 {
		t.Fatalf("bad blocks %v, missing reports %d", res.Chunk.BadBlocks, missed)
	}
	if got := h.readAll(file, 0); !bytes.Equal(got, old) {
		t.Fatal("chunk differs")
	}
}

func TestStageFiles(t *testing.T) {
	h := newHarness(t, smallConfig)
	ctx := context.Background()
	if err := h.s.Stage(ctx, []byte("short"), nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Stage with a bad id = %v", err)
	}
	file := layout.NewID()
	data := pattern(1, 2*h.cfg.BlockSize)
	c, id := stagedCmd(h.s, file, 0, 0, data)
	if err := h.s.Stage(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	if n, b, err := h.s.StageUsage(); n != 1 || b != int64(len(data)) || err != nil {
		t.Fatalf("StageUsage = %d, %d, %v", n, b, err)
	}
	mustOK(t, h.apply(c))
	// A push that arrives after its entry leaves nothing behind.
	if err := h.s.Stage(ctx, id, data); !errors.Is(err, ErrStale) {
		t.Fatalf("late Stage = %v, want ErrStale", err)
	}
	if n, _, _ := h.s.StageUsage(); n != 0 {
		t.Fatalf("%d staging files after apply", n)
	}

	// Orphans: removed by age only.
	_, orphan := stagedCmd(h.s, file, 1, 0, data)
	if err := h.s.Stage(ctx, orphan, data); err != nil {
		t.Fatal(err)
	}
	if n, _, err := h.s.SweepStage(time.Minute); err != nil || n != 0 {
		t.Fatalf("sweep of a young staging file = %d, %v", n, err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(h.s.stagePath(orphan), old, old); err != nil {
		t.Fatal(err)
	}
	if n, b, err := h.s.SweepStage(time.Minute); err != nil || n != 1 || b != int64(len(data)) {
		t.Fatalf("sweep of an old staging file = %d, %d, %v", n, b, err)
	}
	// Unstage: a write that reached no majority.
	if err := h.s.Stage(ctx, orphan, data); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Unstage(orphan); err != nil {
		t.Fatalf("Unstage = %v", err)
	}
	if n, _, _ := h.s.StageUsage(); n != 0 {
		t.Fatalf("%d staging files after Unstage", n)
	}
	// A push that arrives after its write was dropped is refused.
	if err := h.s.Stage(ctx, orphan, data); !errors.Is(err, ErrStale) {
		t.Fatalf("Stage after Unstage = %v, want ErrStale", err)
	}
	// One racing the drop leaves nothing either.
	for i := range 20 {
		_, id := stagedCmd(h.s, file, uint64(2+i), 0, data)
		done := make(chan error, 1)
		go func() { done <- h.s.Stage(ctx, id, data) }()
		if err := h.s.Unstage(id); err != nil {
			t.Fatalf("Unstage = %v", err)
		}
		<-done
		if n, _, _ := h.s.StageUsage(); n != 0 {
			t.Fatalf("race %d: %d staging files after Unstage and Stage", i, n)
		}
	}
}

// TestStagedCommandChecks: malformed staged commands are refused.
func TestStagedCommandChecks(t *testing.T) {
	h := newHarness(t, smallConfig)
	file := layout.NewID()
	bs := h.cfg.BlockSize
	data := pattern(1, 2*bs)
	for name, mod := range map[string]func(*dfspb.WriteChunkCmd){
		"unaligned":      func(c *dfspb.WriteChunkCmd) { c.Offset = 7 },
		"with data":      func(c *dfspb.WriteChunkCmd) { c.Data = []byte("x") },
		"crcs":           func(c *dfspb.WriteChunkCmd) { c.BlockCrcs = c.BlockCrcs[:1] },
		"past the chunk": func(c *dfspb.WriteChunkCmd) { c.Offset = uint32(h.cfg.ChunkSize - bs) },
		"empty":          func(c *dfspb.WriteChunkCmd) { c.Length = 0 },
	} {
		c, _ := stagedCmd(h.s, file, 0, 0, data)
		mod(c.GetWriteChunk())
		if res := h.apply(c); res.Code != dfspb.StoreErrorCode_STORE_ERROR_CODE_INVALID {
			t.Errorf("%s: %v %s", name, res.Code, res.Message)
		}
	}
}

// TestStagedMissingAfterUncleanRestart: a member restarted after a crash
// (inside its recovery window) that misses a staged write marks the blocks
// bad all the same, and a partial overwrite through the log keeps them
// bad: a repair from a peer then leaves records identical. (Taking the
// chunk file's bytes as they are, as a replayed log entry may, would give
// the overwritten block a checksum of the wrong bytes.)
func TestStagedMissingAfterUncleanRestart(t *testing.T) {
	r := newReplicas(t, 3)
	file := layout.NewID()
	bs := r.hs[0].cfg.BlockSize
	model := pattern(1, 2*bs)
	r.logWrite(file, 0, 0, model)
	h := r.hs[2]
	if err := h.s.Close(); err != nil {
		t.Fatal(err)
	}
	h.openUnclean()
	if h.s.recoverUntil <= h.idx {
		t.Fatalf("no recovery window after an unclean open: %d", h.s.recoverUntil)
	}
	d := pattern(2, 4*bs)
	for _, res := range r.write(file, 0, 0, d, 0, 1) {
		mustOK(t, res)
	}
	model = slices.Clone(d)
	r.logWrite(file, 0, 2*bs+10, []byte("partial"))
	copy(model[2*bs+10:], "partial")
	info, _ := h.s.ChunkInfo(context.Background(), file, 0)
	if !slices.Equal(info.BadBlocks, []uint32{0, 1, 2, 3}) {
		t.Fatalf("bad blocks on the restarted member: %v", info.BadBlocks)
	}
	r.check(file, 0, model)
}

func (h *harness) chunkInfo(file layout.ID, index uint64) *dfspb.ChunkInfo {
	h.t.Helper()
	info, err := h.s.ChunkInfo(context.Background(), file, index)
	if err != nil {
		h.t.Fatal(err)
	}
	return info
}

// alignedBuf returns n bytes of pattern(seed) at a page-aligned address,
// as the codec's pool hands out chunk data.
func alignedBuf(seed byte, n int) []byte {
	b := make([]byte, n+directAlign)
	off := (directAlign - int(uintptr(unsafe.Pointer(&b[0]))%directAlign)) % directAlign
	b = b[off : off+n]
	copy(b, pattern(seed, n))
	return b
}

// TestStageFileWrites: a staging file holds exactly the data, whether it
// goes with O_DIRECT (aligned buffer, with or without an unaligned tail),
// through the page cache (unaligned or short buffer), or after the file
// system refused O_DIRECT.
func TestStageFileWrites(t *testing.T) {
	h := newHarness(t, smallConfig)
	if err := h.s.makeStageDir(); err != nil {
		t.Fatal(err)
	}
	path := h.s.stagePath(bytes.Repeat([]byte{1}, StageIDLen))
	unaligned := alignedBuf(9, 1<<20+1)[1:]
	for _, c := range []struct {
		name   string
		data   []byte
		direct bool // with O_DIRECT, where the file system has it
	}{
		{"aligned chunk", alignedBuf(1, 1<<20), true},
		{"aligned with tail", alignedBuf(2, 300001), true},
		{"one block", alignedBuf(3, directAlign), true},
		{"short", alignedBuf(4, 100), false},
		{"unaligned buffer", unaligned, false},
	} {
		for _, sync := range []bool{true, false} {
			direct, err := h.s.writeStageFile(path, c.data, sync)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if direct && !c.direct {
				t.Fatalf("%s: written with O_DIRECT", c.name)
			}
			if c.direct && !direct && !h.s.stage.noDirect.Load() {
				t.Fatalf("%s: not written with O_DIRECT, and the file system did not refuse it", c.name)
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, c.data) {
				t.Fatalf("%s: file holds %d bytes (%v), want the %d written", c.name, len(got), err, len(c.data))
			}
		}
	}
	// Once refused, the page cache: the same bytes.
	h.s.stage.noDirect.Store(true)
	data := alignedBuf(5, 200000)
	if direct, err := h.s.writeStageFile(path, data, true); err != nil || direct {
		t.Fatalf("after a refusal: direct %v, %v", direct, err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after a refusal: file holds %d bytes (%v)", len(got), err)
	}
}

// TestStagedApplyWaitsForItsPush: an entry applied while this member is
// still writing its push (a follower whose push lags the others) waits for
// it and takes the bytes, instead of marking the blocks bad and fetching
// the chunk from a peer.
func TestStagedApplyWaitsForItsPush(t *testing.T) {
	h := newHarness(t, smallConfig)
	missed := 0
	h.s.SetOnStageMissing(func(layout.ID, uint64) { missed++ })
	file := layout.NewID()
	data := alignedBuf(6, h.cfg.ChunkSize)
	c, id := stagedCmd(h.s, file, 0, 0, data)
	// The push is being written: registered as Stage registers it.
	if err := h.s.makeStageDir(); err != nil {
		t.Fatal(err)
	}
	ch := h.s.stage.begin(id)
	applied := make(chan *dfspb.StoreResult, 1)
	go func() { applied <- asResult(t, h.s.Apply(h.entry(c))) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-applied:
		t.Fatal("the entry was applied while its push was being written")
	default:
	}
	if err := h.s.Stage(context.Background(), id, data); err != nil {
		t.Fatal(err)
	}
	h.s.stage.end(id, ch)
	mustOK(t, <-applied)
	if missed != 0 {
		t.Fatalf("%d chunks reported missing", missed)
	}
	if info := h.chunkInfo(file, 0); len(info.BadBlocks) != 0 {
		t.Fatalf("blocks marked bad: %v", info.BadBlocks)
	}
	got, err := h.s.ReadChunk(context.Background(), file, 0, 0, len(data))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("chunk reads %d bytes, %v", len(got), err)
	}
	if n, _, _ := h.s.StageUsage(); n != 0 {
		t.Fatalf("%d staging files left", n)
	}
}
