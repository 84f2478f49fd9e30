package store

import (
	"fmt"
	"sort"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Kinds of fsck findings (FsckProblem.kind).
const (
	FsckDanglingEntry  = "dangling-entry"      // an entry names an inode that is not where its locator says
	FsckMisplacedInode = "misplaced-inode"     // that inode exists, but in another subvolume
	FsckOrphanInode    = "orphan-inode"        // an inode no entry names (and not unlinked-while-open)
	FsckWrongNlink     = "wrong-nlink"         // nlink differs from the entries naming it
	FsckDuplicateInode = "duplicate-inode"     // one id in several subvolumes
	FsckWrongType      = "wrong-type"          // an entry's type differs from its inode's
	FsckMultiDir       = "multiply-linked-dir" // a directory with several names
	FsckLostEntries    = "lost-entries"        // entries of a directory that does not exist there
	FsckSealedDir      = "sealed-dir"          // a directory left sealed by an interrupted rmdir
	FsckOrphanChunk    = "orphan-chunk"        // chunks of a file that does not exist
	FsckMisplaced      = "misplaced-chunk"     // a chunk outside its partition's subvolume
	FsckStray          = "stray-record"        // inline data, xattrs or op ids of a missing inode
	FsckBadRecord      = "bad-record"          // a record that does not decode
	FsckOpenOrphan     = "open-orphan"         // a note: unlinked while open, awaiting its last close
	FsckStuckTxn       = "stuck-transaction"   // a transaction across subvolumes unfinished for TxnStuckAfter
	FsckTxn            = "transaction"         // a note: a transaction across subvolumes in progress
)

// Checker finds what is inconsistent between the stores of a volume's
// subvolumes: feed it every subvolume's Walk pages with Add, then call
// Result. It holds every inode and entry in memory. The walks of
// different subvolumes are not one point in time, so on a busy volume an
// operation that spans two subvolumes may show as a finding while it is
// in flight; run it again to tell. Not safe for concurrent use.
type Checker struct {
	l       *layout.Layout
	inodes  map[layout.ID][]inodeAt
	entries []entryAt
	chunks  map[layout.ID]*chunksOf
	strays  []strayAt
	nChunks uint64
	txns    []txnAt
}

type inodeAt struct {
	sub int
	rec *dfspb.WalkInode
}

type entryAt struct {
	sub int
	e   *dfspb.WalkEntry
}

type chunksOf struct {
	subs  map[int]int // subvolume -> chunk count
	bytes uint64
}

type strayAt struct {
	sub int
	s   *dfspb.WalkStray
}

// NewChecker returns a Checker for a volume with layout l.
func NewChecker(l *layout.Layout) *Checker {
	return &Checker{l: l, inodes: map[layout.ID][]inodeAt{}, chunks: map[layout.ID]*chunksOf{}}
}

// Add takes one page of subvolume sub's walk.
func (c *Checker) Add(sub int, page *dfspb.WalkStoreResponse) {
	for _, in := range page.Inodes {
		id := toID(in.Id)
		c.inodes[id] = append(c.inodes[id], inodeAt{sub, in})
	}
	for _, e := range page.Entries {
		c.entries = append(c.entries, entryAt{sub, e})
	}
	for _, ch := range page.Chunks {
		id := toID(ch.File)
		co := c.chunks[id]
		if co == nil {
			co = &chunksOf{subs: map[int]int{}}
			c.chunks[id] = co
		}
		co.bytes += uint64(ch.Length)
		c.nChunks++
		if want := c.l.SubvolumeOfChunk(id, ch.Index); want != sub {
			c.strays = append(c.strays, strayAt{sub, &dfspb.WalkStray{Kind: FsckMisplaced, Id: id[:],
				Detail: fmt.Sprintf("chunk %d belongs to subvolume %d", ch.Index, want)}})
			continue
		}
		co.subs[sub]++
	}
	for _, s := range page.Strays {
		c.strays = append(c.strays, strayAt{sub, s})
	}
	for _, in := range page.Txns {
		c.txns = append(c.txns, txnAt{sub, in})
	}
}

func toID(b []byte) layout.ID {
	var id layout.ID
	copy(id[:], b)
	return id
}

// FsckResult is what a Checker found.
type FsckResult struct {
	Inodes, Entries, Chunks uint64
	Problems, Notes         []*dfspb.FsckProblem
}

// Result checks everything added and returns the findings, sorted by kind
// and id.
func (c *Checker) Result() FsckResult {
	r := FsckResult{Entries: uint64(len(c.entries)), Chunks: c.nChunks}
	problem := func(kind string, sub int, id layout.ID, detail string, args ...any) *dfspb.FsckProblem {
		p := &dfspb.FsckProblem{Kind: kind, Subvolume: uint32(sub), Id: id[:], Detail: fmt.Sprintf(detail, args...)}
		r.Problems = append(r.Problems, p)
		return p
	}
	refs := map[layout.ID]int{}    // entries naming each inode
	subdirs := map[layout.ID]int{} // directory entries in each directory
	lostDirs := map[layout.ID]bool{}
	for _, ea := range c.entries {
		e := ea.e
		dir, child, loc := toID(e.Dir), toID(e.Child), toID(e.Locator)
		entryProblem := func(kind, detail string, args ...any) {
			p := problem(kind, ea.sub, child, detail, args...)
			p.Dir, p.Name = dir[:], e.Name
		}
		refs[child]++
		isDir := e.Type == dfspb.FileType_FILE_TYPE_DIR
		if isDir {
			subdirs[dir]++
		}
		if !lostDirs[dir] {
			if want := c.l.SubvolumeOfDir(dir); want != ea.sub {
				lostDirs[dir] = true
				entryProblem(FsckLostEntries, "entries of directory %s are in subvolume %d, which does not hold its partition (subvolume %d does)", dir, ea.sub, want)
			} else if d := c.find(dir, ea.sub); d == nil || d.Type != dfspb.FileType_FILE_TYPE_DIR {
				lostDirs[dir] = true
				entryProblem(FsckLostEntries, "directory %s has entries but no directory inode", dir)
			}
		}
		want := c.l.SubvolumeOfDir(loc)
		in := c.find(child, want)
		if in == nil {
			if others := c.inodes[child]; len(others) > 0 {
				entryProblem(FsckMisplacedInode, "entry %q names %s, whose inode is in subvolume %d, not %d where its locator %s puts it", e.Name, child, others[0].sub, want, loc)
			} else {
				entryProblem(FsckDanglingEntry, "entry %q names %s, which does not exist", e.Name, child)
			}
			continue
		}
		if in.Type != e.Type {
			entryProblem(FsckWrongType, "entry %q says %v, its inode is a %v", e.Name, e.Type, in.Type)
		}
	}
	ids := make([]layout.ID, 0, len(c.inodes))
	for id := range c.inodes {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return string(ids[i][:]) < string(ids[j][:]) })
	for _, id := range ids {
		ats := c.inodes[id]
		r.Inodes++
		if len(ats) > 1 {
			subs := make([]int, len(ats))
			for i, a := range ats {
				subs[i] = a.sub
			}
			problem(FsckDuplicateInode, ats[0].sub, id, "inode %s is in subvolumes %v", id, subs)
		}
		at := ats[0]
		in := at.rec
		n := refs[id]
		if in.Type == dfspb.FileType_FILE_TYPE_DIR {
			c.checkDir(id, at, n, subdirs[id], problem)
			continue
		}
		switch {
		case n == 0 && in.Orphan:
			r.Notes = append(r.Notes, &dfspb.FsckProblem{Kind: FsckOpenOrphan, Subvolume: uint32(at.sub), Id: id[:],
				Detail: fmt.Sprintf("%v %s (%d bytes) was unlinked while open; it goes at its last close, or stays if its client crashed", in.Type, id, in.Size)})
		case n == 0:
			problem(FsckOrphanInode, at.sub, id, "%v %s (%d bytes, nlink %d) has no entry naming it", in.Type, id, in.Size, in.Nlink)
		case in.Orphan:
			problem(FsckWrongNlink, at.sub, id, "%v %s is marked unlinked (nlink %d) but %d entries name it", in.Type, id, in.Nlink, n)
		case int(in.Nlink) != n:
			problem(FsckWrongNlink, at.sub, id, "%v %s has nlink %d, %d entries name it", in.Type, id, in.Nlink, n)
		}
	}
	files := make([]layout.ID, 0, len(c.chunks))
	for id := range c.chunks {
		files = append(files, id)
	}
	sort.Slice(files, func(i, j int) bool { return string(files[i][:]) < string(files[j][:]) })
	for _, id := range files {
		if len(c.inodes[id]) > 0 {
			continue
		}
		co := c.chunks[id]
		for sub, n := range co.subs {
			problem(FsckOrphanChunk, sub, id, "%d chunks of file %s, which does not exist", n, id)
		}
	}
	for _, s := range c.strays {
		kind := FsckStray
		switch s.s.Kind {
		case FsckBadRecord, FsckMisplaced:
			kind = s.s.Kind
		}
		detail := s.s.Detail
		if kind == FsckStray {
			detail = fmt.Sprintf("%s record of inode %s, which this subvolume does not hold", s.s.Kind, toID(s.s.Id))
			if s.s.Detail != "" {
				detail += ": " + s.s.Detail
			}
		}
		problem(kind, s.sub, toID(s.s.Id), "%s", detail)
	}
	c.checkTxns(&r)
	sortProblems(r.Problems)
	sortProblems(r.Notes)
	return r
}

// checkDir checks a directory inode named by n entries, with subdirs
// directory entries of its own.
func (c *Checker) checkDir(id layout.ID, at inodeAt, n, subdirs int, problem func(string, int, layout.ID, string, ...any) *dfspb.FsckProblem) {
	in := at.rec
	if want := c.l.SubvolumeOfDir(id); want != at.sub {
		problem(FsckMisplacedInode, at.sub, id, "directory %s is in subvolume %d, its partition in %d", id, at.sub, want)
	}
	root := id == layout.RootID
	switch {
	case in.Sealed:
		problem(FsckSealedDir, at.sub, id, "directory %s is sealed by an rmdir that did not finish (%d entries name it); nothing can be created in it", id, n)
	case n == 0 && !root:
		problem(FsckOrphanInode, at.sub, id, "directory %s has no entry naming it", id)
	case n > 1 || root && n > 0:
		problem(FsckMultiDir, at.sub, id, "directory %s is named by %d entries", id, n)
	}
	if want := 2 + subdirs; int(in.Nlink) != want {
		problem(FsckWrongNlink, at.sub, id, "directory %s has nlink %d; with %d subdirectories it should be %d", id, in.Nlink, subdirs, want)
	}
}

// find returns inode id as subvolume sub holds it, or nil.
func (c *Checker) find(id layout.ID, sub int) *dfspb.WalkInode {
	for _, a := range c.inodes[id] {
		if a.sub == sub {
			return a.rec
		}
	}
	return nil
}

func sortProblems(ps []*dfspb.FsckProblem) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Kind != ps[j].Kind {
			return ps[i].Kind < ps[j].Kind
		}
		if ps[i].Subvolume != ps[j].Subvolume {
			return ps[i].Subvolume < ps[j].Subvolume
		}
		return string(ps[i].Id) < string(ps[j].Id)
	})
}
