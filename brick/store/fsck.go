package store

import (
	"bytes"
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// DefaultWalkPage is how many records a Walk page holds at most.
const DefaultWalkPage = 1024

// Walk streams the store's namespace from one point-in-time view (a
// Pebble snapshot) to fn, in key order, in pages of at most pageSize
// records: inodes, directory entries, chunk records, and strays (inline
// data, xattrs and op ids of an inode the store does not hold, and records
// that do not decode). It is what fsck reads.
//
// The store's lock is held only while a page is filled, never while fn
// runs, so Apply, reads and snapshots go on beside a long walk; a Restore
// or Close in the middle ends it with ErrClosed. Safe for concurrent use.
func (s *Store) Walk(ctx context.Context, pageSize int, fn func(*dfspb.WalkStoreResponse) error) error {
	if pageSize <= 0 {
		pageSize = DefaultWalkPage
	}
	if err := s.rlock(); err != nil {
		return err
	}
	// Registered like a raft snapshot, so that Restore and Close release
	// it before they close the database it reads.
	f := &fsmSnapshot{s: s, snap: s.db.NewSnapshot()}
	applied, err := loadApplied(f.snap)
	s.snapsMu.Lock()
	s.snaps[f] = struct{}{}
	s.snapsMu.Unlock()
	s.mu.RUnlock()
	defer f.Release()
	if err != nil {
		return err
	}
	w := walker{f: f, haveInode: map[layout.ID]bool{}}
	var after []byte
	first := true
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, next, err := w.page(after, pageSize)
		if err != nil {
			return err
		}
		if first {
			page.AppliedIndex, first = applied, false
		}
		if next == nil {
			return fn(page)
		}
		if err := fn(page); err != nil {
			return err
		}
		after = next
	}
}

// walker fills Walk's pages from its snapshot.
type walker struct {
	f *fsmSnapshot
	// haveInode caches inode lookups for strays; an inode's records are
	// contiguous by prefix, so it stays small in practice but is reset
	// per page to bound it.
	haveInode map[layout.ID]bool
}

// page reads up to n keys after key after (nil: from the start). It
// returns the last key it read, to continue after; nil at the end.
func (w *walker) page(after []byte, n int) (*dfspb.WalkStoreResponse, []byte, error) {
	s := w.f.s
	if err := s.rlock(); err != nil {
		return nil, nil, err
	}
	defer s.mu.RUnlock()
	w.f.mu.Lock()
	snap := w.f.snap
	w.f.mu.Unlock()
	if snap == nil {
		return nil, nil, fmt.Errorf("%w: the store was restored during the walk", ErrClosed)
	}
	opts := &pebble.IterOptions{}
	if after != nil {
		opts.LowerBound = append(bytes.Clone(after), 0)
	}
	it, err := snap.NewIter(opts)
	if err != nil {
		return nil, nil, ioErr(err)
	}
	defer it.Close()
	clear(w.haveInode)
	out := &dfspb.WalkStoreResponse{}
	count := 0
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, nil, ioErr(err)
		}
		w.record(snap, it.Key(), v, out)
		// Keys visited, not records kept, so that a page bounds the time
		// spent under the lock.
		if count++; count == n {
			return out, bytes.Clone(it.Key()), nil
		}
	}
	if err := it.Error(); err != nil {
		return nil, nil, ioErr(err)
	}
	return out, nil, nil
}

// record adds the record k, v to out, reporting whether it added one.
func (w *walker) record(snap *pebble.Snapshot, k, v []byte, out *dfspb.WalkStoreResponse) bool {
	if len(k) < 1+idLen {
		return false // metadata keys
	}
	var id layout.ID
	copy(id[:], k[1:])
	bad := func(what string, err error) bool {
		out.Strays = append(out.Strays, &dfspb.WalkStray{Kind: "bad-record", Id: id[:], Detail: fmt.Sprintf("%s: %v", what, err)})
		return true
	}
	switch k[0] {
	case prefixInode:
		rec := &dfspb.InodeRecord{}
		if err := proto.Unmarshal(v, rec); err != nil || rec.Attr == nil {
			return bad("inode record", err)
		}
		a := rec.Attr
		out.Inodes = append(out.Inodes, &dfspb.WalkInode{
			Id: id[:], Type: a.Type, Nlink: a.Nlink, Orphan: rec.Orphan, Sealed: rec.Sealed,
			Chunked: a.Chunked, Size: a.Size, CtimeNs: a.CtimeNs,
		})
	case prefixDirent:
		d, err := decodeDirent(v)
		if err != nil {
			return bad("entry "+string(k[1+idLen:]), err)
		}
		out.Entries = append(out.Entries, &dfspb.WalkEntry{
			Dir: id[:], Name: string(k[1+idLen:]), Child: d.child[:], Type: d.typ, Locator: d.locator[:],
		})
	case prefixChunk:
		file, idx, ok := parseChunkKey(k)
		if !ok {
			return bad("chunk key", fmt.Errorf("%d bytes", len(k)))
		}
		rec := &dfspb.ChunkInfo{}
		if err := proto.Unmarshal(v, rec); err != nil {
			return bad(fmt.Sprintf("chunk record %d", idx), err)
		}
		out.Chunks = append(out.Chunks, &dfspb.WalkChunk{File: file[:], Index: idx, Length: rec.Length})
	case prefixInline, prefixXattr, prefixOp, prefixOpTime:
		have, ok := w.haveInode[id]
		if !ok {
			_, found, err := getValue(snap, inodeKey(id))
			if err != nil {
				return bad("inode lookup", err)
			}
			have = found
			w.haveInode[id] = have
		}
		if have {
			return false
		}
		kind := map[byte]string{prefixInline: "inline", prefixXattr: "xattr", prefixOp: "op", prefixOpTime: "op"}[k[0]]
		detail := ""
		if k[0] == prefixXattr {
			detail = string(k[1+idLen:])
		}
		out.Strays = append(out.Strays, &dfspb.WalkStray{Kind: kind, Id: id[:], Detail: detail})
	case prefixTxn:
		return walkTxn(v, out)
	default:
		return false
	}
	return true
}
