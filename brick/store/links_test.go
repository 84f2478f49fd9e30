package store

import (
	"context"
	"errors"
	"testing"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

const fileType = dfspb.FileType_FILE_TYPE_FILE

func hardLinkCmd(parent layout.ID, name string, child, locator layout.ID) *dfspb.StoreCommand {
	return cmd(&dfspb.LinkCmd{Parent: b(parent), Name: name, Child: b(child), ChildType: fileType, Locator: b(locator), Exclusive: true, NewLink: true})
}

func adjustCmd(id layout.ID, delta int32, op []byte, keepOpen bool) *dfspb.StoreCommand {
	return cmd(&dfspb.AdjustLinkCmd{Id: b(id), Delta: delta, OpId: op, KeepOpen: keepOpen})
}

// TestHardLinkLocal: Link{new_link} of a file whose inode is in the store
// adds a link in the same command; unlinking the names takes them away.
func TestHardLinkLocal(t *testing.T) {
	h := newHarness(t).withRoot()
	id := h.create(root, "a")
	dir := h.mkdir(root, "d")

	r := mustOK(t, h.apply(hardLinkCmd(dir, "b", id, root)))
	if r.Existed || r.Dirent.Attr == nil || r.Dirent.Attr.Nlink != 2 {
		t.Fatalf("link: %+v", r)
	}
	// A retry changes nothing and says the entry existed.
	r = mustOK(t, h.apply(hardLinkCmd(dir, "b", id, root)))
	if !r.Existed || h.attr(id).Nlink != 2 {
		t.Fatalf("retry: existed %v nlink %d", r.Existed, h.attr(id).Nlink)
	}
	mustOK(t, h.apply(hardLinkCmd(root, "c", id, root)))
	if n := h.attr(id).Nlink; n != 3 {
		t.Fatalf("nlink = %d, want 3", n)
	}
	// Lookup under every name finds one inode with the same attributes.
	for _, p := range []struct {
		dir  layout.ID
		name string
	}{{root, "a"}, {dir, "b"}, {root, "c"}} {
		de, err := h.s.Lookup(context.Background(), p.dir, p.name)
		if err != nil || string(de.Id) != string(id[:]) || de.Attr.GetNlink() != 3 {
			t.Fatalf("lookup %s: %+v %v", p.name, de, err)
		}
	}
	for i, name := range []string{"a", "c"} {
		r := mustOK(t, h.apply(unlinkCmd(root, name, false)))
		if want := uint32(2 - i); r.Removed.Nlink != want || h.attr(id).Nlink != want {
			t.Fatalf("unlink %s: removed %+v", name, r.Removed)
		}
	}
	r = mustOK(t, h.apply(unlinkCmd(dir, "b", false)))
	if r.Removed.Nlink != 0 || r.Removed.Orphan {
		t.Fatalf("last unlink: %+v", r.Removed)
	}
	if _, err := h.s.GetAttr(context.Background(), id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inode after last unlink: %v", err)
	}
}

func TestHardLinkErrors(t *testing.T) {
	h := newHarness(t).withRoot()
	id := h.create(root, "a")
	sub := h.mkdir(root, "d")
	other := h.create(root, "other")
	for _, tc := range []struct {
		name string
		cmd  *dfspb.StoreCommand
		want ErrorCode
	}{
		{"existing name", hardLinkCmd(root, "other", id, root), CodeExists},
		{"inode elsewhere", hardLinkCmd(root, "x", layout.NewID(), root), CodeNotFound},
		{"directory", cmd(&dfspb.LinkCmd{Parent: b(root), Name: "x", Child: b(sub), ChildType: dfspb.FileType_FILE_TYPE_DIR, Locator: b(sub), NewLink: true}), CodeInvalid},
		{"wrong type", cmd(&dfspb.LinkCmd{Parent: b(root), Name: "x", Child: b(id), ChildType: dfspb.FileType_FILE_TYPE_SYMLINK, Locator: b(root), NewLink: true}), CodeInvalid},
		{"parent not a dir", hardLinkCmd(other, "x", id, root), CodeNotDir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, h.apply(tc.cmd), tc.want)
			if n := h.attr(id).Nlink; n != 1 {
				t.Fatalf("nlink = %d after a failed link", n)
			}
		})
	}
	// Replacing a target (not exclusive) drops the target's link.
	c := cmd(&dfspb.LinkCmd{Parent: b(root), Name: "other", Child: b(id), ChildType: fileType, Locator: b(root), NewLink: true})
	r := mustOK(t, h.apply(c))
	if r.Removed == nil || string(r.Removed.Id) != string(other[:]) || h.attr(id).Nlink != 2 {
		t.Fatalf("replacing link: %+v, nlink %d", r, h.attr(id).Nlink)
	}
}

// TestAdjustLinkOpID: an AdjustLink repeated with its op id is a no-op;
// op ids go with the inode and are forgotten after OpIDTTL.
func TestAdjustLinkOpID(t *testing.T) {
	h := newHarness(t).withRoot()
	id := h.create(root, "a")
	op1, op2 := layout.NewID(), layout.NewID()
	for _, tc := range []struct {
		name     string
		cmd      *dfspb.StoreCommand
		nlink    uint32
		repeated bool
		code     ErrorCode
	}{
		{"up", adjustCmd(id, 1, op1[:], false), 2, false, CodeOK},
		{"up again (retry)", adjustCmd(id, 1, op1[:], false), 2, true, CodeOK},
		{"without op id", adjustCmd(id, 1, nil, false), 3, false, CodeOK},
		{"without op id again", adjustCmd(id, -1, nil, false), 2, false, CodeOK},
		{"down", adjustCmd(id, -1, op2[:], false), 1, false, CodeOK},
		{"down again (retry)", adjustCmd(id, -1, op2[:], false), 1, true, CodeOK},
		{"bad op id", adjustCmd(id, -1, []byte{1, 2}, false), 1, false, CodeInvalid},
		{"below zero", adjustCmd(id, -2, nil, false), 1, false, CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.apply(tc.cmd)
			wantCode(t, r, tc.code)
			if r.Repeated != tc.repeated {
				t.Fatalf("repeated = %v", r.Repeated)
			}
			if n := h.attr(id).Nlink; n != tc.nlink {
				t.Fatalf("nlink = %d, want %d", n, tc.nlink)
			}
		})
	}

	// Op ids are forgotten after OpIDTTL.
	first := layout.NewID()
	mustOK(t, h.apply(adjustCmd(id, 1, first[:], false)))
	if ops := h.opKeys(id); ops != 2*3 { // op1, op2, first
		t.Fatalf("%d op id keys, want 6 (two per op id)", ops)
	}
	h.now += int64(OpIDTTL) - 1e9
	second := layout.NewID()
	mustOK(t, h.apply(adjustCmd(id, 1, second[:], false)))
	h.now += 2e9
	mustOK(t, h.apply(adjustCmd(id, 1, nil, false)))
	third := layout.NewID()
	mustOK(t, h.apply(adjustCmd(id, -1, third[:], false))) // expires all but second
	if ops := h.opKeys(id); ops != 2*2 {                   // second, third
		t.Fatalf("%d op id keys after expiry, want 4", ops)
	}
	if r := mustOK(t, h.apply(adjustCmd(id, -1, first[:], false))); r.Repeated {
		t.Fatal("an expired op id was remembered")
	}
	if r := mustOK(t, h.apply(adjustCmd(id, -1, second[:], false))); !r.Repeated {
		t.Fatal("a recent op id was forgotten")
	}

	// The last link goes: the inode goes with its op ids, and a retry
	// finds nothing.
	n := h.attr(id).Nlink
	mustOK(t, h.apply(adjustCmd(id, -int32(n-1), nil, false)))
	last := layout.NewID()
	mustOK(t, h.apply(unlinkCmd(root, "a", false)))
	if _, err := h.s.GetAttr(context.Background(), id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inode after its last link: %v", err)
	}
	wantCode(t, h.apply(adjustCmd(id, -1, last[:], false)), CodeNotFound)
	if ops := h.opKeys(id); ops != 0 {
		t.Fatalf("%d op ids left after the inode went", ops)
	}
}

// opKeys counts the op id keys of id (both kinds).
func (h *harness) opKeys(id layout.ID) int {
	h.t.Helper()
	n := 0
	for _, prefix := range []byte{prefixOp, prefixOpTime} {
		p := string(idKey(prefix, id))
		for k := range dump(h.t, h.s) {
			if len(k) > len(p) && k[:len(p)] == p {
				n++
			}
		}
	}
	return n
}

// TestKeepOpen: removing the last link with keep_open leaves an orphan
// (nlink 0) whose data stays readable and writable by id until DropInode.
func TestKeepOpen(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remove func(h *harness, id layout.ID) *dfspb.StoreResult
	}{
		{"unlink", func(h *harness, id layout.ID) *dfspb.StoreResult {
			return h.apply(cmd(&dfspb.UnlinkCmd{Parent: b(root), Name: "f", KeepOpen: true}))
		}},
		{"rename over", func(h *harness, id layout.ID) *dfspb.StoreResult {
			h.create(root, "g")
			return h.apply(cmd(&dfspb.RenameCmd{OldParent: b(root), OldName: "g", NewParent: b(root), NewName: "f", KeepOpen: true}))
		}},
		{"link over", func(h *harness, id layout.ID) *dfspb.StoreResult {
			g := h.create(root, "g")
			return h.apply(cmd(&dfspb.LinkCmd{Parent: b(root), Name: "f", Child: b(g), ChildType: fileType, Locator: b(root), NewLink: true, KeepOpen: true}))
		}},
		{"unlink, keep_ids", func(h *harness, id layout.ID) *dfspb.StoreResult {
			other := layout.NewID()
			return h.apply(cmd(&dfspb.UnlinkCmd{Parent: b(root), Name: "f", KeepIds: [][]byte{other[:], id[:]}}))
		}},
		{"rename over, keep_ids", func(h *harness, id layout.ID) *dfspb.StoreResult {
			h.create(root, "g")
			return h.apply(cmd(&dfspb.RenameCmd{OldParent: b(root), OldName: "g", NewParent: b(root), NewName: "f", KeepIds: [][]byte{id[:]}}))
		}},
		{"adjust link", func(h *harness, id layout.ID) *dfspb.StoreResult {
			// The entry is elsewhere: drop it here keeping the
			// inode, then the store of the inode loses the link.
			mustOK(h.t, h.apply(cmd(&dfspb.UnlinkCmd{Parent: b(root), Name: "f", KeepInode: true})))
			op := layout.NewID()
			r := h.apply(adjustCmd(id, -1, op[:], true))
			if r2 := mustOK(h.t, h.apply(adjustCmd(id, -1, op[:], true))); !r2.Repeated {
				h.t.Fatalf("retry not repeated: %+v", r2)
			}
			return r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t).withRoot()
			id := h.create(root, "f")
			mustOK(t, h.apply(writeInlineCmd(id, 0, []byte("data"))))
			r := mustOK(t, tc.remove(h, id))
			if rm := r.Removed; rm == nil || !rm.Orphan || rm.Nlink != 0 || !rm.Local {
				t.Fatalf("removed = %+v", rm)
			}
			if a := h.attr(id); a.Nlink != 0 {
				t.Fatalf("orphan nlink = %d", a.Nlink)
			}
			mustOK(t, h.apply(writeInlineCmd(id, 4, []byte("more"))))
			got, err := h.s.ReadInline(context.Background(), id, 0, 100)
			if err != nil || string(got) != "datamore" {
				t.Fatalf("read orphan: %q %v", got, err)
			}
			// No new link to an orphan.
			wantCode(t, h.apply(hardLinkCmd(root, "again", id, root)), CodeNotFound)
			wantCode(t, h.apply(adjustCmd(id, 1, nil, false)), CodeNotFound)
			mustOK(t, h.apply(cmd(&dfspb.DropInodeCmd{Id: b(id)})))
			if _, err := h.s.GetAttr(context.Background(), id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("orphan after drop: %v", err)
			}
		})
	}
}

// TestKeepIDsOthers: keep_ids naming other inodes deletes as usual.
func TestKeepIDsOthers(t *testing.T) {
	h := newHarness(t).withRoot()
	id := h.create(root, "f")
	other := layout.NewID()
	r := mustOK(t, h.apply(cmd(&dfspb.UnlinkCmd{Parent: b(root), Name: "f", KeepIds: [][]byte{other[:], {1, 2}}})))
	if r.Removed.Orphan {
		t.Fatalf("removed = %+v", r.Removed)
	}
	if _, err := h.s.GetAttr(context.Background(), id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inode after unlink: %v", err)
	}
}

// TestKeepOpenWithLinksLeft: keep_open changes nothing while links remain.
func TestKeepOpenWithLinksLeft(t *testing.T) {
	h := newHarness(t).withRoot()
	id := h.create(root, "f")
	mustOK(t, h.apply(hardLinkCmd(root, "g", id, root)))
	r := mustOK(t, h.apply(cmd(&dfspb.UnlinkCmd{Parent: b(root), Name: "f", KeepOpen: true})))
	if r.Removed.Orphan || r.Removed.Nlink != 1 || h.attr(id).Nlink != 1 {
		t.Fatalf("removed = %+v", r.Removed)
	}
}

// TestSetgidDir: files created in a setgid directory take its group.
func TestSetgidDir(t *testing.T) {
	h := newHarness(t).withRoot()
	dir := h.mkdir(root, "d")
	mustOK(t, h.apply(cmd(&dfspb.SetAttrCmd{Id: b(dir), Mask: uint32(dfspb.SetAttrMask_SET_ATTR_MASK_MODE | dfspb.SetAttrMask_SET_ATTR_MASK_GID), Mode: 0o2775, Gid: 77})))
	plain := h.create(root, "plain")
	inDir := h.create(dir, "f")
	if g := h.attr(plain).Gid; g != 1000 {
		t.Fatalf("gid outside = %d", g)
	}
	if g := h.attr(inDir).Gid; g != 77 {
		t.Fatalf("gid in setgid dir = %d, want 77", g)
	}
}
