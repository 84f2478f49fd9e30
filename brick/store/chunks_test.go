package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// pattern returns n bytes that differ with seed and position.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7+i/251)
	}
	return b
}

// readAll reads a whole chunk.
func (h *harness) readAll(file layout.ID, index uint64) []byte {
	h.t.Helper()
	got, err := h.s.ReadChunk(context.Background(), file, index, 0, h.cfg.ChunkSize)
	if err != nil {
		h.t.Fatalf("ReadChunk(%s.%d): %v", file, index, err)
	}
	return got
}

func TestChunkWriteReadTruncate(t *testing.T) {
	h := newHarness(t, smallConfig)
	ctx := context.Background()
	file := layout.NewID()
	var model []byte // what chunk 0 holds
	bs := h.cfg.BlockSize

	write := func(off int, data []byte) {
		if end := off + len(data); end > len(model) {
			model = append(model, make([]byte, end-len(model))...)
		}
		copy(model[off:], data)
	}
	truncate := func(n int) {
		if n < len(model) {
			model = model[:n]
		} else {
			model = append(model, make([]byte, n-len(model))...)
		}
	}
	steps := []struct {
		name string
		cmd  *dfspb.StoreCommand
		mod  func()
	}{
		{"first write", writeChunkCmd(file, 0, 0, pattern(1, 10000)), func() { write(0, pattern(1, 10000)) }},
		{"partial block overwrite", writeChunkCmd(file, 0, bs+100, pattern(2, 100)), func() { write(bs+100, pattern(2, 100)) }},
		{"overwrite across blocks", writeChunkCmd(file, 0, bs-10, pattern(3, bs+20)), func() { write(bs-10, pattern(3, bs+20)) }},
		{"sparse write past end", writeChunkCmd(file, 0, 40000, pattern(4, 10)), func() { write(40000, pattern(4, 10)) }},
		{"fill the hole partly", writeChunkCmd(file, 0, 20000, pattern(5, 3)), func() { write(20000, pattern(5, 3)) }},
		{"shrink mid-block", truncChunkCmd(file, 0, 6000), func() { truncate(6000) }},
		{"grow with zeros", truncChunkCmd(file, 0, 3*bs+5), func() { truncate(3*bs + 5) }},
		{"shrink to block boundary", truncChunkCmd(file, 0, 2*bs), func() { truncate(2 * bs) }},
		{"append unaligned", writeChunkCmd(file, 0, 2*bs, pattern(6, 77)), func() { write(2*bs, pattern(6, 77)) }},
		{"write whole chunk tail", writeChunkCmd(file, 0, h.cfg.ChunkSize-bs, pattern(7, bs)), func() { write(h.cfg.ChunkSize-bs, pattern(7, bs)) }},
		{"same length truncate", truncChunkCmd(file, 0, h.cfg.ChunkSize), func() {}},
		{"empty write", writeChunkCmd(file, 0, 5, nil), func() {}},
	}
	for _, st := range steps {
		r := mustOK(t, h.apply(st.cmd))
		st.mod()
		got := h.readAll(file, 0)
		if !bytes.Equal(got, model) {
			t.Fatalf("%s: chunk differs from model (len %d vs %d)", st.name, len(got), len(model))
		}
		info, err := h.s.ChunkInfo(ctx, file, 0)
		if err != nil {
			t.Fatal(err)
		}
		if int(info.Length) != len(model) || len(info.Crcs) != (len(model)+bs-1)/bs || r.Chunk.Length != info.Length {
			t.Fatalf("%s: info length %d crcs %d, model %d", st.name, info.Length, len(info.Crcs), len(model))
		}
		// Odd sub-ranges.
		for _, rg := range [][2]int{{1, 3}, {bs - 1, 2}, {bs + 50, 3 * bs}, {len(model) - 1, 10}, {len(model), 10}, {len(model) + 5000, 10}} {
			got, err := h.s.ReadChunk(ctx, file, 0, int64(rg[0]), rg[1])
			if err != nil {
				t.Fatalf("%s: ReadChunk%v: %v", st.name, rg, err)
			}
			lo, hi := min(rg[0], len(model)), min(rg[0]+rg[1], len(model))
			if !bytes.Equal(got, model[lo:hi]) {
				t.Fatalf("%s: ReadChunk%v = %d bytes, want %d", st.name, rg, len(got), hi-lo)
			}
		}
	}
	wantCode(t, h.apply(writeChunkCmd(file, 0, h.cfg.ChunkSize-1, []byte("ab"))), CodeInvalid)
	wantCode(t, h.apply(truncChunkCmd(file, 0, h.cfg.ChunkSize+1)), CodeInvalid)

	// A chunk nobody wrote reads as nothing.
	if got, err := h.s.ReadChunk(ctx, file, 9, 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("ReadChunk(missing) = %q, %v", got, err)
	}
	if _, err := h.s.ChunkInfo(ctx, file, 9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ChunkInfo(missing) = %v", err)
	}
	// Truncating a missing chunk up creates a chunk of zeros.
	mustOK(t, h.apply(truncChunkCmd(file, 9, 5000)))
	if got := h.readAll(file, 9); !bytes.Equal(got, make([]byte, 5000)) {
		t.Fatalf("zero chunk = %d bytes", len(got))
	}
}

func TestDeleteChunks(t *testing.T) {
	h := newHarness(t, smallConfig)
	ctx := context.Background()
	f, g := layout.NewID(), layout.NewID()
	for i := range 5 {
		mustOK(t, h.apply(writeChunkCmd(f, uint64(i), 0, pattern(byte(i), 1000))))
	}
	mustOK(t, h.apply(writeChunkCmd(g, 0, 0, pattern(9, 1000))))
	if st, _ := h.s.Statfs(ctx); st.Chunks != 6 || st.ChunkBytes != 6000 {
		t.Fatalf("statfs = %+v", st)
	}
	r := mustOK(t, h.apply(cmd(&dfspb.DeleteChunksCmd{File: b(f), FromIndex: 2})))
	if r.Deleted != 3 {
		t.Fatalf("deleted = %d", r.Deleted)
	}
	for i := range 5 {
		got := h.readAll(f, uint64(i))
		_, statErr := os.Stat(h.s.chunkPath(f, uint64(i)))
		if (i < 2) != (len(got) == 1000) || (i < 2) != (statErr == nil) {
			t.Fatalf("chunk %d after delete from 2: %d bytes, file %v", i, len(got), statErr)
		}
	}
	if got := h.readAll(g, 0); !bytes.Equal(got, pattern(9, 1000)) {
		t.Fatal("other file's chunk touched")
	}
	mustOK(t, h.apply(truncChunkCmd(f, 0, 0)))
	if st, _ := h.s.Statfs(ctx); st.Chunks != 2 || st.ChunkBytes != 2000 {
		t.Fatalf("statfs = %+v", st)
	}
	// Delete then write again in one batch: the new chunk survives.
	rs := h.applyBatch(
		cmd(&dfspb.DeleteChunksCmd{File: b(g)}),
		writeChunkCmd(g, 0, 10, []byte("again")),
	)
	mustOK(t, rs[0])
	mustOK(t, rs[1])
	if got := h.readAll(g, 0); !bytes.Equal(got, append(make([]byte, 10), "again"...)) {
		t.Fatalf("rewritten chunk = %q", got)
	}
}

// corrupt flips one byte of a chunk file on disk.
func corrupt(t *testing.T, s *Store, file layout.ID, index uint64, off int64) {
	t.Helper()
	f, err := os.OpenFile(s.chunkPath(file, index), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var bb [1]byte
	if _, err := f.ReadAt(bb[:], off); err != nil {
		t.Fatal(err)
	}
	bb[0] ^= 0x40
	if _, err := f.WriteAt(bb[:], off); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptionDetectAndRepair(t *testing.T) {
	h := newHarness(t, smallConfig)
	ctx := context.Background()
	file := layout.NewID()
	bs := int64(h.cfg.BlockSize)
	data := pattern(3, int(5*bs))
	mustOK(t, h.apply(writeChunkCmd(file, 1, 0, data)))
	corrupt(t, h.s, file, 1, 2*bs+17)

	if _, err := h.s.ReadChunk(ctx, file, 1, 0, int(2*bs)); err != nil {
		t.Fatalf("read of good blocks: %v", err)
	}
	_, err := h.s.ReadChunk(ctx, file, 1, bs+5, int(2*bs))
	var ce *CorruptError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.Block != 2 || ce.File != file || ce.Index != 1 {
		t.Fatalf("read over the bad block = %v", err)
	}
	var reports []ScrubReport
	stats, err := h.s.Scrub(ctx, func(r ScrubReport) { reports = append(reports, r) })
	if err != nil || stats.Chunks != 1 || stats.Corrupt != 1 || len(reports) != 1 || !errors.Is(reports[0].Err, ErrCorrupt) {
		t.Fatalf("Scrub = %+v, %v, %v", stats, reports, err)
	}

	bad := slices.Clone(data)
	bad[0] ^= 1
	if err := h.s.RepairChunk(ctx, file, 1, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("repair with wrong data = %v", err)
	}
	if err := h.s.RepairChunk(ctx, file, 1, data[:100]); !errors.Is(err, ErrInvalid) {
		t.Fatalf("repair with short data = %v", err)
	}
	if err := h.s.RepairChunk(ctx, file, 7, data); !errors.Is(err, ErrNotFound) {
		t.Fatalf("repair of missing chunk = %v", err)
	}
	if err := h.s.RepairChunk(ctx, file, 1, data); err != nil {
		t.Fatalf("repair: %v", err)
	}
	if got := h.readAll(file, 1); !bytes.Equal(got, data) {
		t.Fatal("repaired chunk differs")
	}

	// A lost chunk file is corrupt too, and repairable.
	if err := os.Remove(h.s.chunkPath(file, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.ReadChunk(ctx, file, 1, 0, 1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of missing file = %v", err)
	}
	if err := h.s.RepairChunk(ctx, file, 1, data); err != nil {
		t.Fatalf("repair of missing file: %v", err)
	}
	if stats, err := h.s.Scrub(ctx, func(r ScrubReport) { t.Errorf("scrub after repair: %v", r.Err) }); err != nil || stats.Bytes != 5*bs {
		t.Fatalf("Scrub = %+v, %v", stats, err)
	}
}

// TestOverwriteOfCorruptBlock: a partial write over a block that is corrupt
// on one replica still applies there (replicas must not diverge), and
// marks the block bad until it is repaired from the other replica.
func TestOverwriteOfCorruptBlock(t *testing.T) {
	a, b := newHarness(t, smallConfig), newHarness(t, smallConfig)
	ctx := context.Background()
	file := layout.NewID()
	bs := h4k
	both := func(c *dfspb.StoreCommand) {
		t.Helper()
		mustOK(t, a.apply(c))
		mustOK(t, b.apply(c))
	}
	both(writeChunkCmd(file, 0, 0, pattern(1, 3*bs)))
	corrupt(t, a.s, file, 0, int64(bs)+2000)
	both(writeChunkCmd(file, 0, bs+10, []byte("partial")))

	var ce *CorruptError
	if _, err := a.s.ReadChunk(ctx, file, 0, int64(bs), 10); !errors.As(err, &ce) || ce.Block != 1 || ce.Reason != "marked bad" {
		t.Fatalf("read of overwritten corrupt block = %v", err)
	}
	good := b.readAll(file, 0)
	if err := a.s.RepairChunk(ctx, file, 0, good); err != nil {
		t.Fatalf("repair: %v", err)
	}
	if got := a.readAll(file, 0); !bytes.Equal(got, good) {
		t.Fatal("repaired replica differs")
	}
	ia, _ := a.s.ChunkInfo(ctx, file, 0)
	ib, _ := b.s.ChunkInfo(ctx, file, 0)
	if !slices.Equal(ia.Crcs, ib.Crcs) || len(ia.BadBlocks) != 0 {
		t.Fatalf("records differ after repair: %v vs %v (bad %v)", ia.Crcs, ib.Crcs, ia.BadBlocks)
	}
	// Writing the whole bad block also clears the mark.
	corrupt(t, a.s, file, 0, 5)
	both(writeChunkCmd(file, 0, 100, []byte("x")))
	both(writeChunkCmd(file, 0, 0, pattern(8, bs)))
	if got := a.readAll(file, 0); !bytes.Equal(got, b.readAll(file, 0)) {
		t.Fatal("replicas differ after rewriting the bad block")
	}
}

const h4k = 4 << 10

// TestCrashRecovery simulates a crash in the middle of a batch: the chunk
// file holds the bytes of an entry that was never committed, a chunk file
// has no record, and the dirty marker is still there. Replaying the entry
// must converge without marking anything bad.
func TestCrashRecovery(t *testing.T) {
	h := newHarness(t, smallConfig)
	file := layout.NewID()
	bs := h4k
	mustOK(t, h.apply(writeChunkCmd(file, 0, 0, pattern(1, 2*bs+100))))
	lost := writeChunkCmd(file, 0, bs+50, []byte("lost write"))
	path := h.s.chunkPath(file, 0)
	orphan := h.s.chunkPath(layout.NewID(), 3)
	if err := h.s.Close(); err != nil {
		t.Fatal(err)
	}
	// What the lost batch did on disk: wrote its bytes, extended the file
	// with garbage, created a chunk file it never recorded.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("lost write"), int64(bs+50)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("garbage"), int64(3*bs)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(orphan, []byte("orphan"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.openUnclean()
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("orphan chunk file not swept: %v", err)
	}
	mustOK(t, h.apply(lost))                                         // the replay
	mustOK(t, h.apply(writeChunkCmd(file, 0, 3*bs+10, []byte("z")))) // past the old end
	want := pattern(1, 2*bs+100)
	copy(want[bs+50:], "lost write")
	want = append(want, make([]byte, 3*bs+11-len(want))...)
	want[3*bs+10] = 'z'
	if got := h.readAll(file, 0); !bytes.Equal(got, want) {
		t.Fatal("chunk after replay differs")
	}
	info, _ := h.s.ChunkInfo(context.Background(), file, 0)
	if len(info.BadBlocks) != 0 {
		t.Fatalf("replay marked blocks bad: %v", info.BadBlocks)
	}
}

// TestConcurrentReads reads a chunk while batches rewrite it: a reader
// never sees a torn chunk or a spurious checksum error.
func TestConcurrentReads(t *testing.T) {
	h := newHarness(t, smallConfig)
	file := layout.NewID()
	size := h.cfg.ChunkSize
	mustOK(t, h.apply(writeChunkCmd(file, 0, 0, bytes.Repeat([]byte{1}, size))))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				got, err := h.s.ReadChunk(ctx, file, 0, 0, size)
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				if len(got) != size || bytes.Count(got, got[:1]) != size {
					errs <- errors.New("torn read")
					return
				}
			}
		}()
	}
	// Snapshots and scrubs run beside the batches too.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			snap, err := h.s.Snapshot()
			if err != nil {
				errs <- err
				return
			}
			var sink memSink
			err = snap.Persist(&sink)
			snap.Release()
			if err != nil {
				errs <- err
				return
			}
			if _, err := h.s.Scrub(ctx, func(r ScrubReport) { errs <- r.Err }); err != nil && ctx.Err() == nil {
				errs <- err
				return
			}
		}
	}()
	for i := 2; i < 60; i++ {
		// Two writes per batch: halves, then the whole chunk.
		v := bytes.Repeat([]byte{byte(i)}, size/2)
		rs := h.applyBatch(writeChunkCmd(file, 0, 0, v), writeChunkCmd(file, 0, size/2, v))
		mustOK(t, rs[0])
		mustOK(t, rs[1])
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
