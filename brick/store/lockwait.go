package store

import (
	"sync"

	"github.com/dfsproject/dfs/pkg/layout"
)

// lockWatch wakes those who wait for a change of an inode's locks: a
// leader holding a blocking lock request (F_SETLKW) until the lock may be
// free, instead of the client polling on a timer.
type lockWatch struct {
	mu sync.Mutex
	ch map[layout.ID]*lockWaiters
}

// lockWaiters is the channel of an inode's waiters and how many of them
// hold it.
type lockWaiters struct {
	c chan struct{}
	n int
}

// LockChanged returns a channel closed once a change of id's locks (a
// lock set, converted or released, a session expired) or a snapshot
// install has been committed to this store, and the function to call when
// the caller stops waiting on it (the channel of an inode nobody waits on
// any more is dropped). Take it before reading the locks, so that a
// change between the read and the wait is not missed.
func (s *Store) LockChanged(id layout.ID) (<-chan struct{}, func()) {
	w := &s.lockWatch
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(map[layout.ID]*lockWaiters)
	}
	lw := w.ch[id]
	if lw == nil {
		lw = &lockWaiters{c: make(chan struct{})}
		w.ch[id] = lw
	}
	lw.n++
	var once sync.Once
	return lw.c, func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			if lw.n--; lw.n == 0 && w.ch[id] == lw {
				delete(w.ch, id)
			}
		})
	}
}

// locksChanged wakes the waiters of the given inodes, or of every inode
// when all is set.
func (s *Store) locksChanged(ids []layout.ID, all bool) {
	w := &s.lockWatch
	w.mu.Lock()
	defer w.mu.Unlock()
	if all {
		for id, lw := range w.ch {
			close(lw.c)
			delete(w.ch, id)
		}
		return
	}
	for _, id := range ids {
		if lw := w.ch[id]; lw != nil {
			close(lw.c)
			delete(w.ch, id)
		}
	}
}

// lockWatched is the number of inodes with waiters (for tests).
func (s *Store) lockWatched() int {
	w := &s.lockWatch
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ch)
}
