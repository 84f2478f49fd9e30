package raftstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openStore opens a store in dir (a fresh temp dir if empty) and closes it
// at the end of the test unless the test closed it already.
func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := Open(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// mkLog returns a deterministic entry for index, with Data derived from the
// index and term so readers can verify what they got.
func mkLog(index, term uint64) *raft.Log {
	return &raft.Log{
		Index:      index,
		Term:       term,
		Type:       raft.LogCommand,
		Data:       []byte(fmt.Sprintf("entry-%d-term-%d", index, term)),
		AppendedAt: time.Unix(1700000000, int64(index)),
	}
}

func mkLogs(lo, hi, term uint64) []*raft.Log {
	var logs []*raft.Log
	for i := lo; i <= hi; i++ {
		logs = append(logs, mkLog(i, term))
	}
	return logs
}

func equalLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

func mustStore(t testing.TB, s *Store, logs ...*raft.Log) {
	t.Helper()
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
}

// checkBounds asserts FirstIndex/LastIndex and that the cached values agree
// with what is actually in Pebble.
func checkBounds(t testing.TB, s *Store, wantFirst, wantLast uint64) {
	t.Helper()
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if first != wantFirst || last != wantLast {
		t.Fatalf("bounds = [%d, %d], want [%d, %d]", first, last, wantFirst, wantLast)
	}
	dbFirst, dbLast, err := s.scanBounds()
	if err != nil {
		t.Fatalf("scanBounds: %v", err)
	}
	if dbFirst != first || dbLast != last {
		t.Fatalf("cached bounds [%d, %d] differ from disk [%d, %d]", first, last, dbFirst, dbLast)
	}
}

// checkPresent asserts exactly which indexes in [lo, hi] are stored.
func checkPresent(t testing.TB, s *Store, lo, hi uint64, present func(uint64) bool) {
	t.Helper()
	for i := lo; i <= hi; i++ {
		var l raft.Log
		err := s.GetLog(i, &l)
		switch {
		case present(i) && err != nil:
			t.Fatalf("GetLog(%d): %v, want present", i, err)
		case !present(i) && !errors.Is(err, raft.ErrLogNotFound):
			t.Fatalf("GetLog(%d) = %v, want raft.ErrLogNotFound", i, err)
		case present(i) && l.Index != i:
			t.Fatalf("GetLog(%d) returned index %d", i, l.Index)
		}
	}
}

func TestConfig(t *testing.T) {
	def := DefaultConfig()
	if def.Logger == nil || def.NoSync || def.Dir != "" {
		t.Fatalf("DefaultConfig() = %+v", def)
	}
	if err := def.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate() with empty Dir = %v, want ErrInvalidConfig", err)
	}
	if _, err := Open(def); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Open() with empty Dir = %v, want ErrInvalidConfig", err)
	}
	cfg := Config{Dir: t.TempDir()} // nil Logger discards logs
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestEmptyStore(t *testing.T) {
	s := openStore(t, "")
	checkBounds(t, s, 0, 0)
	for _, idx := range []uint64{0, 1, 42, math.MaxUint64} {
		var l raft.Log
		if err := s.GetLog(idx, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Errorf("GetLog(%d) on empty store = %v, want raft.ErrLogNotFound", idx, err)
		}
	}
	// Deleting from an empty log is a no-op.
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatalf("DeleteRange on empty store: %v", err)
	}
	if err := s.StoreLogs(nil); err != nil {
		t.Fatalf("StoreLogs(nil): %v", err)
	}
	checkBounds(t, s, 0, 0)
}

func TestLogRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	tests := []struct {
		name string
		log  raft.Log
	}{
		{"zero values", raft.Log{Index: 1}},
		{"all fields", raft.Log{
			Index: 7, Term: 3, Type: raft.LogConfiguration,
			Data: []byte("data"), Extensions: []byte("ext"),
			AppendedAt: time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC),
		}},
		{"extensions only", raft.Log{Index: 2, Term: 1, Type: raft.LogNoop, Extensions: []byte{0, 1, 2}}},
		{"binary data with zeros", raft.Log{Index: 3, Term: 1, Data: []byte{0, 0, 0xff, 0}}},
		{"max index and term", raft.Log{Index: math.MaxUint64, Term: math.MaxUint64, Type: raft.LogBarrier}},
		{"pre-epoch time", raft.Log{Index: 4, Term: 1, AppendedAt: time.Date(1960, 1, 1, 0, 0, 0, 1, time.UTC)}},
		{"now with monotonic clock", raft.Log{Index: 5, Term: 2, AppendedAt: time.Now()}},
		{"large data", raft.Log{Index: 6, Term: 2, Data: big, Extensions: big[:1000]}},
		{"unknown type", raft.Log{Index: 8, Term: 9, Type: raft.LogType(200), Data: []byte("x")}},
	}
	s := openStore(t, "")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.log
			if err := s.StoreLog(&in); err != nil {
				t.Fatalf("StoreLog: %v", err)
			}
			var got raft.Log
			if err := s.GetLog(in.Index, &got); err != nil {
				t.Fatalf("GetLog: %v", err)
			}
			if !equalLog(&got, &tc.log) {
				t.Fatalf("round trip mismatch:\n got  %+v\n want %+v", got, tc.log)
			}
			// The decoded byte slices must be independent of each other.
			got.Data = append(got.Data, "more"...)
			if !bytes.Equal(got.Extensions, tc.log.Extensions) {
				t.Fatalf("appending to Data changed Extensions")
			}
			// The codec itself must round-trip too.
			var dec raft.Log
			if err := decodeLog(appendLog(nil, &tc.log), &dec); err != nil || !equalLog(&dec, &tc.log) {
				t.Fatalf("codec round trip: err=%v got %+v", err, dec)
			}
		})
	}
}

func TestDecodeCorrupt(t *testing.T) {
	good := appendLog(nil, &raft.Log{
		Index: 300, Term: 2, Data: []byte("hello"), Extensions: []byte("x"), AppendedAt: time.Unix(5, 6),
	})
	tests := []struct {
		name string
		val  []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{99}, good[1:]...)},
		{"unknown flags", append([]byte{codecV1, 0x80}, good[2:]...)},
		{"trailing bytes", append(append([]byte(nil), good...), 0)},
		{"bad varint", []byte{codecV1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"data length too big", appendLog(nil, &raft.Log{Index: 1, Data: []byte("abc")})[:7]},
	}
	for n := 0; n < len(good); n++ {
		tests = append(tests, struct {
			name string
			val  []byte
		}{fmt.Sprintf("truncated to %d", n), good[:n]})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l raft.Log
			if err := decodeLog(tc.val, &l); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeLog(%x) = %v, want ErrCorrupt", tc.val, err)
			}
		})
	}
}

func TestStoreLogsBatch(t *testing.T) {
	s := openStore(t, "")
	logs := mkLogs(1, 100, 1)
	mustStore(t, s, logs...)
	checkBounds(t, s, 1, 100)
	for _, want := range logs {
		var got raft.Log
		if err := s.GetLog(want.Index, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", want.Index, err)
		}
		if !equalLog(&got, want) {
			t.Fatalf("GetLog(%d) = %+v, want %+v", want.Index, got, want)
		}
	}

	// A batch after a gap (as after a snapshot restore) extends LastIndex.
	mustStore(t, s, mkLogs(200, 210, 2)...)
	checkBounds(t, s, 1, 210)
	checkPresent(t, s, 95, 215, func(i uint64) bool { return i <= 100 || (i >= 200 && i <= 210) })

	// Overwriting existing indexes replaces them and leaves the bounds.
	mustStore(t, s, mkLogs(50, 60, 3)...)
	checkBounds(t, s, 1, 210)
	var got raft.Log
	if err := s.GetLog(55, &got); err != nil || got.Term != 3 {
		t.Fatalf("GetLog(55) = %+v, %v; want term 3", got, err)
	}

	// Unordered batch: bounds follow min and max, not first and last element.
	s2 := openStore(t, "")
	mustStore(t, s2, mkLog(9, 1), mkLog(3, 1), mkLog(12, 1))
	checkBounds(t, s2, 3, 12)

	if err := s.StoreLogs([]*raft.Log{mkLog(300, 1), nil}); err == nil {
		t.Fatalf("StoreLogs with a nil entry succeeded")
	}
	checkBounds(t, s, 1, 210) // the failed batch wrote nothing
}

func TestDeleteRange(t *testing.T) {
	type op struct {
		del                 [2]uint64 // DeleteRange(del[0], del[1]) when store is nil
		store               [3]uint64 // StoreLogs(mkLogs(lo, hi, term)) when non-zero
		wantFirst, wantLast uint64
	}
	del := func(lo, hi, first, last uint64) op {
		return op{del: [2]uint64{lo, hi}, wantFirst: first, wantLast: last}
	}
	put := func(lo, hi, term, first, last uint64) op {
		return op{store: [3]uint64{lo, hi, term}, wantFirst: first, wantLast: last}
	}
	tests := []struct {
		name    string
		ops     []op
		present func(uint64) bool // over [0, 30] after the ops
	}{
		{"prefix truncation (compaction)", []op{del(1, 5, 6, 10)},
			func(i uint64) bool { return i >= 6 && i <= 10 }},
		{"suffix truncation (conflict)", []op{del(6, 10, 1, 5)},
			func(i uint64) bool { return i >= 1 && i <= 5 }},
		{"max is inclusive", []op{del(10, 10, 1, 9)},
			func(i uint64) bool { return i >= 1 && i <= 9 }},
		{"single first entry", []op{del(1, 1, 2, 10)},
			func(i uint64) bool { return i >= 2 && i <= 10 }},
		{"middle hole keeps bounds", []op{del(4, 6, 1, 10)},
			func(i uint64) bool { return (i >= 1 && i <= 3) || (i >= 7 && i <= 10) }},
		{"everything", []op{del(1, 10, 0, 0)}, func(uint64) bool { return false }},
		{"superset to MaxUint64", []op{del(0, math.MaxUint64, 0, 0)}, func(uint64) bool { return false }},
		{"beyond the end is a no-op", []op{del(11, 20, 1, 10)},
			func(i uint64) bool { return i >= 1 && i <= 10 }},
		{"min greater than max is a no-op", []op{del(8, 3, 1, 10)},
			func(i uint64) bool { return i >= 1 && i <= 10 }},
		{"overlapping the start", []op{del(0, 3, 4, 10)},
			func(i uint64) bool { return i >= 4 && i <= 10 }},
		{"hole then prefix over the hole", []op{del(3, 6, 1, 10), del(1, 4, 7, 10)},
			func(i uint64) bool { return i >= 7 && i <= 10 }},
		{"hole then suffix down to the hole", []op{del(3, 6, 1, 10), del(8, 10, 1, 7)},
			func(i uint64) bool { return (i >= 1 && i <= 2) || i == 7 }},
		{"raft follower conflict then compaction", []op{
			del(8, 10, 1, 7),       // leader's entries from 8 differ
			put(8, 12, 2, 1, 12),   // new term's entries
			del(1, 5, 6, 12),       // snapshot compaction
			put(13, 15, 2, 6, 15),  // more appends
			del(6, 15, 0, 0),       // snapshot install removes all
			put(20, 22, 3, 20, 22), // log restarts after the snapshot
		}, func(i uint64) bool { return i >= 20 && i <= 22 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			mustStore(t, s, mkLogs(1, 10, 1)...)
			for _, o := range tc.ops {
				if o.store[0] != 0 {
					mustStore(t, s, mkLogs(o.store[0], o.store[1], o.store[2])...)
				} else if err := s.DeleteRange(o.del[0], o.del[1]); err != nil {
					t.Fatalf("DeleteRange(%d, %d): %v", o.del[0], o.del[1], err)
				}
				checkBounds(t, s, o.wantFirst, o.wantLast)
			}
			checkPresent(t, s, 0, 30, tc.present)

			// The same state must come back after a reopen.
			last := tc.ops[len(tc.ops)-1]
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			s = openStore(t, dir)
			checkBounds(t, s, last.wantFirst, last.wantLast)
			checkPresent(t, s, 0, 30, tc.present)
		})
	}

	t.Run("index MaxUint64", func(t *testing.T) {
		s := openStore(t, "")
		mustStore(t, s, mkLog(math.MaxUint64-1, 1), mkLog(math.MaxUint64, 1))
		checkBounds(t, s, math.MaxUint64-1, math.MaxUint64)
		if err := s.DeleteRange(math.MaxUint64, math.MaxUint64); err != nil {
			t.Fatalf("DeleteRange: %v", err)
		}
		checkBounds(t, s, math.MaxUint64-1, math.MaxUint64-1)
	})

	t.Run("stable keys are untouched", func(t *testing.T) {
		s := openStore(t, "")
		mustStore(t, s, mkLogs(1, 5, 1)...)
		if err := s.SetUint64([]byte("CurrentTerm"), 5); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRange(0, math.MaxUint64); err != nil {
			t.Fatal(err)
		}
		if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 5 {
			t.Fatalf("GetUint64 after DeleteRange = %d, %v; want 5", v, err)
		}
		checkBounds(t, s, 0, 0)
	})
}

func TestReopenPersistence(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	logs := mkLogs(1, 50, 4)
	logs[10].Extensions = []byte("ext")
	logs[11].Type = raft.LogConfiguration
	mustStore(t, s, logs...)
	if err := s.DeleteRange(1, 9); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 4); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openStore(t, dir)
	checkBounds(t, s, 10, 50)
	for _, want := range logs[9:] {
		var got raft.Log
		if err := s.GetLog(want.Index, &got); err != nil || !equalLog(&got, want) {
			t.Fatalf("GetLog(%d) after reopen = %+v, %v; want %+v", want.Index, got, err, want)
		}
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 4 {
		t.Fatalf("GetUint64(CurrentTerm) after reopen = %d, %v", v, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-2" {
		t.Fatalf("Get(LastVoteCand) after reopen = %q, %v", v, err)
	}
	// The reopened store keeps working.
	mustStore(t, s, mkLogs(51, 60, 5)...)
	checkBounds(t, s, 10, 60)
}

func TestStable(t *testing.T) {
	s := openStore(t, "")
	tests := []struct {
		name string
		key  []byte
		val  []byte // nil: do not Set before Get
		want []byte
	}{
		{"missing key", []byte("missing"), nil, nil},
		{"simple", []byte("k"), []byte("v"), []byte("v")},
		{"empty value", []byte("empty"), []byte{}, nil},
		{"binary key and value", []byte{0, 'l', 0xff}, []byte{0, 1, 2, 0}, []byte{0, 1, 2, 0}},
		{"empty key", []byte{}, []byte("root"), []byte("root")},
		{"key shaped like a log key", append([]byte{prefixLog}, make([]byte, 8)...), []byte("x"), []byte("x")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.val != nil {
				if err := s.Set(tc.key, tc.val); err != nil {
					t.Fatalf("Set: %v", err)
				}
			}
			got, err := s.Get(tc.key)
			if err != nil {
				t.Fatalf("Get(%q) error = %v, want nil", tc.key, err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("Get(%q) = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
	checkBounds(t, s, 0, 0) // stable keys never show up as log entries

	t.Run("uint64", func(t *testing.T) {
		if v, err := s.GetUint64([]byte("no-such-key")); err != nil || v != 0 {
			t.Fatalf("GetUint64(missing) = %d, %v; want 0, nil", v, err)
		}
		for _, v := range []uint64{0, 1, 1 << 40, math.MaxUint64} {
			if err := s.SetUint64([]byte("term"), v); err != nil {
				t.Fatalf("SetUint64: %v", err)
			}
			if got, err := s.GetUint64([]byte("term")); err != nil || got != v {
				t.Fatalf("GetUint64 = %d, %v; want %d", got, err, v)
			}
		}
		if _, err := s.GetUint64([]byte("k")); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("GetUint64 of a 1-byte value = %v, want ErrCorrupt", err)
		}
	})

	t.Run("returned value is a copy", func(t *testing.T) {
		v, _ := s.Get([]byte("k"))
		v[0] = 'X'
		if again, _ := s.Get([]byte("k")); string(again) != "v" {
			t.Fatalf("mutating a returned value changed the store: %q", again)
		}
	})
}

func TestClosed(t *testing.T) {
	s := openStore(t, "")
	mustStore(t, s, mkLog(1, 1))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var l raft.Log
	calls := map[string]func() error{
		"FirstIndex":  func() error { _, err := s.FirstIndex(); return err },
		"LastIndex":   func() error { _, err := s.LastIndex(); return err },
		"GetLog":      func() error { return s.GetLog(1, &l) },
		"StoreLog":    func() error { return s.StoreLog(mkLog(2, 1)) },
		"StoreLogs":   func() error { return s.StoreLogs(mkLogs(2, 3, 1)) },
		"DeleteRange": func() error { return s.DeleteRange(1, 1) },
		"Set":         func() error { return s.Set([]byte("k"), []byte("v")) },
		"Get":         func() error { _, err := s.Get([]byte("k")); return err },
		"SetUint64":   func() error { return s.SetUint64([]byte("k"), 1) },
		"GetUint64":   func() error { _, err := s.GetUint64([]byte("k")); return err },
		"Close":       s.Close,
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if !strings.HasPrefix(ErrClosed.Error(), "raftstore: ") {
		t.Errorf("ErrClosed = %q, want raftstore: prefix", ErrClosed)
	}
}

// TestConcurrency has one goroutine appending and compacting like raft's
// main loop and snapshot goroutine, while readers check that every entry
// they can read is correct and that LastIndex never goes backwards.
func TestConcurrency(t *testing.T) {
	s := openStore(t, "")
	const (
		batches   = 150
		batchSize = 8
		keep      = 64 // entries kept behind each compaction
		readers   = 6
	)
	mustStore(t, s, mkLogs(1, batchSize, 1)...)

	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, readers+1)

	wg.Add(1)
	go func() { // writer
		defer wg.Done()
		defer done.Store(true)
		next := uint64(batchSize + 1)
		for b := 0; b < batches; b++ {
			if err := s.StoreLogs(mkLogs(next, next+batchSize-1, 1)); err != nil {
				errs <- err
				return
			}
			next += batchSize
			if b%10 == 9 && next > keep {
				if err := s.DeleteRange(1, next-keep); err != nil {
					errs <- err
					return
				}
			}
			if err := s.SetUint64([]byte("CurrentTerm"), uint64(b)); err != nil {
				errs <- err
				return
			}
		}
	}()

	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var prevLast uint64
			var l raft.Log
			for reads := 0; !done.Load() || reads < 100; reads++ {
				first, err1 := s.FirstIndex()
				last, err2 := s.LastIndex()
				if err := errors.Join(err1, err2); err != nil {
					errs <- err
					return
				}
				if last < prevLast {
					errs <- fmt.Errorf("LastIndex went backwards: %d -> %d", prevLast, last)
					return
				}
				prevLast = last
				for _, idx := range []uint64{first, last, (first + last) / 2} {
					err := s.GetLog(idx, &l)
					if errors.Is(err, raft.ErrLogNotFound) {
						// Compacted between the bounds read and the get; the
						// cache must already reflect that.
						if f, _ := s.FirstIndex(); f <= idx {
							errs <- fmt.Errorf("GetLog(%d) not found but FirstIndex is still %d", idx, f)
							return
						}
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					if want := mkLog(idx, 1); !equalLog(&l, want) {
						errs <- fmt.Errorf("GetLog(%d) = %+v, want %+v", idx, l, want)
						return
					}
				}
				if _, err := s.GetUint64([]byte("CurrentTerm")); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := uint64((batches + 1) * batchSize)
	last, _ := s.LastIndex()
	if last != total {
		t.Fatalf("LastIndex = %d, want %d", last, total)
	}
	first, _, _ := s.scanBounds()
	checkBounds(t, s, first, total)
}

// TestCloseWhileBusy closes the store under concurrent readers and writers:
// every call must either succeed or fail with ErrClosed, never panic.
func TestCloseWhileBusy(t *testing.T) {
	s := openStore(t, "")
	mustStore(t, s, mkLogs(1, 10, 1)...)
	var wg sync.WaitGroup
	var calls atomic.Int64
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var l raft.Log
			for i := uint64(11 + g*100000); ; i++ {
				var err error
				if g%2 == 0 {
					err = s.StoreLog(mkLog(i, 1))
				} else if err = s.GetLog(5, &l); err == nil {
					_, err = s.Get([]byte("k"))
				}
				calls.Add(1)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 200 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// recordingHandler is a slog.Handler that keeps every record's level and
// subsystem attribute.
type recordingHandler struct {
	mu      *sync.Mutex
	attrs   []slog.Attr
	records *[]string
}

func (h recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return h
}
func (h recordingHandler) Handle(_ context.Context, r slog.Record) error {
	sub := ""
	for _, a := range h.attrs {
		if a.Key == "subsystem" {
			sub = a.Value.String()
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.records = append(*h.records, fmt.Sprintf("%s %s %s", r.Level, sub, r.Message))
	return nil
}

// TestPebbleLogsAtDebug checks Pebble's routine messages (WAL recovery on
// open, flushes) reach the slog logger at Debug, not Info.
func TestPebbleLogsAtDebug(t *testing.T) {
	var records []string
	logger := slog.New(recordingHandler{mu: &sync.Mutex{}, records: &records})
	dir := t.TempDir()
	for i := 0; i < 2; i++ { // the second open replays the first one's WAL
		s, err := Open(Config{Dir: dir, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		mustStore(t, s, mkLogs(1, 100, 1)...)
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	pebbleDebug := 0
	for _, r := range records {
		if !strings.HasPrefix(r, "DEBUG ") {
			t.Errorf("non-debug log record: %s", r)
		}
		if strings.HasPrefix(r, "DEBUG pebble ") {
			pebbleDebug++
		}
	}
	if pebbleDebug == 0 {
		t.Errorf("no Pebble messages were logged at Debug; got %q", records)
	}
}

// BenchmarkStoreLogs measures appending 256-byte entries one at a time and
// in batches of 16, with and without fsync, and reports entries/s.
func BenchmarkStoreLogs(b *testing.B) {
	for _, synced := range []bool{true, false} {
		for _, batch := range []int{1, 16} {
			b.Run(fmt.Sprintf("batch=%d/sync=%t", batch, synced), func(b *testing.B) {
				s, err := Open(Config{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler), NoSync: !synced})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				data := bytes.Repeat([]byte{'x'}, 256)
				logs := make([]*raft.Log, batch)
				for i := range logs {
					logs[i] = &raft.Log{Term: 1, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}
				}
				b.SetBytes(int64(batch * len(data)))
				b.ReportAllocs()
				next := uint64(1)
				for b.Loop() {
					for _, l := range logs {
						l.Index = next
						next++
					}
					if err := s.StoreLogs(logs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(next-1)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

// BenchmarkStoreLogsChunks stores 1 MiB entries (chunk writes) one at a
// time, synced, and compacts the log as Raft does (keep the last 1,024
// entries every 1,024): the shape of a sequential file write.
func BenchmarkStoreLogsChunks(b *testing.B) {
	s, err := Open(Config{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 1<<20) // file data: incompressible
	for i := range data {
		data[i] = byte(i*7919 ^ i>>8*31 ^ i>>16*131)
	}
	l := &raft.Log{Term: 1, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}
	b.SetBytes(int64(len(data)))
	next := uint64(1)
	for b.Loop() {
		l.Index = next
		if err := s.StoreLogs([]*raft.Log{l}); err != nil {
			b.Fatal(err)
		}
		if next%1024 == 0 && next > 1024 {
			if err := s.DeleteRange(1, next-1024); err != nil {
				b.Fatal(err)
			}
		}
		next++
	}
}
