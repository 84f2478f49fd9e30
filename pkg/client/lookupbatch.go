package client

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Lookup batches. When the kernel's dentries of a directory are gone (a
// drop of its caches, their timeout) and an application opens or stats
// many of its files by name, every name costs a LOOKUP and a Lookup RPC.
// Once a run of them is seen in one directory, the client reads the
// directory's entries with their attributes a page at a time (the ReadDir
// RPC of readdirplus) and answers the following lookups in that page from
// it, for as long as the kernel itself would have kept an entry it looked
// up when the page was read (LookupAt's maxAge: the mount's entry and
// attribute timeouts). An answer from a page is as fresh as a Lookup made
// when the page was read, and it is handed to the kernel with the
// timeouts shortened by the page's age, so no entry or attribute is kept
// longer than one looked up then would have been.
//
// Names a page does not hold are looked up by RPC: failed lookups are
// not cached (a name another client made must be found at once).
//
// Mutations made through this Volume edit the pages instead of dropping
// them (change): a create or link puts its entry, with its attributes, in
// its directory's page, an unlink takes it out, a rename does both; the
// attributes of every inode a mutation changed are replaced by those in
// its answer or, when the answer has none, forgotten (an entry without
// attributes is answered with a GetAttr). So a lookup that follows a
// change made here sees it, and a remove loop needs no Lookup RPC once a
// page is read (a rename loop only its target's, which is absent). A mutation the pages cannot follow (an
// exchange, a transaction across subvolumes, a failure whose outcome is
// unknown) drops every page, and so does postOps.forget; an inode found
// gone (a GetAttr answering not found: the open of a name another client
// replaced, which the kernel then looks up again) too. A page whose read
// started before a mutation ended is not kept.
//
// Run detection: lookupRun lookups of different names of a directory
// answered by its brick with an entry, each less than maxAge after the
// previous one, start a batch. A page starts at the name looked up (names
// in name order are the common case: ls output, sorted file lists,
// benchmarks); a lookup of a name just before it (a prefix of its start:
// the source of a rename whose target's lookup read the page) is asked by
// RPC and leaves the page in place. A page holds
// lookupBatchMin entries at first; when the lookups leave a page of which
// at least half was used, the next is twice as large (up to
// lookupBatchMax); when less was used, a run twice as long (up to
// lookupRunMax) must be seen before another page is read, so lookups in
// random order in a large directory read few pages (each of
// lookupBatchMin entries), and a single lookup never reads a page.
const (
	lookupRun      = 4
	lookupRunMax   = 64
	lookupBatchMin = 64
	lookupBatchMax = 1024
	// lookupBatchDirs bounds the directories with a page held (at most
	// lookupBatchMax entries each); lookupRunDirs the directories whose
	// lookups are being counted.
	lookupBatchDirs = 16
	lookupRunDirs   = 256
)

// lookupBatches is the state of lookup batching; it lives in postOps,
// which sees every mutation.
type lookupBatches struct {
	mu   sync.Mutex
	gen  uint64 // bumped by every drop
	dirs map[layout.ID]*dirLookups

	// Counters, for tests and metrics: lookups answered from a page,
	// pages read.
	answered, pages uint64
}

// dirLookups is what is known of one directory's lookups.
type dirLookups struct {
	hits int       // lookups answered by the brick with an entry, in the current run
	need int       // hits that make a run: lookupRun, doubled by every page little used
	last time.Time // the last of them
	// lastName is the name of the last: the same name looked up again
	// does not make a run.
	lastName string

	// The page: every entry with a name in (from, to], or in (from, ∞)
	// with eof, as read at at (and changed since by this Volume's
	// mutations, see change). at is zero when there is none.
	ents     []DirEntry
	from, to string
	eof      bool
	at       time.Time
	used     int  // lookups answered from it
	size     int  // entries to ask for in the next page
	fetching bool // a page is being read
}

// lookupPlan is what lookupBatches.plan tells the caller to do.
type lookupPlan int

const (
	planRPC      lookupPlan = iota // look up by RPC and count it (hit)
	planAnswered                   // answered from the page
	planAbsent                     // the page does not hold it, or it is before the page: RPC, not counted
	planFetch                      // read a page first
)

// plan decides how to look up name in dir at now.
func (b *lookupBatches) plan(dir layout.ID, name string, maxAge time.Duration, now time.Time) (DirEntry, time.Time, lookupPlan, uint64, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.dirs[dir]
	if d == nil {
		return DirEntry{}, time.Time{}, planRPC, 0, 0
	}
	if !d.at.IsZero() {
		if now.Sub(d.at) < maxAge && d.covers(name) {
			i, ok := d.find(name)
			if !ok {
				return DirEntry{}, time.Time{}, planAbsent, 0, 0
			}
			d.used++
			d.last = now // the run goes on
			b.answered++
			return d.ents[i], d.at, planAnswered, 0, 0
		}
		if now.Sub(d.at) < maxAge && strings.HasPrefix(d.from, name) {
			// Just before the page: a page read for a lookup of a
			// name that does not exist (a rename's target, name.r)
			// starts after the name the run is at (its source,
			// name). The page stays.
			return DirEntry{}, time.Time{}, planAbsent, 0, 0
		}
		// The lookups left the page, or it is too old.
		if 2*d.used >= len(d.ents) {
			d.size, d.need = min(2*d.size, lookupBatchMax), lookupRun
		} else {
			d.size, d.hits, d.need = lookupBatchMin, 0, min(2*d.need, lookupRunMax)
		}
		d.ents, d.at, d.used = nil, time.Time{}, 0
	}
	if d.fetching || d.hits < d.need || now.Sub(d.last) >= maxAge {
		return DirEntry{}, time.Time{}, planRPC, 0, 0
	}
	d.fetching = true
	return DirEntry{}, time.Time{}, planFetch, b.gen, d.size
}

// covers reports whether the page's range holds name.
func (d *dirLookups) covers(name string) bool {
	return !d.at.IsZero() && name > d.from && (d.eof || name <= d.to)
}

// find returns where name is (or would be) in the page.
func (d *dirLookups) find(name string) (int, bool) {
	return slices.BinarySearchFunc(d.ents, name, func(e DirEntry, n string) int { return strings.Compare(e.Name, n) })
}

// hit counts a lookup of dir that its brick answered with an entry.
func (b *lookupBatches) hit(dir layout.ID, name string, maxAge time.Duration, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.dirs[dir]
	if d == nil {
		if b.dirs == nil {
			b.dirs = map[layout.ID]*dirLookups{}
		}
		if len(b.dirs) >= lookupRunDirs {
			b.evict(now, maxAge)
		}
		d = &dirLookups{size: lookupBatchMin, need: lookupRun}
		b.dirs[dir] = d
	}
	if now.Sub(d.last) >= maxAge {
		d.hits = 0
	}
	if d.hits == 0 || name != d.lastName {
		d.hits++
	}
	d.last, d.lastName = now, name
}

// evict makes room for one more directory: it drops those whose run and
// page are over, or, if none is, one of the others. Callers hold mu.
func (b *lookupBatches) evict(now time.Time, maxAge time.Duration) {
	n := len(b.dirs)
	for id, d := range b.dirs {
		if !d.fetching && now.Sub(d.last) >= maxAge && (d.at.IsZero() || now.Sub(d.at) >= maxAge) {
			delete(b.dirs, id)
		}
	}
	if len(b.dirs) < n {
		return
	}
	for id, d := range b.dirs {
		if !d.fetching {
			delete(b.dirs, id)
			return
		}
	}
}

// install keeps the page read for dir if nothing was dropped since its
// read began (gen). ents is nil when the read failed.
func (b *lookupBatches) install(dir layout.ID, gen uint64, from string, ents []DirEntry, eof bool, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.dirs[dir]
	if d == nil {
		return
	}
	d.fetching = false
	if b.gen != gen || ents == nil {
		return
	}
	b.hold(d)
	to := ""
	if len(ents) > 0 {
		to = ents[len(ents)-1].Name
	}
	d.ents, d.from, d.to, d.eof, d.at, d.used = ents, from, to, eof, at, 0
	b.pages++
}

// hold makes room for d's page: at most lookupBatchDirs pages are held,
// the oldest goes. Callers hold mu.
func (b *lookupBatches) hold(d *dirLookups) {
	var held int
	var oldest *dirLookups
	for _, o := range b.dirs {
		if !o.at.IsZero() && o != d {
			held++
			if oldest == nil || o.at.Before(oldest.at) {
				oldest = o
			}
		}
	}
	if held >= lookupBatchDirs {
		oldest.ents, oldest.at, oldest.used = nil, time.Time{}, 0
	}
}

// change edits the pages with what cmd, a mutation made through this
// Volume that started at start, did; res is its answer. It reports false
// for a mutation it cannot follow: the caller then drops every page. It
// ends every read of a page under way (gen): such a page may predate cmd.
//
// A page read after cmd started may or may not show it: the entry cmd
// changed is then dropped from it with the page (putEntry), the
// attributes cmd changed forgotten, never replaced by an older answer.
func (b *lookupBatches) change(start time.Time, cmd *dfspb.StoreCommand, res *dfspb.StoreResult) bool {
	switch cmd.GetOp().(type) {
	case *dfspb.StoreCommand_SetLock, *dfspb.StoreCommand_ExpireLockSession, *dfspb.StoreCommand_CreateInode:
		return true // no entry, and no attributes a page holds
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	switch op := cmd.GetOp().(type) {
	case *dfspb.StoreCommand_CreateEntry:
		c := op.CreateEntry
		b.forgetAttrs(c.Parent)
		return b.putEntry(start, c.Parent, c.Name, res.GetDirent(), res.GetAttr())
	case *dfspb.StoreCommand_Link:
		c := op.Link
		b.forgetAttrs(c.Parent, c.Child, res.GetRemoved().GetId())
		return b.putEntry(start, c.Parent, c.Name, res.GetDirent(), res.GetDirent().GetAttr())
	case *dfspb.StoreCommand_Unlink:
		c := op.Unlink
		b.forgetAttrs(c.Parent, res.GetRemoved().GetId())
		return b.putEntry(start, c.Parent, c.Name, nil, nil)
	case *dfspb.StoreCommand_Rename:
		c := op.Rename
		if c.Flags&RenameExchange != 0 || res.GetParent() == nil {
			// An exchange; or nothing changed (two links to one
			// inode, the same name), which the answer does not tell
			// apart from a change.
			return false
		}
		de := res.GetDirent()
		b.forgetAttrs(c.OldParent, c.NewParent, res.GetRemoved().GetId(), de.GetId())
		return b.putEntry(start, c.OldParent, c.OldName, nil, nil) &&
			b.putEntry(start, c.NewParent, c.NewName, de, de.GetAttr())
	case *dfspb.StoreCommand_SetAttr:
		b.setAttrs(start, op.SetAttr.Id, res.GetAttr())
	case *dfspb.StoreCommand_WriteInline:
		b.setAttrs(start, op.WriteInline.Id, res.GetAttr())
	case *dfspb.StoreCommand_AppendReserve:
		b.setAttrs(start, op.AppendReserve.Id, res.GetAttr())
	case *dfspb.StoreCommand_CommitSize:
		b.setAttrs(start, op.CommitSize.Id, res.GetAttr())
	case *dfspb.StoreCommand_SetXattr:
		b.forgetAttrs(op.SetXattr.Id)
	case *dfspb.StoreCommand_RemoveXattr:
		b.forgetAttrs(op.RemoveXattr.Id)
	case *dfspb.StoreCommand_WriteChunk:
		b.forgetAttrs(op.WriteChunk.File)
	case *dfspb.StoreCommand_WriteExtents:
		b.forgetAttrs(op.WriteExtents.File)
	case *dfspb.StoreCommand_TruncateChunk:
		b.forgetAttrs(op.TruncateChunk.File)
	case *dfspb.StoreCommand_DeleteChunks:
		b.forgetAttrs(op.DeleteChunks.File)
	case *dfspb.StoreCommand_DropInode:
		b.forgetAttrs(op.DropInode.Id)
	default:
		return false
	}
	return true
}

// putEntry puts name in the page of directory dirID (if one is held and
// its range holds name) as de says, with attributes attr (nil: not
// known), or takes it out with de nil. A page read after start is
// dropped instead. It reports false if dirID or de cannot be read.
// Callers hold mu.
func (b *lookupBatches) putEntry(start time.Time, dirID []byte, name string, de *dfspb.Dirent, attr *dfspb.Attr) bool {
	dir, err := parseID(dirID)
	if err != nil {
		return false
	}
	d := b.dirs[dir]
	if d == nil || !d.covers(name) {
		return true
	}
	if d.at.After(start) {
		d.ents, d.at, d.used = nil, time.Time{}, 0
		return true
	}
	i, found := d.find(name)
	if de == nil {
		if found {
			d.ents = slices.Delete(d.ents, i, i+1)
		}
		return true
	}
	n, err := nodeOf(de)
	if err != nil {
		return false
	}
	if attr != nil && string(attr.Id) != string(n.ID[:]) {
		attr = nil
	}
	e := DirEntry{Name: name, Node: n, Type: de.GetType(), Attr: attr}
	if found && d.ents[i].Node.ID == n.ID && attr != nil && d.ents[i].Attr.GetVersion() > attr.GetVersion() {
		e.Attr = d.ents[i].Attr // an answer handled late keeps the newer
	}
	if found {
		d.ents[i] = e
	} else {
		d.ents = slices.Insert(d.ents, i, e)
	}
	return true
}

// forgetAttrs forgets the attributes the pages hold of the inodes ids (nil
// ones are skipped): a lookup of a name of one asks for them. Callers
// hold mu.
func (b *lookupBatches) forgetAttrs(ids ...[]byte) {
	for _, d := range b.dirs {
		for i := range d.ents {
			e := &d.ents[i]
			if e.Attr == nil {
				continue
			}
			for _, id := range ids {
				if len(id) > 0 && string(e.Node.ID[:]) == string(id) {
					e.Attr = nil
					break
				}
			}
		}
	}
}

// setAttrs replaces the attributes the pages hold of inode id by a, the
// answer of a mutation that started at start; pages read after start
// forget them instead (they may be newer than a). Callers hold mu.
func (b *lookupBatches) setAttrs(start time.Time, id []byte, a *dfspb.Attr) {
	if a == nil || string(a.Id) != string(id) {
		b.forgetAttrs(id)
		return
	}
	for _, d := range b.dirs {
		for i := range d.ents {
			if e := &d.ents[i]; e.Attr != nil && string(e.Node.ID[:]) == string(id) {
				if d.at.After(start) {
					e.Attr = nil
				} else if e.Attr.GetVersion() <= a.GetVersion() {
					e.Attr = a // (an answer handled late keeps the newer)
				}
			}
		}
	}
}

// drop forgets every page and run.
func (b *lookupBatches) drop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	clear(b.dirs)
}

// stats returns how many lookups were answered from pages and how many
// pages were read.
func (b *lookupBatches) stats() (answered, pages uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.answered, b.pages
}

// LookupAt is Lookup for a caller that may keep the answer for maxAge (the
// kernel, for its entry and attribute timeouts): it may answer from a page
// of the directory read less than maxAge ago (see Lookup batches above).
// asOf is when the answer was read from the subvolume; a caller keeping
// it should keep it for maxAge less its age. maxAge 0 is Lookup.
func (v *Volume) LookupAt(ctx context.Context, dir Node, name string, maxAge time.Duration) (Node, *dfspb.Attr, time.Time, error) {
	if maxAge <= 0 {
		now := time.Now()
		n, a, err := v.Lookup(ctx, dir, name)
		return n, a, now, err
	}
	if err := checkName(name); err != nil {
		return Node{}, nil, time.Time{}, err
	}
	b := &v.postOps.batches
	now := time.Now()
	e, at, plan, gen, size := b.plan(dir.ID, name, maxAge, now)
	if plan == planFetch {
		// Start at name: after is name less its last character, which
		// sorts before it (a whole character: the RPC's names are UTF-8).
		_, last := utf8.DecodeLastRuneInString(name)
		from := name[:len(name)-last]
		ents, eof, err := v.readDir(ctx, dir, from, size)
		if err != nil {
			ents = nil
		}
		b.install(dir.ID, gen, from, ents, eof, now)
		e, at, plan, _, _ = b.plan(dir.ID, name, maxAge, time.Now())
		if plan == planFetch { // the read failed: ask by RPC
			b.install(dir.ID, gen, "", nil, false, time.Time{})
			plan = planRPC
		}
	}
	if plan == planAnswered {
		attr := e.Attr
		if attr == nil {
			// The child's inode lives elsewhere (a subdirectory, a file
			// renamed in): its attributes are fresh.
			var err error
			attr, err = v.getAttr(ctx, e.Node)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return Node{}, nil, time.Time{}, err
			}
			// An inode that is gone dropped the pages (getAttrRPC): the
			// name may name another one now; ask, without counting it.
		}
		if attr != nil {
			return e.Node, v.overlayOpenAt(attr, at), at, nil
		}
	}
	n, a, err := v.Lookup(ctx, dir, name)
	if err == nil && plan == planRPC {
		b.hit(dir.ID, name, maxAge, now)
	}
	return n, a, now, err
}

// LookupBatchStats returns how many lookups LookupAt answered from pages
// of directories and how many pages it read.
func (v *Volume) LookupBatchStats() (answered, pages uint64) {
	return v.postOps.batches.stats()
}
