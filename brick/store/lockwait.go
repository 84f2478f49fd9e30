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
	ch map[layout.ID]chan struct{}
}

// LockChanged returns a channel closed once a change of id's locks (a
// lock set, converted or released, a session expired) or a snapshot
// install has been committed to this store. Take it before reading the
// locks, so that a change between the read and the wait is not missed.
func (s *Store) LockChanged(id layout.ID) <-chan struct{} {
	w := &s.lockWatch
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(map[layout.ID]chan struct{})
	}
	c := w.ch[id]
	if c == nil {
		c = make(chan struct{})
		w.ch[id] = c
	}
	return c
}

// locksChanged wakes the waiters of the given inodes, or of every inode
// when all is set.
func (s *Store) locksChanged(ids []layout.ID, all bool) {
	w := &s.lockWatch
	w.mu.Lock()
	defer w.mu.Unlock()
	if all {
		for id, c := range w.ch {
			close(c)
			delete(w.ch, id)
		}
		return
	}
	for _, id := range ids {
		if c := w.ch[id]; c != nil {
			close(c)
			delete(w.ch, id)
		}
	}
}
