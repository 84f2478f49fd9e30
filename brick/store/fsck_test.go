package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// fsckVolume is a volume of real stores, one per subvolume, built the way
// the client builds the namespace (pkg/client): entries of D in
// partition(D), files beside their entry, directories in their own
// partition, cross-subvolume hard links as Link there + AdjustLink here.
type fsckVolume struct {
	t    *testing.T
	l    *layout.Layout
	subs []*harness
}

func newFsckVolume(t *testing.T, subvolumes int) *fsckVolume {
	l, err := layout.New("fsck-test", 16, subvolumes)
	if err != nil {
		t.Fatal(err)
	}
	v := &fsckVolume{t: t, l: l}
	for range subvolumes {
		v.subs = append(v.subs, newHarness(t, smallConfig))
	}
	v.on(layout.RootID).withRoot()
	return v
}

// on is the store of the partition of id (a directory or a locator).
func (v *fsckVolume) on(id layout.ID) *harness { return v.subs[v.l.SubvolumeOfDir(id)] }

func (v *fsckVolume) mkdir(parent layout.ID, name string) layout.ID {
	id := layout.NewID()
	mustOK(v.t, v.on(id).apply(createInodeCmd(id, dfspb.FileType_FILE_TYPE_DIR)))
	mustOK(v.t, v.on(parent).apply(linkCmd(parent, name, id, dfspb.FileType_FILE_TYPE_DIR, id, true)))
	return id
}

// mkdirElsewhere makes a directory whose inode is in another subvolume
// than its parent's entries, so that cross-subvolume cases exist.
func (v *fsckVolume) mkdirElsewhere(parent layout.ID, name string) layout.ID {
	for {
		id := v.mkdir(parent, name)
		if v.l.SubvolumeOfDir(id) != v.l.SubvolumeOfDir(parent) {
			return id
		}
		mustOK(v.t, v.on(parent).apply(unlinkCmd(parent, name, true)))
	}
}

func (v *fsckVolume) create(parent layout.ID, name string) layout.ID {
	return v.on(parent).create(parent, name)
}

// link names file (created in dir loc) in newDir too.
func (v *fsckVolume) link(file, loc, newDir layout.ID, name string) {
	if v.l.SubvolumeOfDir(newDir) == v.l.SubvolumeOfDir(loc) {
		mustOK(v.t, v.on(newDir).apply(hardLinkCmd(newDir, name, file, loc)))
		return
	}
	mustOK(v.t, v.on(loc).apply(adjustCmd(file, +1, nil, false)))
	mustOK(v.t, v.on(newDir).apply(cmd(&dfspb.LinkCmd{Parent: b(newDir), Name: name, Child: b(file), ChildType: fileType, Locator: b(loc), Exclusive: true})))
}

func (v *fsckVolume) check() FsckResult {
	v.t.Helper()
	c := NewChecker(v.l)
	for i, h := range v.subs {
		err := h.s.Walk(context.Background(), 3, func(p *dfspb.WalkStoreResponse) error {
			c.Add(i, p)
			return nil
		})
		if err != nil {
			v.t.Fatalf("Walk of subvolume %d: %v", i, err)
		}
	}
	return c.Result()
}

// kinds summarises findings as "kind id" strings, sorted.
func kinds(ps []*dfspb.FsckProblem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Kind+" "+toID(p.Id).String())
	}
	sort.Strings(out)
	return out
}

func deleteKey(t *testing.T, h *harness, key []byte) {
	t.Helper()
	if err := h.s.db.Delete(key, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

func setKey(t *testing.T, h *harness, key, value []byte) {
	t.Helper()
	if err := h.s.db.Set(key, value, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// buildTree makes a namespace with every legitimate shape: nested and
// cross-subvolume directories, files with inline data, chunks and xattrs,
// local and cross-subvolume hard links, a renamed directory, and a file
// unlinked while open.
func (v *fsckVolume) buildTree() (dirs []layout.ID, files map[string]layout.ID) {
	root := layout.RootID
	files = map[string]layout.ID{}
	a := v.mkdirElsewhere(root, "a")
	bdir := v.mkdir(root, "b")
	c := v.mkdir(a, "c")
	dirs = []layout.ID{a, bdir, c}
	for i, d := range dirs {
		for j := range 3 {
			name := fmt.Sprintf("f%d%d", i, j)
			id := v.create(d, name)
			files[name] = id
			h := v.on(d)
			mustOK(v.t, h.apply(writeInlineCmd(id, 0, []byte("small"))))
			mustOK(v.t, h.apply(setXattrCmd(id, "user.k", "v", 0)))
		}
	}
	// A chunked file: its chunks land on their partitions' subvolumes.
	big := v.create(a, "big")
	files["big"] = big
	for i := range uint64(4) {
		mustOK(v.t, v.subs[v.l.SubvolumeOfChunk(big, i)].apply(writeChunkCmd(big, i, 0, []byte("chunk data"))))
	}
	mustOK(v.t, v.on(a).apply(cmd(&dfspb.CommitSizeCmd{Id: b(big), Size: 3*64<<10 + 10, Chunked: true})))
	// Hard links: one to every other directory.
	v.link(files["f00"], a, bdir, "l1")
	v.link(files["f00"], a, c, "l2")
	v.link(files["f00"], a, root, "l3")
	// A directory moved to another parent (its entry moves, not its inode).
	d := v.mkdir(bdir, "moving")
	mustOK(v.t, v.on(c).apply(linkCmd(c, "moved", d, dfspb.FileType_FILE_TYPE_DIR, d, true)))
	mustOK(v.t, v.on(bdir).apply(cmd(&dfspb.UnlinkCmd{Parent: b(bdir), Name: "moving", ExpectDir: true, KeepInode: true})))
	dirs = append(dirs, d)
	// A file unlinked while open.
	open := v.create(bdir, "open")
	files["open"] = open
	mustOK(v.t, v.on(bdir).apply(cmd(&dfspb.UnlinkCmd{Parent: b(bdir), Name: "open", KeepOpen: true})))
	return dirs, files
}

// TestFsckClean: a namespace built only by legitimate commands, with every
// cross-subvolume shape, has no problems; the open orphan is a note.
func TestFsckClean(t *testing.T) {
	v := newFsckVolume(t, 3)
	_, files := v.buildTree()
	r := v.check()
	if len(r.Problems) != 0 {
		for _, p := range r.Problems {
			t.Errorf("problem: %s sub %d %s: %s", p.Kind, p.Subvolume, toID(p.Id), p.Detail)
		}
	}
	if got, want := kinds(r.Notes), []string{FsckOpenOrphan + " " + files["open"].String()}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("notes = %v, want %v", got, want)
	}
	// root, a, b, c, moved, 9 small files, big, open.
	if r.Inodes != 16 || r.Chunks != 4 {
		t.Errorf("counted %d inodes, %d chunks; want 16, 4", r.Inodes, r.Chunks)
	}
}

// TestFsckFindsInjected injects one inconsistency of each kind, by writing
// Pebble keys directly or by applying a command sequence that a crashed
// client leaves half done, and checks that fsck reports exactly those.
func TestFsckFindsInjected(t *testing.T) {
	v := newFsckVolume(t, 3)
	dirs, files := v.buildTree()
	a, bdir, c := dirs[0], dirs[1], dirs[2]
	want := map[string]bool{}
	expect := func(kind string, id layout.ID) { want[kind+" "+id.String()] = true }

	// Dangling entry: the inode of f01 is gone, its entry stays.
	deleteKey(t, v.on(a), inodeKey(files["f01"]))
	expect(FsckDanglingEntry, files["f01"])
	// Its inline data and xattr stay too: strays.
	expect(FsckStray, files["f01"])
	expect(FsckStray, files["f01"])

	// Orphan inode: the entry of f11 is gone, its inode stays.
	deleteKey(t, v.on(bdir), direntKey(bdir, "f11"))
	expect(FsckOrphanInode, files["f11"])

	// Wrong nlink: a cross-subvolume link whose AdjustLink was applied
	// but whose Link never was (a client crash in between).
	mustOK(t, v.on(c).apply(adjustCmd(files["f21"], +1, nil, false)))
	expect(FsckWrongNlink, files["f21"])

	// A directory's nlink: a subdirectory entry removed behind its back
	// leaves the parent's nlink one too high and the subdirectory orphaned.
	sub := v.mkdir(bdir, "sub")
	deleteKey(t, v.on(bdir), direntKey(bdir, "sub"))
	expect(FsckWrongNlink, bdir)
	expect(FsckOrphanInode, sub)

	// A sealed directory left by an rmdir that stopped after SealDir.
	empty := v.mkdir(a, "empty")
	mustOK(t, v.on(empty).apply(cmd(&dfspb.SealDirCmd{Dir: b(empty)})))
	expect(FsckSealedDir, empty)

	// Chunks of a file that no longer exists (DeleteChunks never ran).
	gone := layout.NewID()
	mustOK(t, v.subs[v.l.SubvolumeOfChunk(gone, 0)].apply(writeChunkCmd(gone, 0, 0, []byte("left behind"))))
	expect(FsckOrphanChunk, gone)

	// An entry whose type is not its inode's.
	x := v.create(c, "typed")
	setKey(t, v.on(c), direntKey(c, "typed"), encodeDirent(dfspb.FileType_FILE_TYPE_SYMLINK, x, c))
	expect(FsckWrongType, x)

	// A record that does not decode.
	y := v.create(c, "garbled")
	setKey(t, v.on(c), inodeKey(y), []byte{0xff, 0xff, 0xff})
	expect(FsckBadRecord, y)
	expect(FsckDanglingEntry, y) // its entry names an inode fsck cannot read

	r := v.check()
	got := map[string]int{}
	for _, k := range kinds(r.Problems) {
		got[k]++
	}
	for k := range want {
		if got[k] == 0 {
			t.Errorf("fsck missed %s", k)
		}
		delete(got, k)
	}
	for k := range got {
		t.Errorf("fsck reported %s, which was not injected", k)
	}
	if t.Failed() {
		for _, p := range r.Problems {
			t.Logf("%s sub %d %s: %s", p.Kind, p.Subvolume, toID(p.Id), p.Detail)
		}
	}
}

// TestWalkStopsOnClose: a walk whose store is closed in the middle fails
// with ErrClosed rather than reading a closed database.
func TestWalkStopsOnClose(t *testing.T) {
	h := newHarness(t).withRoot()
	for i := range 20 {
		h.create(layout.RootID, fmt.Sprintf("f%d", i))
	}
	pages := 0
	err := h.s.Walk(context.Background(), 4, func(*dfspb.WalkStoreResponse) error {
		pages++
		if pages == 2 {
			if err := h.s.Close(); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	if pages != 2 || !errors.Is(err, ErrClosed) {
		t.Fatalf("walk over a closed store: %d pages, err %v", pages, err)
	}
	s, err := Open(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
}
