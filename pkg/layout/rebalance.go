package layout

import (
	"fmt"
	"slices"
)

// CanRebalance reports whether l.Rebalance(newSubvolumes) would succeed:
// l must be valid and 1 <= newSubvolumes <= the partition count. The error
// wraps one of the package's sentinel errors.
func (l *Layout) CanRebalance(newSubvolumes int) error {
	if err := l.Validate(); err != nil {
		return err
	}
	return checkSubvolumes(len(l.Partitions), newSubvolumes)
}

// Rebalance returns the layout of the volume with newSubvolumes subvolumes,
// and the partition moves that lead from l to it. l is not modified.
//
// The new layout is balanced (subvolume partition counts differ by at most
// one), has Version l.Version+1, and is reached with the minimum possible
// number of moves: a partition moves only if its subvolume is removed or
// holds more than its share. Growing from n to n+k subvolumes therefore
// moves about k*partitions/(n+k) partitions, all onto the new subvolumes
// when l was balanced. Shrinking removes subvolumes newSubvolumes and
// above. With newSubvolumes == l.Subvolumes, Rebalance repairs an
// unbalanced layout, and returns no moves for a balanced one (the version
// is still bumped).
//
// Moves are sorted by partition; each partition appears at most once, and
// partitions not listed keep their subvolume. Rebalance is deterministic.
//
// If CanRebalance(newSubvolumes) reports an error, Rebalance returns nil
// moves and a nil layout.
func (l *Layout) Rebalance(newSubvolumes int) (moves []Move, next *Layout) {
	if l.CanRebalance(newSubvolumes) != nil {
		return nil, nil
	}
	n := newSubvolumes
	total := len(l.Partitions)
	old := l.Counts()

	// current[s] is the partition count of surviving or new subvolume s.
	current := make([]int, n)
	copy(current, old)

	// Targets: every subvolume gets base partitions and total%n of them
	// get one more. Give the extra ones to the subvolumes that hold the
	// most partitions now (ties: lowest index), which minimizes the number
	// of partitions that must leave their subvolume.
	base, extra := total/n, total%n
	order := make([]int, n)
	for s := range order {
		order[s] = s
	}
	slices.SortStableFunc(order, func(a, b int) int { return current[b] - current[a] })
	target := make([]int, n)
	for i, s := range order {
		target[s] = base
		if i < extra {
			target[s]++
		}
	}

	// Donors give up their highest-numbered surplus partitions; the pool
	// takes one from each donor in turn so that every receiver gets
	// partitions from many donors.
	var donorLists [][]int
	for s := range l.Subvolumes {
		keep := 0 // removed subvolumes keep nothing
		if s < n {
			keep = target[s]
		}
		ps := l.PartitionsOf(s)
		if len(ps) > keep {
			surplus := ps[keep:]
			slices.Reverse(surplus)
			donorLists = append(donorLists, surplus)
		}
	}
	var pool []int
	for more := true; more; {
		more = false
		for i, d := range donorLists {
			if len(d) > 0 {
				pool = append(pool, d[0])
				donorLists[i] = d[1:]
				more = true
			}
		}
	}

	// Receivers take from the pool in turn until they reach their target.
	deficit := make([]int, n)
	for s := range n {
		deficit[s] = max(0, target[s]-current[s])
	}
	next = l.Clone()
	next.Version = l.Version + 1
	next.Subvolumes = n
	moves = make([]Move, 0, len(pool))
	// Surplus and deficit totals are equal, so the pool empties exactly
	// when every receiver reaches its target.
	for progress := true; progress && len(pool) > 0; {
		progress = false
		for s := range n {
			if deficit[s] == 0 || len(pool) == 0 {
				continue
			}
			progress = true
			p := pool[0]
			pool = pool[1:]
			deficit[s]--
			moves = append(moves, Move{Partition: p, From: l.Partitions[p], To: s})
			next.Partitions[p] = s
		}
	}
	slices.SortFunc(moves, func(a, b Move) int { return a.Partition - b.Partition })
	if err := next.Validate(); err != nil || !next.IsBalanced() {
		panic(fmt.Sprintf("layout: internal error: rebalance produced a bad layout: %v", err))
	}
	return moves, next
}
