package raftstore

import (
	"bytes"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

func openBlobTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// entry returns log index with data of size n derived from seed.
func entry(index uint64, n int, seed uint64) *raft.Log {
	r := rand.New(rand.NewPCG(index, seed))
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data, Extensions: []byte{byte(index)}}
}

func segments(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, blobDirName))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func mustGet(t *testing.T, s *Store, want *raft.Log) {
	t.Helper()
	var got raft.Log
	if err := s.GetLog(want.Index, &got); err != nil {
		t.Fatalf("GetLog(%d): %v", want.Index, err)
	}
	if !bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) || got.Term != want.Term {
		t.Fatalf("GetLog(%d): %d bytes of data, want %d; or extensions/term differ", want.Index, len(got.Data), len(want.Data))
	}
}

// TestBlobEntries: large entries live in segments, small ones in Pebble,
// and both read back the same, also after a reopen.
func TestBlobEntries(t *testing.T) {
	dir := t.TempDir()
	s := openBlobTest(t, dir)
	var logs []*raft.Log
	for i := uint64(1); i <= 20; i++ {
		n := 100
		if i%2 == 0 {
			n = blobThreshold + int(i)*1000
		}
		logs = append(logs, entry(i, n, 1))
	}
	if err := s.StoreLogs(logs[:7]); err != nil {
		t.Fatal(err)
	}
	for _, l := range logs[7:] {
		if err := s.StoreLog(l); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range logs {
		mustGet(t, s, l)
	}
	if segments(t, dir) != 1 {
		t.Fatalf("%d segments, want 1", segments(t, dir))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBlobTest(t, dir)
	defer s.Close()
	for _, l := range logs {
		mustGet(t, s, l)
	}
	// A reopened store writes to a new segment.
	next := entry(21, blobThreshold, 1)
	if err := s.StoreLog(next); err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, next)
	if segments(t, dir) != 2 {
		t.Fatalf("%d segments after a reopen and a write, want 2", segments(t, dir))
	}
}

// TestBlobCompaction: log compaction deletes the segments whose entries
// are all gone, and only those.
func TestBlobCompaction(t *testing.T) {
	dir := t.TempDir()
	s := openBlobTest(t, dir)
	defer s.Close()
	const n, size = 200, 1 << 20 // 200 MiB: four segments
	var logs []*raft.Log
	for i := uint64(1); i <= n; i++ {
		l := entry(i, size, 2)
		logs = append(logs, l)
		if err := s.StoreLog(l); err != nil {
			t.Fatal(err)
		}
	}
	before := segments(t, dir)
	if before < 3 {
		t.Fatalf("%d segments for %d MiB, want at least 3", before, n)
	}
	if err := s.DeleteRange(1, 150); err != nil {
		t.Fatal(err)
	}
	after := segments(t, dir)
	if after >= before || after < 1 {
		t.Fatalf("%d segments after compacting 150 of 200 entries (from %d)", after, before)
	}
	for _, l := range logs[150:] {
		mustGet(t, s, l)
	}
	var l raft.Log
	if err := s.GetLog(100, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(100) after compaction: %v", err)
	}
	if err := s.DeleteRange(1, n); err != nil {
		t.Fatal(err)
	}
	if got := segments(t, dir); got > 1 {
		t.Fatalf("%d segments with an empty log, want at most the active one", got)
	}
}

// TestBlobSuffixOverwrite: entries replaced after a suffix truncation
// read back as the new ones.
func TestBlobSuffixOverwrite(t *testing.T) {
	s := openBlobTest(t, t.TempDir())
	defer s.Close()
	for i := uint64(1); i <= 10; i++ {
		if err := s.StoreLog(entry(i, blobThreshold*2, 3)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRange(6, 10); err != nil {
		t.Fatal(err)
	}
	var repl []*raft.Log
	for i := uint64(6); i <= 8; i++ {
		repl = append(repl, entry(i, blobThreshold*3, 4))
	}
	if err := s.StoreLogs(repl); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 5; i++ {
		mustGet(t, s, entry(i, blobThreshold*2, 3))
	}
	for _, l := range repl {
		mustGet(t, s, l)
	}
	if last, _ := s.LastIndex(); last != 8 {
		t.Fatalf("LastIndex %d, want 8", last)
	}
}

// TestBlobCorruptAndStray: a flipped byte in a segment is an ErrCorrupt,
// never wrong data; a segment no entry refers to is deleted at Open.
func TestBlobCorruptAndStray(t *testing.T) {
	dir := t.TempDir()
	s := openBlobTest(t, dir)
	if err := s.StoreLog(entry(1, blobThreshold, 5)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, blobDirName, segName(1))
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[100] ^= 0xff
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(dir, blobDirName, segName(99))
	if err := os.WriteFile(stray, []byte("left by a crash"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = openBlobTest(t, dir)
	defer s.Close()
	var l raft.Log
	if err := s.GetLog(1, &l); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetLog of a corrupt blob: %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stray segment still there after Open: %v", err)
	}
}
