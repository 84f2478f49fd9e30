package layout

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// checkRebalance checks the invariants every Rebalance result must meet and
// returns the number of moves.
func checkRebalance(t *testing.T, l *Layout, n int, moves []Move, next *Layout) {
	t.Helper()
	if next == nil {
		t.Fatalf("Rebalance(%d) returned nil layout", n)
	}
	if err := next.Validate(); err != nil {
		t.Fatalf("Rebalance(%d): invalid result: %v", n, err)
	}
	if next.Version != l.Version+1 {
		t.Errorf("version %d -> %d, want bump by one", l.Version, next.Version)
	}
	if next.VolumeID != l.VolumeID || next.Subvolumes != n || len(next.Partitions) != len(l.Partitions) {
		t.Errorf("next = {%q %d subvolumes %d partitions}", next.VolumeID, next.Subvolumes, len(next.Partitions))
	}
	if !next.IsBalanced() {
		t.Errorf("not balanced: %v", next.Counts())
	}
	moved := make(map[int]bool)
	for i, m := range moves {
		if i > 0 && moves[i-1].Partition >= m.Partition {
			t.Errorf("moves not sorted by partition or duplicated at %d: %v", i, m)
		}
		if m.From != l.Partitions[m.Partition] || m.To != next.Partitions[m.Partition] || m.From == m.To {
			t.Errorf("bad move %+v: old %d new %d", m, l.Partitions[m.Partition], next.Partitions[m.Partition])
		}
		moved[m.Partition] = true
	}
	for p := range l.Partitions {
		if !moved[p] && l.Partitions[p] != next.Partitions[p] {
			t.Errorf("partition %d changed %d -> %d without a move", p, l.Partitions[p], next.Partitions[p])
		}
	}
}

// TestRebalanceGrow adds one and two subvolumes to balanced layouts. Every
// move must go to a new subvolume, each new subvolume receives
// floor or ceil of partitions/(n+k) partitions, so the number of moves is
// within k of k*partitions/(n+k), the minimum for a balanced result.
func TestRebalanceGrow(t *testing.T) {
	for _, partitions := range []int{16, 1024, 65536} {
		for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 12, 14} {
			for _, k := range []int{1, 2} {
				t.Run(fmt.Sprintf("%d/%d+%d", partitions, n, k), func(t *testing.T) {
					l := mustNew(t, partitions, n)
					l.Version = 7
					before := l.Clone()
					moves, next := l.Rebalance(n + k)
					checkRebalance(t, l, n+k, moves, next)
					for p := range l.Partitions {
						if l.Partitions[p] != before.Partitions[p] || l.Version != 7 || l.Subvolumes != n {
							t.Fatal("Rebalance modified its receiver")
						}
					}
					for _, m := range moves {
						if m.To < n {
							t.Errorf("move %+v goes to an old subvolume", m)
						}
					}
					lo, hi := k*(partitions/(n+k)), k*((partitions+n+k-1)/(n+k))
					if len(moves) < lo || len(moves) > hi {
						t.Errorf("%d moves, want between %d and %d", len(moves), lo, hi)
					}
					if want := minMoves(l, n+k); len(moves) != want {
						t.Errorf("%d moves, minimum is %d", len(moves), want)
					}
					if partitions == 1024 {
						t.Logf("%d moves (ideal %.1f), counts %v", len(moves), float64(k*partitions)/float64(n+k), next.Counts())
					}
				})
			}
		}
	}
}

// minMoves computes by brute force over which subvolumes get the larger
// share the minimum number of moves that balance l over n subvolumes.
// Only for n <= 16.
func minMoves(l *Layout, n int) int {
	if n > 16 {
		panic("minMoves: n too large")
	}
	counts := make([]int, n)
	removed := 0
	for _, s := range l.Partitions {
		if s < n {
			counts[s]++
		} else {
			removed++
		}
	}
	total := len(l.Partitions)
	base, extra := total/n, total%n
	best := -1
	for mask := uint32(0); mask < 1<<n; mask++ {
		if bits.OnesCount32(mask) != extra {
			continue
		}
		moves := removed
		for s, c := range counts {
			target := base
			if mask&(1<<s) != 0 {
				target++
			}
			moves += max(0, c-target)
		}
		if best < 0 || moves < best {
			best = moves
		}
	}
	return best
}

// TestRebalanceMinimal compares the number of moves with the brute-force
// minimum, from balanced and from random unbalanced layouts, growing,
// shrinking and keeping the subvolume count.
func TestRebalanceMinimal(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, partitions := range []int{16, 64} {
		for from := 1; from <= 16; from++ {
			starts := map[string]*Layout{"balanced": mustNew(t, partitions, from)}
			skewed := mustNew(t, partitions, from)
			for p := range skewed.Partitions {
				skewed.Partitions[p] = r.IntN(from)
			}
			starts["random"] = skewed
			for name, l := range starts {
				for to := 1; to <= 16; to++ {
					t.Run(fmt.Sprintf("%d/%s/%d->%d", partitions, name, from, to), func(t *testing.T) {
						moves, next := l.Rebalance(to)
						checkRebalance(t, l, to, moves, next)
						if want := minMoves(l, to); len(moves) != want {
							t.Errorf("%d moves, minimum is %d", len(moves), want)
						}
					})
				}
			}
		}
	}
}

func TestRebalanceShrink(t *testing.T) {
	l := mustNew(t, 1024, 4)
	moves, next := l.Rebalance(3)
	checkRebalance(t, l, 3, moves, next)
	// Subvolume 3 held 256 partitions; all move and nothing else does.
	if len(moves) != 256 {
		t.Errorf("%d moves, want 256", len(moves))
	}
	for _, m := range moves {
		if m.From != 3 {
			t.Errorf("move %+v does not come from the removed subvolume", m)
		}
	}
}

func TestRebalanceSameCount(t *testing.T) {
	l := mustNew(t, 1024, 5)
	moves, next := l.Rebalance(5)
	checkRebalance(t, l, 5, moves, next)
	if len(moves) != 0 {
		t.Errorf("balanced layout: %d moves, want 0", len(moves))
	}
	// Repair: put partitions 0..99 on subvolume 0.
	for p := range 100 {
		l.Partitions[p] = 0
	}
	moves, next = l.Rebalance(5)
	checkRebalance(t, l, 5, moves, next)
	if want := minMoves(l, 5); len(moves) != want {
		t.Errorf("repair: %d moves, minimum is %d", len(moves), want)
	}
}

// TestRebalanceChain grows a volume one subvolume at a time and checks that
// the total data moved stays close to the ideal sum of partitions/(n+1).
func TestRebalanceChain(t *testing.T) {
	l := mustNew(t, 1024, 1)
	total, ideal := 0, 0.0
	for n := 2; n <= 16; n++ {
		moves, next := l.Rebalance(n)
		checkRebalance(t, l, n, moves, next)
		if want := minMoves(l, n); len(moves) != want {
			t.Errorf("%d->%d: %d moves, minimum is %d", n-1, n, len(moves), want)
		}
		total += len(moves)
		ideal += 1024.0 / float64(n)
		l = next
	}
	if l.Version != 16 {
		t.Errorf("version after 15 rebalances = %d, want 16", l.Version)
	}
	t.Logf("1 -> 16 subvolumes: %d moves in total, ideal %.1f", total, ideal)
	if float64(total) > ideal+15 {
		t.Errorf("%d moves in total, ideal %.1f", total, ideal)
	}
}

func TestRebalanceInvalid(t *testing.T) {
	l := mustNew(t, 16, 2)
	tests := []struct {
		name string
		l    *Layout
		n    int
		err  error
	}{
		{"zero", l, 0, ErrInvalidSubvolumes},
		{"negative", l, -1, ErrInvalidSubvolumes},
		{"more than partitions", l, 17, ErrInvalidSubvolumes},
		{"invalid layout", &Layout{VolumeID: "v", Version: 1, Partitions: make([]int, 10), Subvolumes: 1}, 2, ErrInvalidPartitions},
		{"nil layout", nil, 2, ErrInvalidPartitions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.l.CanRebalance(tt.n); !errors.Is(err, tt.err) {
				t.Errorf("CanRebalance(%d) = %v, want %v", tt.n, err, tt.err)
			}
			moves, next := tt.l.Rebalance(tt.n)
			if moves != nil || next != nil {
				t.Errorf("Rebalance(%d) = %v, %v; want nil, nil", tt.n, moves, next)
			}
		})
	}
	if err := l.CanRebalance(16); err != nil {
		t.Errorf("CanRebalance(16) = %v", err)
	}
}
