package layout

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
)

// mustNew is New for arguments known to be valid.
func mustNew(t testing.TB, partitions, subvolumes int) *Layout {
	t.Helper()
	l, err := New("vol", partitions, subvolumes)
	if err != nil {
		t.Fatalf("New(%d, %d): %v", partitions, subvolumes, err)
	}
	return l
}

// randID draws a deterministic pseudo-random id from r.
func randID(r *rand.Rand) ID {
	var id ID
	for i := 0; i < 16; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			id[i+j] = byte(v >> (8 * j))
		}
	}
	return id
}

func TestNew(t *testing.T) {
	tests := []struct {
		name       string
		volume     string
		partitions int
		subvolumes int
		err        error
	}{
		{"min", "v", 16, 1, nil},
		{"default", "v", DefaultPartitions, 3, nil},
		{"max", "v", 65536, 7, nil},
		{"one partition per subvolume", "v", 16, 16, nil},
		{"max subvolumes", "v", 65536, 65536, nil},
		{"empty volume id", "", 1024, 2, ErrInvalidVolumeID},
		{"zero partitions", "v", 0, 1, ErrInvalidPartitions},
		{"negative partitions", "v", -1024, 1, ErrInvalidPartitions},
		{"too few partitions", "v", 8, 1, ErrInvalidPartitions},
		{"too many partitions", "v", 131072, 1, ErrInvalidPartitions},
		{"not a power of two", "v", 1000, 1, ErrInvalidPartitions},
		{"not a power of two 2", "v", 48, 3, ErrInvalidPartitions},
		{"zero subvolumes", "v", 1024, 0, ErrInvalidSubvolumes},
		{"negative subvolumes", "v", 1024, -2, ErrInvalidSubvolumes},
		{"more subvolumes than partitions", "v", 16, 17, ErrInvalidSubvolumes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(tt.volume, tt.partitions, tt.subvolumes)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || l != nil {
					t.Fatalf("New = %v, %v; want nil, %v", l, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if err := l.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if l.VolumeID != tt.volume || l.Version != 1 || l.Subvolumes != tt.subvolumes || len(l.Partitions) != tt.partitions {
				t.Fatalf("New = {%q v%d %d subvolumes %d partitions}", l.VolumeID, l.Version, l.Subvolumes, len(l.Partitions))
			}
		})
	}
}

func TestNewAssignsEveryPartition(t *testing.T) {
	for _, partitions := range []int{16, 1024, 65536} {
		for _, subvolumes := range []int{1, 2, 3, 4, 5, 6, 7, 8, 13, 16} {
			l := mustNew(t, partitions, subvolumes)
			counts := l.Counts()
			total := 0
			for s, c := range counts {
				total += c
				if c != partitions/subvolumes && c != partitions/subvolumes+1 {
					t.Errorf("%d/%d: subvolume %d has %d partitions", partitions, subvolumes, s, c)
				}
				if len(l.PartitionsOf(s)) != c {
					t.Errorf("%d/%d: PartitionsOf(%d) has %d entries, want %d", partitions, subvolumes, s, len(l.PartitionsOf(s)), c)
				}
			}
			if total != partitions {
				t.Errorf("%d/%d: %d partitions assigned", partitions, subvolumes, total)
			}
			if !l.IsBalanced() {
				t.Errorf("%d/%d: not balanced: %v", partitions, subvolumes, counts)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(l *Layout)
		err    error
	}{
		{"valid", func(l *Layout) {}, nil},
		{"unbalanced is valid", func(l *Layout) { l.Partitions[1] = 0 }, nil},
		{"empty volume", func(l *Layout) { l.VolumeID = "" }, ErrInvalidVolumeID},
		{"version 0", func(l *Layout) { l.Version = 0 }, ErrInvalidVersion},
		{"no partitions", func(l *Layout) { l.Partitions = nil }, ErrInvalidPartitions},
		{"odd partitions", func(l *Layout) { l.Partitions = l.Partitions[:17] }, ErrInvalidPartitions},
		{"zero subvolumes", func(l *Layout) { l.Subvolumes = 0 }, ErrInvalidSubvolumes},
		{"too many subvolumes", func(l *Layout) { l.Subvolumes = 33 }, ErrInvalidSubvolumes},
		{"negative assignment", func(l *Layout) { l.Partitions[5] = -1 }, ErrInvalidAssignment},
		{"assignment too high", func(l *Layout) { l.Partitions[31] = 4 }, ErrInvalidAssignment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustNew(t, 32, 4)
			tt.mutate(l)
			err := l.Validate()
			if tt.err == nil && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Fatalf("Validate = %v, want %v", err, tt.err)
			}
		})
	}
	var nilLayout *Layout
	if nilLayout.Validate() == nil {
		t.Fatal("nil layout validated")
	}
	if (&Layout{}).Validate() == nil {
		t.Fatal("zero layout validated")
	}
}

func TestLayoutJSON(t *testing.T) {
	l := mustNew(t, 16, 3)
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"volume_id":"vol","version":1,"partitions":[0,1,2,0,1,2,0,1,2,0,1,2,0,1,2,0],"subvolumes":3}`
	if string(b) != want {
		t.Fatalf("json = %s, want %s", b, want)
	}
	var got Layout
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	if got.VolumeID != l.VolumeID || got.Version != l.Version || got.Subvolumes != l.Subvolumes {
		t.Fatalf("round trip = %+v", got)
	}
	for p := range l.Partitions {
		if got.Partitions[p] != l.Partitions[p] {
			t.Fatalf("round trip partition %d = %d", p, got.Partitions[p])
		}
	}
}

func TestClone(t *testing.T) {
	l := mustNew(t, 16, 2)
	c := l.Clone()
	c.Partitions[0] = 1
	if l.Partitions[0] != 0 {
		t.Fatal("Clone shares Partitions")
	}
}

// Spread bounds, for 1024 partitions and 100,000 keys:
//   - every subvolume holds within spreadBound (5%) of the mean number of
//     keys per subvolume (the partition imbalance alone is at most 1/170 for
//     6 subvolumes, and one standard deviation of the key count is below 1%
//     for 8 subvolumes);
//   - the chi-square statistic of the per-partition key counts (1023 degrees
//     of freedom, mean 1023, standard deviation 45) is below chiSquareBound,
//     about five standard deviations above the mean.
const (
	spreadPartitions = 1024
	spreadKeys       = 100000
	spreadBound      = 0.05
	chiSquareBound   = 1250
)

// keySet generates spreadKeys keys and returns the partition of each.
type keySet struct {
	name string
	gen  func(l *Layout, visit func(p int))
}

func spreadKeySets() []keySet {
	return []keySet{
		{"random dirs", func(l *Layout, visit func(int)) {
			r := rand.New(rand.NewPCG(1, 2))
			for range spreadKeys {
				visit(l.PartitionOfDir(randID(r)))
			}
		}},
		{"sequential dirs", func(l *Layout, visit func(int)) {
			for i := range spreadKeys {
				id := RootID
				id[14], id[15] = byte(i>>8), byte(i)
				id[13] = byte(i >> 16)
				visit(l.PartitionOfDir(id))
			}
		}},
		{"1000 files x 100 chunks", func(l *Layout, visit func(int)) {
			r := rand.New(rand.NewPCG(3, 4))
			for range spreadKeys / 100 {
				f := randID(r)
				for c := range uint64(100) {
					visit(l.PartitionOfChunk(f, c))
				}
			}
		}},
		{"root dir 100000 chunks", func(l *Layout, visit func(int)) {
			for c := range uint64(spreadKeys) {
				visit(l.PartitionOfChunk(RootID, c))
			}
		}},
	}
}

func TestSpread(t *testing.T) {
	type named struct {
		name string
		l    *Layout
	}
	var layouts []named
	for _, n := range []int{1, 2, 3, 4, 6, 8} {
		layouts = append(layouts, named{"new " + strconv.Itoa(n), mustNew(t, spreadPartitions, n)})
	}
	for _, from := range [][2]int{{3, 4}, {4, 6}, {6, 8}} {
		_, next := mustNew(t, spreadPartitions, from[0]).Rebalance(from[1])
		layouts = append(layouts, named{"rebalanced " + strconv.Itoa(from[0]) + "->" + strconv.Itoa(from[1]), next})
	}
	for _, ks := range spreadKeySets() {
		for _, lt := range layouts {
			t.Run(ks.name+"/"+lt.name, func(t *testing.T) {
				l := lt.l
				perPartition := make([]int, len(l.Partitions))
				perSubvolume := make([]int, l.Subvolumes)
				ks.gen(l, func(p int) {
					perPartition[p]++
					perSubvolume[l.Partitions[p]]++
				})
				mean := float64(spreadKeys) / float64(l.Subvolumes)
				lo, hi := perSubvolume[0], perSubvolume[0]
				for _, c := range perSubvolume {
					lo, hi = min(lo, c), max(hi, c)
				}
				devHi, devLo := (float64(hi)-mean)/mean, (mean-float64(lo))/mean
				pmean := float64(spreadKeys) / float64(len(perPartition))
				chi := 0.0
				for _, c := range perPartition {
					d := float64(c) - pmean
					chi += d * d / pmean
				}
				t.Logf("mean %.0f fullest %d (+%.2f%%) emptiest %d (-%.2f%%) chi2 %.0f",
					mean, hi, 100*devHi, lo, 100*devLo, chi)
				if devHi > spreadBound || devLo > spreadBound {
					t.Errorf("subvolume counts %v outside %.0f%% of mean %.0f", perSubvolume, 100*spreadBound, mean)
				}
				if chi > chiSquareBound {
					t.Errorf("chi-square over partitions %.0f > %d", chi, chiSquareBound)
				}
			})
		}
	}
}

// TestConsecutiveChunks checks striping: 64 consecutive chunks of one file
// over 4 subvolumes touch all 4, for many files and starting chunks.
func TestConsecutiveChunks(t *testing.T) {
	l := mustNew(t, DefaultPartitions, 4)
	r := rand.New(rand.NewPCG(5, 6))
	files := []ID{RootID, {}}
	for range 1000 {
		files = append(files, randID(r))
	}
	for _, f := range files {
		for _, start := range []uint64{0, 64, 1 << 20, 1<<64 - 64} {
			var seen [4]int
			for i := range uint64(64) {
				seen[l.SubvolumeOfChunk(f, start+i)]++
			}
			for s, n := range seen {
				if n == 0 {
					t.Fatalf("file %s chunks %d..%d miss subvolume %d: %v", f, start, start+63, s, seen)
				}
			}
		}
	}
}

// TestGolden pins the placement hash. If this test fails, the hash changed
// and every existing volume would lose its data: do not update the values,
// restore the hash.
func TestGolden(t *testing.T) {
	seq := ID{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	ff := ID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	l := mustNew(t, 1024, 4)
	dirs := []struct {
		id        ID
		hash      uint64
		partition int
	}{
		{RootID, 0x1af7b85a5eef58e4, 228},
		{ID{}, 0x68752350ae1d483f, 63},
		{seq, 0x4de8e30eabd4a6be, 702},
		{ff, 0xbe9bb22066375ef1, 753},
	}
	for _, d := range dirs {
		if got := hashDir(d.id); got != d.hash {
			t.Errorf("hashDir(%s) = %#016x, want %#016x", d.id, got, d.hash)
		}
		if got := l.PartitionOfDir(d.id); got != d.partition {
			t.Errorf("PartitionOfDir(%s) = %d, want %d", d.id, got, d.partition)
		}
		if got, want := l.SubvolumeOfDir(d.id), d.partition%4; got != want {
			t.Errorf("SubvolumeOfDir(%s) = %d, want %d", d.id, got, want)
		}
	}
	chunks := []struct {
		id        ID
		chunk     uint64
		hash      uint64
		partition int
	}{
		{RootID, 0, 0x9a88227726ae5e9a, 666},
		{RootID, 1, 0x456d322b1a8291eb, 491},
		{RootID, 2, 0x6edb3a1cdf0d7aee, 750},
		{RootID, 1 << 40, 0x6a010ea739d9b584, 388},
		{RootID, 1<<64 - 1, 0x1e04b90692560a93, 659},
		{ID{}, 0, 0x6d688654e9834407, 7},
		{ID{}, 1, 0xe4240635fd1d9485, 133},
		{seq, 2, 0x34603fc9c2adf7f5, 1013},
		{seq, 1 << 40, 0x2ed5dc37f5d78ece, 718},
		{ff, 1, 0x30e38715f4835ffd, 1021},
		{ff, 1<<64 - 1, 0x12a3c1a67c3242a7, 679},
	}
	for _, c := range chunks {
		if got := hashChunk(c.id, c.chunk); got != c.hash {
			t.Errorf("hashChunk(%s, %d) = %#016x, want %#016x", c.id, c.chunk, got, c.hash)
		}
		if got := l.PartitionOfChunk(c.id, c.chunk); got != c.partition {
			t.Errorf("PartitionOfChunk(%s, %d) = %d, want %d", c.id, c.chunk, got, c.partition)
		}
		if got, want := l.SubvolumeOfChunk(c.id, c.chunk), c.partition%4; got != want {
			t.Errorf("SubvolumeOfChunk(%s, %d) = %d, want %d", c.id, c.chunk, got, want)
		}
	}
	// The partition is the low bits of the hash for every partition count.
	for _, partitions := range []int{16, 65536} {
		l := mustNew(t, partitions, 1)
		for _, d := range dirs {
			if got, want := l.PartitionOfDir(d.id), int(d.hash%uint64(partitions)); got != want {
				t.Errorf("%d partitions: PartitionOfDir(%s) = %d, want %d", partitions, d.id, got, want)
			}
		}
	}
}

var sink int

func BenchmarkPartitionOfChunk(b *testing.B) {
	l := mustNew(b, DefaultPartitions, 4)
	f := NewID()
	var c uint64
	for b.Loop() {
		sink += l.PartitionOfChunk(f, c)
		c++
	}
}

func BenchmarkPartitionOfDir(b *testing.B) {
	l := mustNew(b, DefaultPartitions, 4)
	var ids [1024]ID
	for i := range ids {
		ids[i] = NewID()
	}
	i := 0
	for b.Loop() {
		sink += l.PartitionOfDir(ids[i%len(ids)])
		i++
	}
}
