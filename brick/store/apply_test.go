package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

func TestReplaySkipsApplied(t *testing.T) {
	h := newHarness(t).withRoot()
	id := layout.NewID()
	e := h.entry(createCmd(root, "f", id, dfspb.FileType_FILE_TYPE_FILE, true))
	mustOK(t, asResult(t, h.s.Apply(e)))
	w := h.entry(writeInlineCmd(id, 0, []byte("abc")))
	mustOK(t, asResult(t, h.s.Apply(w)))

	// Apply the same entries again, as raft does after a restart.
	for _, l := range []*raft.Log{e, w} {
		r := asResult(t, h.s.Apply(l))
		if !r.Replayed || r.Code != 0 {
			t.Fatalf("re-applied index %d: %+v", l.Index, r)
		}
	}
	if got := h.s.AppliedIndex(); got != w.Index {
		t.Fatalf("applied index = %d, want %d", got, w.Index)
	}
	// The replayed write did not apply twice, nor the create.
	if a := h.attr(id); a.Size != 3 || a.Version != w.Index {
		t.Fatalf("attr = %+v", a)
	}
	h.reopen()
	r := asResult(t, h.s.Apply(w))
	if !r.Replayed {
		t.Fatal("entry not skipped after reopen")
	}
	// A batch mixing replayed and new entries.
	next := h.entry(writeInlineCmd(id, 3, []byte("d")))
	out := h.s.ApplyBatch([]*raft.Log{e, w, next, {Index: next.Index + 1, Type: raft.LogConfiguration}})
	if !asResult(t, out[0]).Replayed || !asResult(t, out[1]).Replayed || asResult(t, out[2]).Replayed || out[3] != nil {
		t.Fatalf("batch results = %v", out)
	}
	if h.s.AppliedIndex() != next.Index+1 {
		t.Fatalf("applied index = %d: a configuration entry counts too", h.s.AppliedIndex())
	}
	if got, _ := h.s.ReadInline(context.Background(), id, 0, 10); string(got) != "abcd" {
		t.Fatalf("data = %q", got)
	}
}

func TestBadCommand(t *testing.T) {
	h := newHarness(t)
	h.idx++
	r := asResult(t, h.s.Apply(&raft.Log{Index: h.idx, Type: raft.LogCommand, Data: []byte{0xff, 0xff}}))
	wantCode(t, r, CodeInvalid)
	wantCode(t, h.apply(&dfspb.StoreCommand{}), CodeInvalid)
	if h.s.AppliedIndex() != h.idx {
		t.Fatal("a failed command still advances the applied index")
	}
}

func TestApplyBatch(t *testing.T) {
	h := newHarness(t).withRoot()
	ctx := context.Background()
	var cmds []*dfspb.StoreCommand
	ids := make([]layout.ID, 200)
	for i := range ids {
		ids[i] = layout.NewID()
		cmds = append(cmds, createCmd(root, fmt.Sprintf("f%03d", i), ids[i], dfspb.FileType_FILE_TYPE_FILE, true))
		cmds = append(cmds, writeInlineCmd(ids[i], 0, []byte(fmt.Sprint(i))))
	}
	// Later entries see earlier ones: a duplicate exclusive create fails.
	cmds = append(cmds, createCmd(root, "f007", layout.NewID(), dfspb.FileType_FILE_TYPE_FILE, true))
	file := layout.NewID()
	cmds = append(cmds, writeChunkCmd(file, 0, 0, pattern(1, 100000)), writeChunkCmd(file, 0, 50, []byte("x")))
	rs := h.applyBatch(cmds...)
	for i, r := range rs[:400] {
		if err := ResultError(r); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	wantCode(t, rs[400], CodeExists)
	mustOK(t, rs[401])
	mustOK(t, rs[402])
	for i, id := range ids {
		got, err := h.s.ReadInline(ctx, id, 0, 10)
		if err != nil || string(got) != fmt.Sprint(i) {
			t.Fatalf("file %d: %q, %v", i, got, err)
		}
	}
	want := pattern(1, 100000)
	want[50] = 'x'
	if !bytes.Equal(h.readAll(file, 0), want) {
		t.Fatal("chunk differs")
	}
	if len(h.names(root)) != 200 || h.s.AppliedIndex() != h.idx {
		t.Fatal("batch not fully applied")
	}
}

func TestReopenPersistence(t *testing.T) {
	h := newHarness(t, smallConfig, func(c *Config) { c.NoSync = false }).withRoot()
	populate(t, h)
	before := dump(t, h.s)
	st1, _ := h.s.Statfs(context.Background())
	h.reopen()
	diffDumps(t, before, dump(t, h.s))
	st2, _ := h.s.Statfs(context.Background())
	if st1.Inodes != st2.Inodes || st1.Chunks != st2.Chunks || st1.ChunkBytes != st2.ChunkBytes || st2.AppliedIndex != h.idx {
		t.Fatalf("statfs before %+v after %+v", st1, st2)
	}
	if _, err := os.Stat(filepath.Join(h.cfg.Dir, dirtyFile)); err != nil {
		t.Fatal("open store has no dirty marker")
	}
	if err := h.s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.cfg.Dir, dirtyFile)); !os.IsNotExist(err) {
		t.Fatal("closed store still has a dirty marker")
	}
	if err := h.s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := h.s.GetAttr(context.Background(), root); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetAttr after Close = %v", err)
	}
	wantCode(t, h.apply(createInodeCmd(layout.NewID(), dfspb.FileType_FILE_TYPE_DIR)), CodeIO)
	s, err := Open(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
}

// populate fills a store with a bit of everything.
func populate(t testing.TB, h *harness) {
	t.Helper()
	d := h.mkdir(root, "dir")
	for i := range 20 {
		id := h.create(d, fmt.Sprintf("file%d", i))
		mustOK(t, h.apply(writeInlineCmd(id, 0, []byte(fmt.Sprintf("data %d", i)))))
		mustOK(t, h.apply(setXattrCmd(id, "user.i", fmt.Sprint(i), 0)))
	}
	big := h.create(root, "big")
	for i := range 4 {
		mustOK(t, h.apply(writeChunkCmd(big, uint64(i), 0, pattern(byte(i), h.cfg.ChunkSize-i*1000))))
	}
	mustOK(t, h.apply(cmd(&dfspb.CommitSizeCmd{Id: b(big), Size: uint64(4 * h.cfg.ChunkSize), Chunked: true})))
	mustOK(t, h.apply(writeChunkCmd(big, 1, 777, []byte("overwrite"))))
	mustOK(t, h.apply(truncChunkCmd(big, 3, 5000)))
	sym := layout.NewID()
	c := createCmd(root, "sym", sym, dfspb.FileType_FILE_TYPE_SYMLINK, true)
	c.GetCreateEntry().Attr.Target = "dir/file1"
	mustOK(t, h.apply(c))
}

// repairFrom does what a brick does after a restore: every chunk of dst
// that fails verification is repaired with src's copy. It returns how
// many were.
func repairFrom(t testing.TB, dst, src *Store) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	_, err := dst.Scrub(ctx, func(r ScrubReport) {
		info, err := dst.ChunkInfo(ctx, r.File, r.Index)
		if err != nil {
			t.Fatalf("chunk info %s.%d: %v", r.File, r.Index, err)
		}
		data, err := src.ReadChunk(ctx, r.File, r.Index, 0, int(info.Length))
		if err != nil {
			t.Fatalf("read %s.%d from the source: %v", r.File, r.Index, err)
		}
		if err := dst.RepairChunk(ctx, r.File, r.Index, data); err != nil {
			t.Fatalf("repair %s.%d: %v", r.File, r.Index, err)
		}
		n++
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

func snapshotOf(t testing.TB, s *Store) []byte {
	t.Helper()
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil || !sink.closed {
		t.Fatalf("Persist: %v (closed %v)", err, sink.closed)
	}
	return sink.Bytes()
}

func TestSnapshotRestore(t *testing.T) {
	src := newHarness(t, smallConfig).withRoot()
	populate(t, src)
	snap, err := src.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want := dump(t, src.s)
	// Changes after the snapshot of the metadata are not in it.
	src.create(root, "later")
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	data := sink.Bytes()

	dst := newHarness(t, smallConfig)
	dst.withRoot()
	dst.create(root, "to be replaced")
	var missing []int
	dst.s.cfg.OnRestore = func(n int) { missing = append(missing, n) }
	if err := dst.s.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	// The snapshot is a manifest: the chunks' data comes from another
	// member, as the brick does after OnRestore.
	if len(missing) != 1 || missing[0] != 4 {
		t.Fatalf("OnRestore got %v, want [4] (chunks to fetch)", missing)
	}
	if n := repairFrom(t, dst.s, src.s); n != 4 {
		t.Fatalf("repaired %d chunks from the source, want 4", n)
	}
	got := dump(t, dst.s)
	diffDumps(t, want, got)
	// Restoring the same state again keeps every chunk this member holds.
	if err := dst.s.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("second Restore: %v", err)
	}
	if len(missing) != 2 || missing[1] != 0 {
		t.Fatalf("OnRestore got %v after restoring what the member holds, want 0 chunks to fetch", missing)
	}
	diffDumps(t, want, dump(t, dst.s))
	if dst.s.AppliedIndex() != src.idx-1 {
		t.Fatalf("applied index = %d, want %d", dst.s.AppliedIndex(), src.idx-1)
	}
	st, _ := dst.s.Statfs(context.Background())
	if st.Inodes != 24 || st.Chunks != 4 {
		t.Fatalf("statfs after restore = %+v", st)
	}
	// The restored store works and survives a reopen.
	dst.idx = dst.s.AppliedIndex()
	dst.create(root, "after restore")
	dst.reopen()
	if len(dst.names(root)) != 4 {
		t.Fatalf("names = %v", dst.names(root))
	}
	ents, _ := os.ReadDir(dst.cfg.Dir)
	gens := 0
	for _, e := range ents {
		if e.IsDir() {
			gens++
		}
	}
	if gens != 1 {
		t.Fatalf("%d generation directories left", gens)
	}

	// A damaged stream is refused and leaves the store as it was.
	before := dump(t, dst.s)
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 1
	if err := dst.s.Restore(io.NopCloser(bytes.NewReader(bad))); err == nil {
		t.Fatal("Restore of a damaged stream succeeded")
	}
	if err := dst.s.Restore(io.NopCloser(bytes.NewReader(data[:len(data)-3]))); err == nil {
		t.Fatal("Restore of a truncated stream succeeded")
	}
	diffDumps(t, before, dump(t, dst.s))
}

// TestSnapshotChunksNewer: a chunk written between Snapshot and Persist is
// streamed as it is then; replaying the entries after the snapshot over
// the restored store converges to the source.
func TestSnapshotChunksNewer(t *testing.T) {
	src := newHarness(t, smallConfig)
	file := layout.NewID()
	mustOK(t, src.apply(writeChunkCmd(file, 0, 0, pattern(1, 20000))))
	snap, err := src.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var later []*raft.Log
	for _, c := range []*dfspb.StoreCommand{
		writeChunkCmd(file, 0, 100, []byte("after")),
		truncChunkCmd(file, 0, 9000),
		writeChunkCmd(file, 0, 30000, []byte("tail")),
		writeChunkCmd(file, 1, 0, []byte("new chunk")),
		cmd(&dfspb.DeleteChunksCmd{File: b(file), FromIndex: 1}),
		writeChunkCmd(file, 2, 5, []byte("x")),
	} {
		l := src.entry(c)
		mustOK(t, asResult(t, src.s.Apply(l)))
		later = append(later, l)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	dst := newHarness(t, smallConfig)
	if err := dst.s.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	for _, l := range later {
		mustOK(t, asResult(t, dst.s.Apply(l)))
	}
	repairFrom(t, dst.s, src.s)
	diffDumps(t, dump(t, src.s), dump(t, dst.s))
}

func TestSnapshotInvalidatedByClose(t *testing.T) {
	h := newHarness(t)
	snap, err := h.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.s.Close(); err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err == nil || !sink.cancelled {
		t.Fatalf("Persist after Close = %v", err)
	}
	snap.Release()
	s, err := Open(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
}

// TestApplyFailure: when local storage fails in the middle of a batch,
// nothing of the batch is committed, the store refuses further entries,
// and after a reopen the replayed entries apply.
func TestApplyFailure(t *testing.T) {
	h := newHarness(t, smallConfig).withRoot()
	file := layout.NewID()
	id := layout.NewID()
	logs := []*raft.Log{
		h.entry(createCmd(root, "f", id, dfspb.FileType_FILE_TYPE_FILE, true)),
		h.entry(writeChunkCmd(file, 0, 0, []byte("data"))),
	}
	chunkDir := filepath.Dir(h.s.chunkPath(file, 0))
	if err := os.RemoveAll(chunkDir); err != nil {
		t.Fatal(err)
	}
	for _, r := range h.s.ApplyBatch(logs) {
		wantCode(t, asResult(t, r), CodeIO)
	}
	if _, err := h.s.Lookup(context.Background(), root, "f"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("entry of a failed batch is visible: %v", err)
	}
	wantCode(t, h.apply(createInodeCmd(layout.NewID(), dfspb.FileType_FILE_TYPE_DIR)), CodeIO)
	if h.s.AppliedIndex() != 1 {
		t.Fatalf("applied index = %d", h.s.AppliedIndex())
	}
	if err := h.s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.cfg.Dir, dirtyFile)); err != nil {
		t.Fatal("a failed store must stay marked dirty")
	}
	if err := os.Mkdir(chunkDir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Open(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
	for _, r := range h.s.ApplyBatch(logs) {
		mustOK(t, asResult(t, r))
	}
	if got := h.readAll(file, 0); string(got) != "data" {
		t.Fatalf("chunk = %q", got)
	}
}
