package store

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// tWriter routes log output to t.Log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// smallConfig makes chunk arithmetic easy to exercise: 4 KiB blocks,
// 64 KiB chunks, 4 KiB inline.
func smallConfig(c *Config) {
	c.BlockSize = 4 << 10
	c.ChunkSize = 64 << 10
	c.InlineMax = 4 << 10
}

// harness drives one store with increasing Raft indexes and times.
type harness struct {
	t   testing.TB
	s   *Store
	cfg Config
	idx uint64
	now int64
}

func newHarness(t testing.TB, mods ...func(*Config)) *harness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Logger = testLogger(t)
	cfg.NoSync = true
	for _, m := range mods {
		m(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	h := &harness{t: t, s: s, cfg: cfg, now: 1_700_000_000_000_000_000}
	t.Cleanup(func() { _ = h.s.Close() })
	return h
}

// withRoot creates the root directory inode.
func (h *harness) withRoot() *harness {
	h.t.Helper()
	mustOK(h.t, h.apply(createInodeCmd(layout.RootID, dfspb.FileType_FILE_TYPE_DIR)))
	return h
}

// openUnclean opens the (closed) store again as after a crash: with the
// dirty marker an unclean stop leaves.
func (h *harness) openUnclean() {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.cfg.Dir, dirtyFile), nil, 0o644); err != nil {
		h.t.Fatal(err)
	}
	s, err := Open(h.cfg)
	if err != nil {
		h.t.Fatalf("reopen after a crash: %v", err)
	}
	h.s = s
}

func (h *harness) reopen() {
	h.t.Helper()
	if err := h.s.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
	s, err := Open(h.cfg)
	if err != nil {
		h.t.Fatalf("reopen: %v", err)
	}
	h.s = s
}

func (h *harness) entry(cmd *dfspb.StoreCommand) *raft.Log {
	h.t.Helper()
	h.idx++
	h.now += 1000
	cmd.NowNs = h.now
	data, err := EncodeCommand(cmd)
	if err != nil {
		h.t.Fatal(err)
	}
	return &raft.Log{Index: h.idx, Term: 1, Type: raft.LogCommand, Data: data}
}

func (h *harness) apply(cmd *dfspb.StoreCommand) *dfspb.StoreResult {
	h.t.Helper()
	return asResult(h.t, h.s.Apply(h.entry(cmd)))
}

func (h *harness) applyBatch(cmds ...*dfspb.StoreCommand) []*dfspb.StoreResult {
	h.t.Helper()
	logs := make([]*raft.Log, len(cmds))
	for i, c := range cmds {
		logs[i] = h.entry(c)
	}
	out := h.s.ApplyBatch(logs)
	res := make([]*dfspb.StoreResult, len(out))
	for i, r := range out {
		res[i] = asResult(h.t, r)
	}
	return res
}

func asResult(t testing.TB, v any) *dfspb.StoreResult {
	t.Helper()
	r, ok := v.(*dfspb.StoreResult)
	if !ok || r == nil {
		t.Fatalf("apply returned %T %v, want *dfspb.StoreResult", v, v)
	}
	return r
}

func mustOK(t testing.TB, r *dfspb.StoreResult) *dfspb.StoreResult {
	t.Helper()
	if err := ResultError(r); err != nil {
		t.Fatalf("command failed: %v", err)
	}
	return r
}

func wantCode(t testing.TB, r *dfspb.StoreResult, want ErrorCode) {
	t.Helper()
	if got := ErrorCode(r.GetCode()); got != want {
		t.Fatalf("code = %v (%s), want %v", got, r.GetMessage(), want)
	}
}

// create makes a regular file in parent and returns its id.
func (h *harness) create(parent layout.ID, name string) layout.ID {
	h.t.Helper()
	id := layout.NewID()
	mustOK(h.t, h.apply(createCmd(parent, name, id, dfspb.FileType_FILE_TYPE_FILE, true)))
	return id
}

// mkdir makes a directory whose inode is in this store too.
func (h *harness) mkdir(parent layout.ID, name string) layout.ID {
	h.t.Helper()
	id := layout.NewID()
	mustOK(h.t, h.apply(createInodeCmd(id, dfspb.FileType_FILE_TYPE_DIR)))
	mustOK(h.t, h.apply(linkCmd(parent, name, id, dfspb.FileType_FILE_TYPE_DIR, id, true)))
	return id
}

func (h *harness) attr(id layout.ID) *dfspb.Attr {
	h.t.Helper()
	a, err := h.s.GetAttr(context.Background(), id)
	if err != nil {
		h.t.Fatalf("GetAttr(%s): %v", id, err)
	}
	return a
}

func (h *harness) names(dir layout.ID) []string {
	h.t.Helper()
	ents, eof, err := h.s.ReadDir(context.Background(), dir, "", 0)
	if err != nil || !eof {
		h.t.Fatalf("ReadDir: %v", err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name)
	}
	return out
}

// ---- command builders -------------------------------------------------------

func cmd(op any) *dfspb.StoreCommand {
	c := &dfspb.StoreCommand{}
	switch o := op.(type) {
	case *dfspb.CreateEntryCmd:
		c.Op = &dfspb.StoreCommand_CreateEntry{CreateEntry: o}
	case *dfspb.CreateInodeCmd:
		c.Op = &dfspb.StoreCommand_CreateInode{CreateInode: o}
	case *dfspb.LinkCmd:
		c.Op = &dfspb.StoreCommand_Link{Link: o}
	case *dfspb.UnlinkCmd:
		c.Op = &dfspb.StoreCommand_Unlink{Unlink: o}
	case *dfspb.SealDirCmd:
		c.Op = &dfspb.StoreCommand_SealDir{SealDir: o}
	case *dfspb.UnsealDirCmd:
		c.Op = &dfspb.StoreCommand_UnsealDir{UnsealDir: o}
	case *dfspb.DropInodeCmd:
		c.Op = &dfspb.StoreCommand_DropInode{DropInode: o}
	case *dfspb.AdjustLinkCmd:
		c.Op = &dfspb.StoreCommand_AdjustLink{AdjustLink: o}
	case *dfspb.AppendReserveCmd:
		c.Op = &dfspb.StoreCommand_AppendReserve{AppendReserve: o}
	case *dfspb.RenameCmd:
		c.Op = &dfspb.StoreCommand_Rename{Rename: o}
	case *dfspb.SetAttrCmd:
		c.Op = &dfspb.StoreCommand_SetAttr{SetAttr: o}
	case *dfspb.WriteInlineCmd:
		c.Op = &dfspb.StoreCommand_WriteInline{WriteInline: o}
	case *dfspb.CommitSizeCmd:
		c.Op = &dfspb.StoreCommand_CommitSize{CommitSize: o}
	case *dfspb.WriteChunkCmd:
		c.Op = &dfspb.StoreCommand_WriteChunk{WriteChunk: o}
	case *dfspb.TruncateChunkCmd:
		c.Op = &dfspb.StoreCommand_TruncateChunk{TruncateChunk: o}
	case *dfspb.DeleteChunksCmd:
		c.Op = &dfspb.StoreCommand_DeleteChunks{DeleteChunks: o}
	case *dfspb.SetXattrCmd:
		c.Op = &dfspb.StoreCommand_SetXattr{SetXattr: o}
	case *dfspb.RemoveXattrCmd:
		c.Op = &dfspb.StoreCommand_RemoveXattr{RemoveXattr: o}
	default:
		panic("unknown op")
	}
	return c
}

func b(id layout.ID) []byte { return id[:] }

func createCmd(parent layout.ID, name string, id layout.ID, typ dfspb.FileType, excl bool) *dfspb.StoreCommand {
	return cmd(&dfspb.CreateEntryCmd{Parent: b(parent), Name: name, Exclusive: excl,
		Attr: &dfspb.Attr{Id: b(id), Type: typ, Mode: 0o644, Uid: 1000, Gid: 1000}})
}

func createInodeCmd(id layout.ID, typ dfspb.FileType) *dfspb.StoreCommand {
	return cmd(&dfspb.CreateInodeCmd{Attr: &dfspb.Attr{Id: b(id), Type: typ, Mode: 0o755}})
}

func linkCmd(parent layout.ID, name string, child layout.ID, typ dfspb.FileType, locator layout.ID, excl bool) *dfspb.StoreCommand {
	return cmd(&dfspb.LinkCmd{Parent: b(parent), Name: name, Child: b(child), ChildType: typ, Locator: b(locator), Exclusive: excl})
}

func unlinkCmd(parent layout.ID, name string, dir bool) *dfspb.StoreCommand {
	return cmd(&dfspb.UnlinkCmd{Parent: b(parent), Name: name, ExpectDir: dir})
}

func renameCmd(op layout.ID, on string, np layout.ID, nn string, flags uint32) *dfspb.StoreCommand {
	return cmd(&dfspb.RenameCmd{OldParent: b(op), OldName: on, NewParent: b(np), NewName: nn, Flags: flags})
}

func setSizeCmd(id layout.ID, size uint64) *dfspb.StoreCommand {
	return cmd(&dfspb.SetAttrCmd{Id: b(id), Mask: maskSize, Size: size})
}

func writeInlineCmd(id layout.ID, off uint64, data []byte) *dfspb.StoreCommand {
	return cmd(&dfspb.WriteInlineCmd{Id: b(id), Offset: off, Data: data})
}

func writeChunkCmd(file layout.ID, index uint64, off int, data []byte) *dfspb.StoreCommand {
	return cmd(&dfspb.WriteChunkCmd{File: b(file), Index: index, Offset: uint32(off), Data: data})
}

func truncChunkCmd(file layout.ID, index uint64, length int) *dfspb.StoreCommand {
	return cmd(&dfspb.TruncateChunkCmd{File: b(file), Index: index, Length: uint32(length)})
}

func setXattrCmd(id layout.ID, name, value string, flags uint32) *dfspb.StoreCommand {
	return cmd(&dfspb.SetXattrCmd{Id: b(id), Name: name, Value: []byte(value), Flags: flags})
}

// ---- whole-store comparison --------------------------------------------------

// dump returns every Pebble key and value of the store plus the bytes of
// every chunk file (as "file:" + key), for comparing stores.
func dump(t testing.TB, s *Store) map[string]string {
	t.Helper()
	if err := s.rlock(); err != nil {
		t.Fatal(err)
	}
	defer s.mu.RUnlock()
	it, err := s.db.NewIter(&pebble.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := make(map[string]string)
	for ok := it.First(); ok; ok = it.Next() {
		out[string(it.Key())] = string(it.Value())
		if file, idx, isChunk := parseChunkKey(it.Key()); isChunk {
			data, err := os.ReadFile(s.chunkPath(file, idx))
			if err != nil {
				t.Fatal(err)
			}
			out["file:"+string(it.Key())] = string(data)
		}
	}
	return out
}

func diffDumps(t testing.TB, a, b map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			diffs = append(diffs, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diffs = append(diffs, k)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("stores differ in %d keys, first %q", len(diffs), diffs[0])
	}
}
