package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

var root = layout.RootID

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"small", smallConfig, true},
		{"no dir", func(c *Config) { c.Dir = "" }, false},
		{"tiny block", func(c *Config) { c.BlockSize = 100 }, false},
		{"chunk not multiple", func(c *Config) { c.ChunkSize = c.BlockSize*3 + 1 }, false},
		{"chunk too big", func(c *Config) { c.ChunkSize = 128 << 20 }, false},
		{"inline too big", func(c *Config) { c.InlineMax = c.ChunkSize + 1 }, false},
		{"inline negative", func(c *Config) { c.InlineMax = -1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Dir = "/x"
			tt.mod(&c)
			err := c.Validate()
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("Validate() = %v, ok want %v", err, tt.ok)
			}
		})
	}
}

func TestOpenRefusesOtherFormat(t *testing.T) {
	h := newHarness(t)
	h.cfg.BlockSize = 32 << 10
	if err := h.s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(h.cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Open with another block size: %v, want ErrInvalidConfig", err)
	}
	h.cfg.BlockSize = DefaultBlockSize
	s, err := Open(h.cfg)
	if err != nil {
		t.Fatalf("Open with the right config: %v", err)
	}
	h.s = s
}

func TestErrorCodes(t *testing.T) {
	for _, ce := range codeErrs {
		wrapped := errors.Join(errors.New("context"), ce.err)
		if got := Code(wrapped); got != ce.code {
			t.Errorf("Code(%v) = %v, want %v", ce.err, got, ce.code)
		}
		if got := ce.code.Err(); got != ce.err {
			t.Errorf("%v.Err() = %v, want %v", ce.code, got, ce.err)
		}
		r := errResult(wrapped)
		if err := ResultError(r); !errors.Is(err, ce.err) || err.Error() != wrapped.Error() {
			t.Errorf("ResultError round trip of %v = %v", wrapped, err)
		}
	}
	if Code(nil) != CodeOK || CodeOK.Err() != nil || ResultError(&dfspb.StoreResult{}) != nil {
		t.Error("OK does not map to nil")
	}
	if Code(errors.New("disk on fire")) != CodeIO || ErrorCode(999).Err() != ErrIO {
		t.Error("unknown errors should map to CodeIO and back to ErrIO")
	}
	var ce *CorruptError
	err := error(&CorruptError{File: layout.RootID, Index: 3, Block: 2, Reason: "crc mismatch"})
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.Block != 2 || Code(err) != CodeCorrupt {
		t.Errorf("CorruptError does not wrap ErrCorrupt: %v", err)
	}
}

func TestCreateLookupReadDir(t *testing.T) {
	h := newHarness(t).withRoot()
	ctx := context.Background()
	types := map[string]dfspb.FileType{
		"file": dfspb.FileType_FILE_TYPE_FILE, "link": dfspb.FileType_FILE_TYPE_SYMLINK,
		"fifo": dfspb.FileType_FILE_TYPE_FIFO, "sock": dfspb.FileType_FILE_TYPE_SOCKET,
		"chr": dfspb.FileType_FILE_TYPE_CHAR, "blk": dfspb.FileType_FILE_TYPE_BLOCK,
	}
	ids := map[string]layout.ID{}
	for name, typ := range types {
		id := layout.NewID()
		c := createCmd(root, name, id, typ, true)
		c.GetCreateEntry().Attr.Target = "/target/of/" + name
		c.GetCreateEntry().Attr.Mode = 0o104755 // type bits are dropped
		r := mustOK(t, h.apply(c))
		if r.Existed || r.Attr.Nlink != 1 || r.Attr.Mode != 0o4755 || r.Attr.Version != h.idx || r.Attr.CtimeNs != h.now {
			t.Fatalf("create %s: %+v", name, r.Attr)
		}
		if !slices.Equal(r.Dirent.Locator, root[:]) || r.Parent.MtimeNs != h.now {
			t.Fatalf("create %s: dirent %+v parent %+v", name, r.Dirent, r.Parent)
		}
		if typ == dfspb.FileType_FILE_TYPE_SYMLINK && (r.Attr.Target != "/target/of/link" || r.Attr.Size != 15) {
			t.Fatalf("symlink attr %+v", r.Attr)
		}
		ids[name] = id
	}
	for name, id := range ids {
		de, err := h.s.Lookup(ctx, root, name)
		if err != nil {
			t.Fatalf("Lookup(%s): %v", name, err)
		}
		if !slices.Equal(de.Id, id[:]) || de.Type != types[name] || de.Attr == nil || de.Attr.Type != types[name] {
			t.Fatalf("Lookup(%s) = %+v", name, de)
		}
	}
	if _, err := h.s.Lookup(ctx, root, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup(nope) = %v", err)
	}
	want := []string{"blk", "chr", "fifo", "file", "link", "sock"}
	if got := h.names(root); !slices.Equal(got, want) {
		t.Fatalf("ReadDir = %v, want %v", got, want)
	}
	// Paging.
	var paged []string
	after := ""
	for pages := 0; ; pages++ {
		ents, eof, err := h.s.ReadDir(ctx, root, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Attr == nil {
				t.Fatalf("ReadDir entry %s without attr", e.Name)
			}
			paged = append(paged, e.Name)
		}
		if eof {
			if pages != 1 || len(ents) != 3 {
				t.Fatalf("eof on page %d with %d entries, want page 1 with 3", pages, len(ents))
			}
			break
		}
		after = ents[len(ents)-1].Name
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("paged ReadDir = %v", paged)
	}
	if _, _, err := h.s.ReadDir(ctx, ids["file"], "", 0); !errors.Is(err, ErrNotDir) {
		t.Fatalf("ReadDir(file) = %v", err)
	}
	if _, _, err := h.s.ReadDir(ctx, layout.NewID(), "", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadDir(missing) = %v", err)
	}
}

func TestCreateExisting(t *testing.T) {
	h := newHarness(t).withRoot()
	id := h.create(root, "a")
	other := layout.NewID()

	wantCode(t, h.apply(createCmd(root, "a", other, dfspb.FileType_FILE_TYPE_FILE, true)), CodeExists)
	r := mustOK(t, h.apply(createCmd(root, "a", other, dfspb.FileType_FILE_TYPE_FILE, false)))
	if !r.Existed || !slices.Equal(r.Attr.Id, id[:]) {
		t.Fatalf("open-or-create: %+v", r)
	}
	// A retry of the same exclusive create succeeds.
	r = mustOK(t, h.apply(createCmd(root, "a", id, dfspb.FileType_FILE_TYPE_FILE, true)))
	if r.Existed || !slices.Equal(r.Attr.Id, id[:]) {
		t.Fatalf("retry: %+v", r)
	}
	// The same id under another name is refused.
	wantCode(t, h.apply(createCmd(root, "b", id, dfspb.FileType_FILE_TYPE_FILE, true)), CodeExists)
	wantCode(t, h.apply(createCmd(layout.NewID(), "x", layout.NewID(), dfspb.FileType_FILE_TYPE_FILE, true)), CodeNotFound)
	wantCode(t, h.apply(createCmd(id, "x", layout.NewID(), dfspb.FileType_FILE_TYPE_FILE, true)), CodeNotDir)
	wantCode(t, h.apply(createCmd(root, "d", layout.NewID(), dfspb.FileType_FILE_TYPE_DIR, true)), CodeInvalid)
	wantCode(t, h.apply(createCmd(root, "u", layout.NewID(), dfspb.FileType_FILE_TYPE_UNSPECIFIED, true)), CodeInvalid)
	wantCode(t, h.apply(createCmd(root, "z", layout.ID{}, dfspb.FileType_FILE_TYPE_FILE, true)), CodeInvalid)
	if got := h.names(root); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("names = %v", got)
	}
}

func TestNames(t *testing.T) {
	h := newHarness(t).withRoot()
	tests := []struct {
		name string
		code ErrorCode
	}{
		{strings.Repeat("n", 255), CodeOK},
		{strings.Repeat("n", 256), CodeNameTooLong},
		{"", CodeInvalid},
		{".", CodeInvalid},
		{"..", CodeInvalid},
		{"a/b", CodeInvalid},
		{"a\x00b", CodeInvalid},
		{"ünïcödé ✓", CodeOK},
	}
	for _, tt := range tests {
		wantCode(t, h.apply(createCmd(root, tt.name, layout.NewID(), dfspb.FileType_FILE_TYPE_FILE, true)), tt.code)
		_, err := h.s.Lookup(context.Background(), root, tt.name)
		if tt.code == CodeOK && err != nil || tt.code != CodeOK && Code(err) != tt.code {
			t.Errorf("Lookup(%d bytes) = %v, want %v", len(tt.name), err, tt.code)
		}
	}
}

func TestUnlink(t *testing.T) {
	h := newHarness(t).withRoot()
	id := h.create(root, "f")
	dir := h.mkdir(root, "d")

	wantCode(t, h.apply(unlinkCmd(root, "f", true)), CodeNotDir)
	wantCode(t, h.apply(unlinkCmd(root, "d", false)), CodeIsDir)
	wantCode(t, h.apply(unlinkCmd(root, "none", false)), CodeNotFound)

	// A second link (made in another store) keeps the inode alive.
	mustOK(t, h.apply(cmd(&dfspb.AdjustLinkCmd{Id: b(id), Delta: 1})))
	mustOK(t, h.apply(cmd(&dfspb.SetXattrCmd{Id: b(id), Name: "user.a", Value: []byte("v")})))
	mustOK(t, h.apply(writeInlineCmd(id, 0, []byte("hello"))))
	r := mustOK(t, h.apply(unlinkCmd(root, "f", false)))
	if rm := r.Removed; !rm.Local || rm.Nlink != 1 || !slices.Equal(rm.Id, id[:]) || rm.Size != 5 {
		t.Fatalf("removed = %+v", rm)
	}
	if a := h.attr(id); a.Nlink != 1 {
		t.Fatalf("nlink = %d", a.Nlink)
	}
	// The other link goes away: the inode, its data and xattrs go.
	r = mustOK(t, h.apply(cmd(&dfspb.AdjustLinkCmd{Id: b(id), Delta: -1})))
	if r.Removed == nil || r.Removed.Nlink != 0 {
		t.Fatalf("adjust to 0: %+v", r)
	}
	if _, err := h.s.GetAttr(context.Background(), id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetAttr after delete = %v", err)
	}
	if d := dump(t, h.s); len(d) != 0 {
		for k := range d {
			if k[0] == prefixXattr || k[0] == prefixInline {
				t.Fatalf("leftover key %q", k)
			}
		}
	}

	// rmdir of a local directory checks emptiness itself.
	h.create(dir, "child")
	wantCode(t, h.apply(unlinkCmd(root, "d", true)), CodeNotEmpty)
	mustOK(t, h.apply(unlinkCmd(dir, "child", false)))
	r = mustOK(t, h.apply(unlinkCmd(root, "d", true)))
	if !r.Removed.Local || r.Parent.Nlink != 2 {
		t.Fatalf("rmdir: %+v", r)
	}
	if _, err := h.s.GetAttr(context.Background(), dir); !errors.Is(err, ErrNotFound) {
		t.Fatalf("dir inode after rmdir: %v", err)
	}
	if st, _ := h.s.Statfs(context.Background()); st.Inodes != 1 {
		t.Fatalf("inodes = %d, want 1 (root)", st.Inodes)
	}
}

// TestMkdirRmdirAcrossStores runs the two-store protocols: mkdir (inode in
// the directory's store, entry in the parent's) and rmdir (seal, unlink,
// drop).
func TestMkdirRmdirAcrossStores(t *testing.T) {
	parentStore := newHarness(t).withRoot()
	dirStore := newHarness(t)
	dir := layout.NewID()

	r := mustOK(t, dirStore.apply(createInodeCmd(dir, dfspb.FileType_FILE_TYPE_DIR)))
	if r.Attr.Nlink != 2 {
		t.Fatalf("dir nlink = %d", r.Attr.Nlink)
	}
	// A retried CreateInode is a success.
	if r := mustOK(t, dirStore.apply(createInodeCmd(dir, dfspb.FileType_FILE_TYPE_DIR))); !r.Existed {
		t.Fatal("retry of CreateInode not reported as existing")
	}
	r = mustOK(t, parentStore.apply(linkCmd(root, "d", dir, dfspb.FileType_FILE_TYPE_DIR, dir, true)))
	if r.Parent.Nlink != 3 || r.Dirent.Attr != nil {
		t.Fatalf("link: %+v", r)
	}
	wantCode(t, parentStore.apply(linkCmd(root, "d", layout.NewID(), dfspb.FileType_FILE_TYPE_DIR, dir, true)), CodeExists)
	de, err := parentStore.s.Lookup(context.Background(), root, "d")
	if err != nil || de.Attr != nil || !slices.Equal(de.Locator, dir[:]) {
		t.Fatalf("Lookup = %+v, %v", de, err)
	}

	// Entries of d live in d's store.
	f := dirStore.create(dir, "f")
	wantCode(t, dirStore.apply(cmd(&dfspb.SealDirCmd{Dir: b(dir)})), CodeNotEmpty)
	mustOK(t, dirStore.apply(unlinkCmd(dir, "f", false)))
	mustOK(t, dirStore.apply(cmd(&dfspb.SealDirCmd{Dir: b(dir)})))
	wantCode(t, dirStore.apply(createCmd(dir, "g", layout.NewID(), dfspb.FileType_FILE_TYPE_FILE, true)), CodeStale)
	wantCode(t, dirStore.apply(linkCmd(dir, "g", f, dfspb.FileType_FILE_TYPE_FILE, dir, true)), CodeStale)
	// Unseal (the unlink failed, say) and seal again.
	mustOK(t, dirStore.apply(cmd(&dfspb.UnsealDirCmd{Dir: b(dir)})))
	g := dirStore.create(dir, "g")
	mustOK(t, dirStore.apply(unlinkCmd(dir, "g", false)))
	mustOK(t, dirStore.apply(cmd(&dfspb.SealDirCmd{Dir: b(dir)})))

	r = mustOK(t, parentStore.apply(unlinkCmd(root, "d", true)))
	if r.Removed.Local || r.Parent.Nlink != 2 {
		t.Fatalf("unlink of remote dir: %+v", r)
	}
	r = mustOK(t, dirStore.apply(cmd(&dfspb.DropInodeCmd{Id: b(dir)})))
	if !r.Removed.Local {
		t.Fatalf("drop: %+v", r)
	}
	wantCode(t, dirStore.apply(cmd(&dfspb.DropInodeCmd{Id: b(dir)})), CodeNotFound)
	wantCode(t, dirStore.apply(cmd(&dfspb.SealDirCmd{Dir: b(g)})), CodeNotFound)
	if st, _ := dirStore.s.Statfs(context.Background()); st.Inodes != 0 {
		t.Fatalf("dir store inodes = %d", st.Inodes)
	}
}

func TestRename(t *testing.T) {
	type setup struct {
		h          *harness
		a, b       layout.ID // directories
		f, g, dOne layout.ID
		remote     layout.ID // a directory entry whose inode is elsewhere
	}
	mk := func(t *testing.T) *setup {
		h := newHarness(t).withRoot()
		s := &setup{h: h, a: h.mkdir(root, "a"), b: h.mkdir(root, "b")}
		s.f = h.create(s.a, "f")
		s.g = h.create(s.b, "g")
		s.dOne = h.mkdir(s.a, "sub")
		h.create(s.dOne, "inside")
		s.remote = layout.NewID()
		mustOK(t, h.apply(linkCmd(s.b, "remote", s.remote, dfspb.FileType_FILE_TYPE_DIR, s.remote, true)))
		return s
	}
	tests := []struct {
		name  string
		run   func(s *setup) *dfspb.StoreResult
		code  ErrorCode
		check func(t *testing.T, s *setup, r *dfspb.StoreResult)
	}{
		{"same dir", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.a, "f", s.a, "f2", 0)) }, CodeOK,
			func(t *testing.T, s *setup, r *dfspb.StoreResult) {
				if got := s.h.names(s.a); !slices.Equal(got, []string{"f2", "sub"}) {
					t.Fatalf("names = %v", got)
				}
				if a := s.h.attr(s.f); a.CtimeNs != s.h.now {
					t.Fatal("renamed file ctime not updated")
				}
			}},
		{"same name", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.a, "f", s.a, "f", 0)) }, CodeOK, nil},
		{"across dirs", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.a, "f", s.b, "f", 0)) }, CodeOK,
			func(t *testing.T, s *setup, r *dfspb.StoreResult) {
				if got := s.h.names(s.b); !slices.Equal(got, []string{"f", "g", "remote"}) {
					t.Fatalf("names = %v", got)
				}
				de, _ := s.h.s.Lookup(context.Background(), s.b, "f")
				if !slices.Equal(de.Locator, s.a[:]) || de.Attr == nil {
					t.Fatalf("moved entry keeps its locator and local attr: %+v", de)
				}
			}},
		{"dir across dirs", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.a, "sub", s.b, "sub", 0)) }, CodeOK,
			func(t *testing.T, s *setup, r *dfspb.StoreResult) {
				if s.h.attr(s.a).Nlink != 2 || s.h.attr(s.b).Nlink != 4 {
					t.Fatalf("nlink a=%d b=%d", s.h.attr(s.a).Nlink, s.h.attr(s.b).Nlink)
				}
			}},
		{"replace file", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.a, "f", s.b, "g", 0)) }, CodeOK,
			func(t *testing.T, s *setup, r *dfspb.StoreResult) {
				if rm := r.Removed; rm == nil || !rm.Local || rm.Nlink != 0 || !slices.Equal(rm.Id, s.g[:]) {
					t.Fatalf("removed = %+v", r.Removed)
				}
				if _, err := s.h.s.GetAttr(context.Background(), s.g); !errors.Is(err, ErrNotFound) {
					t.Fatal("replaced inode still there")
				}
				de, _ := s.h.s.Lookup(context.Background(), s.b, "g")
				if !slices.Equal(de.Id, s.f[:]) {
					t.Fatal("target does not name the source")
				}
			}},
		{"noreplace", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.a, "f", s.b, "g", renameNoReplace)) }, CodeExists, nil},
		{"noreplace free", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.a, "f", s.b, "new", renameNoReplace)) }, CodeOK, nil},
		{"exchange", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.a, "f", s.b, "g", renameExchange)) }, CodeOK,
			func(t *testing.T, s *setup, r *dfspb.StoreResult) {
				x, _ := s.h.s.Lookup(context.Background(), s.a, "f")
				y, _ := s.h.s.Lookup(context.Background(), s.b, "g")
				if !slices.Equal(x.Id, s.g[:]) || !slices.Equal(y.Id, s.f[:]) {
					t.Fatal("not exchanged")
				}
			}},
		{"exchange dir and file", func(s *setup) *dfspb.StoreResult {
			return s.h.apply(renameCmd(s.a, "sub", s.b, "g", renameExchange))
		}, CodeOK, func(t *testing.T, s *setup, r *dfspb.StoreResult) {
			if s.h.attr(s.a).Nlink != 2 || s.h.attr(s.b).Nlink != 4 {
				t.Fatalf("nlink a=%d b=%d", s.h.attr(s.a).Nlink, s.h.attr(s.b).Nlink)
			}
		}},
		{"exchange missing", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.a, "f", s.b, "zz", renameExchange)) }, CodeNotFound, nil},
		{"both flags", func(s *setup) *dfspb.StoreResult {
			return s.h.apply(renameCmd(s.a, "f", s.b, "zz", renameExchange|renameNoReplace))
		}, CodeInvalid, nil},
		{"missing source", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.a, "zz", s.b, "f", 0)) }, CodeNotFound, nil},
		{"dir over file", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.a, "sub", s.b, "g", 0)) }, CodeNotDir, nil},
		{"file over dir", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.b, "g", s.a, "sub", 0)) }, CodeIsDir, nil},
		{"dir over non-empty dir", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.b, "remote", s.a, "sub", 0)) }, CodeNotEmpty, nil},
		{"dir over empty local dir", func(s *setup) *dfspb.StoreResult {
			mustOK(s.h.t, s.h.apply(unlinkCmd(s.dOne, "inside", false)))
			return s.h.apply(renameCmd(s.b, "remote", s.a, "sub", 0))
		}, CodeOK, func(t *testing.T, s *setup, r *dfspb.StoreResult) {
			if !r.Removed.Local || s.h.attr(s.a).Nlink != 3 || s.h.attr(s.b).Nlink != 2 {
				t.Fatalf("removed %+v nlink a=%d b=%d", r.Removed, s.h.attr(s.a).Nlink, s.h.attr(s.b).Nlink)
			}
			if _, err := s.h.s.GetAttr(context.Background(), s.dOne); !errors.Is(err, ErrNotFound) {
				t.Fatal("replaced directory inode still there")
			}
		}},
		{"dir over unsealed remote dir", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.a, "sub", s.b, "remote", 0)) }, CodeNotEmpty, nil},
		{"dir over sealed remote dir", func(s *setup) *dfspb.StoreResult {
			c := renameCmd(s.a, "sub", s.b, "remote", 0)
			c.GetRename().TargetSealed = true
			return s.h.apply(c)
		}, CodeOK, func(t *testing.T, s *setup, r *dfspb.StoreResult) {
			if r.Removed.Local || !slices.Equal(r.Removed.Id, s.remote[:]) {
				t.Fatalf("removed = %+v", r.Removed)
			}
		}},
		{"dir into itself", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.a, "sub", s.dOne, "x", 0)) }, CodeInvalid, nil},
		{"into file", func(s *setup) *dfspb.StoreResult { return s.h.apply(renameCmd(s.a, "sub", s.f, "x", 0)) }, CodeNotDir, nil},
		{"hard links to one inode", func(s *setup) *dfspb.StoreResult {
			mustOK(s.h.t, s.h.apply(linkCmd(s.b, "f-link", s.f, dfspb.FileType_FILE_TYPE_FILE, s.a, true)))
			return s.h.apply(renameCmd(s.a, "f", s.b, "f-link", 0))
		}, CodeOK, func(t *testing.T, s *setup, r *dfspb.StoreResult) {
			if got := s.h.names(s.a); !slices.Contains(got, "f") {
				t.Fatal("rename between links of one inode must do nothing")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mk(t)
			r := tt.run(s)
			wantCode(t, r, tt.code)
			if tt.check != nil {
				tt.check(t, s, r)
			}
		})
	}
}

func TestSetAttr(t *testing.T) {
	h := newHarness(t, smallConfig).withRoot()
	ctx := context.Background()
	id := h.create(root, "f")
	mustOK(t, h.apply(writeInlineCmd(id, 0, []byte("0123456789"))))

	r := mustOK(t, h.apply(cmd(&dfspb.SetAttrCmd{Id: b(id), Mask: maskMode | maskUID | maskGID | maskAtime | maskMtime,
		Mode: 0o170750, Uid: 7, Gid: 8, AtimeNs: 11, MtimeNs: 12})))
	if a := r.Attr; a.Mode != 0o750 || a.Uid != 7 || a.Gid != 8 || a.AtimeNs != 11 || a.MtimeNs != 12 || a.CtimeNs != h.now || a.Version != h.idx {
		t.Fatalf("attr = %+v", a)
	}
	r = mustOK(t, h.apply(cmd(&dfspb.SetAttrCmd{Id: b(id), Mask: maskAtimeNow | maskMtimeNow | maskCtime, CtimeNs: 5})))
	if a := r.Attr; a.AtimeNs != h.now || a.MtimeNs != h.now || a.CtimeNs != 5 {
		t.Fatalf("attr = %+v", a)
	}

	// Shrink, then grow: the cut bytes come back as zeros.
	mustOK(t, h.apply(setSizeCmd(id, 4)))
	r = mustOK(t, h.apply(setSizeCmd(id, 8)))
	if r.Attr.Size != 8 || r.Attr.MtimeNs != h.now {
		t.Fatalf("attr = %+v", r.Attr)
	}
	got, err := h.s.ReadInline(ctx, id, 0, 100)
	if err != nil || string(got) != "0123\x00\x00\x00\x00" {
		t.Fatalf("ReadInline = %q, %v", got, err)
	}
	// Growing an inline file with data past InlineMax: move data first.
	wantCode(t, h.apply(setSizeCmd(id, uint64(h.cfg.InlineMax)+1)), CodeTooBig)
	mustOK(t, h.apply(setSizeCmd(id, 0)))
	r = mustOK(t, h.apply(setSizeCmd(id, 1<<20)))
	if !r.Attr.Chunked || r.Attr.Size != 1<<20 {
		t.Fatalf("empty file grown past InlineMax: %+v", r.Attr)
	}
	if _, err := h.s.ReadInline(ctx, id, 0, 1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ReadInline of chunked file = %v", err)
	}
	r = mustOK(t, h.apply(setSizeCmd(id, 100)))
	if !r.Attr.Chunked {
		t.Fatal("chunked file shrunk stays chunked")
	}
	r = mustOK(t, h.apply(setSizeCmd(id, 0)))
	if r.Attr.Chunked {
		t.Fatal("chunked file truncated to 0 becomes inline")
	}

	dir := h.mkdir(root, "d")
	wantCode(t, h.apply(setSizeCmd(dir, 0)), CodeIsDir)
	wantCode(t, h.apply(setSizeCmd(layout.NewID(), 0)), CodeNotFound)
	wantCode(t, h.apply(cmd(&dfspb.SetAttrCmd{Id: b(id), Mask: 1 << 20})), CodeInvalid)
	mustOK(t, h.apply(cmd(&dfspb.SetAttrCmd{Id: b(dir), Mask: maskMode, Mode: 0o700})))
}

func TestWriteInline(t *testing.T) {
	h := newHarness(t, smallConfig).withRoot()
	ctx := context.Background()
	id := h.create(root, "f")
	max := uint64(h.cfg.InlineMax)

	mustOK(t, h.apply(writeInlineCmd(id, 0, []byte("hello"))))
	r := mustOK(t, h.apply(writeInlineCmd(id, 10, []byte("world"))))
	if r.Attr.Size != 15 {
		t.Fatalf("size = %d", r.Attr.Size)
	}
	got, _ := h.s.ReadInline(ctx, id, 0, 100)
	if string(got) != "hello\x00\x00\x00\x00\x00world" {
		t.Fatalf("data = %q", got)
	}
	got, _ = h.s.ReadInline(ctx, id, 3, 4)
	if string(got) != "lo\x00\x00" {
		t.Fatalf("data = %q", got)
	}
	if got, _ := h.s.ReadInline(ctx, id, 100, 4); len(got) != 0 {
		t.Fatalf("read past end = %q", got)
	}
	mustOK(t, h.apply(writeInlineCmd(id, max-1, []byte("x"))))
	wantCode(t, h.apply(writeInlineCmd(id, max-1, []byte("xy"))), CodeTooBig)
	wantCode(t, h.apply(writeInlineCmd(id, max, []byte("x"))), CodeTooBig)
	if a := h.attr(id); a.Size != max {
		t.Fatalf("size = %d after refused writes", a.Size)
	}

	// The client moves the data to chunk 0 and commits the file as chunked.
	r = mustOK(t, h.apply(cmd(&dfspb.CommitSizeCmd{Id: b(id), Size: max + 100, Chunked: true, MtimeNs: 42})))
	if a := r.Attr; !a.Chunked || a.Size != max+100 || a.MtimeNs != 42 {
		t.Fatalf("commit: %+v", a)
	}
	wantCode(t, h.apply(writeInlineCmd(id, 0, []byte("x"))), CodeTooBig)
	// CommitSize keeps the larger size unless exact.
	if r := mustOK(t, h.apply(cmd(&dfspb.CommitSizeCmd{Id: b(id), Size: 5}))); r.Attr.Size != max+100 {
		t.Fatalf("size = %d", r.Attr.Size)
	}
	if r := mustOK(t, h.apply(cmd(&dfspb.CommitSizeCmd{Id: b(id), Size: 5, Exact: true}))); r.Attr.Size != 5 {
		t.Fatalf("size = %d", r.Attr.Size)
	}
	for k := range dump(t, h.s) {
		if k[0] == prefixInline {
			t.Fatal("inline data left after the file became chunked")
		}
	}
	dir := h.mkdir(root, "d")
	wantCode(t, h.apply(writeInlineCmd(dir, 0, []byte("x"))), CodeIsDir)
	// An inline file committed beyond InlineMax without moving data.
	g := h.create(root, "g")
	mustOK(t, h.apply(writeInlineCmd(g, 0, []byte("x"))))
	wantCode(t, h.apply(cmd(&dfspb.CommitSizeCmd{Id: b(g), Size: max + 1})), CodeTooBig)
}

func TestXattr(t *testing.T) {
	h := newHarness(t).withRoot()
	ctx := context.Background()
	id := h.create(root, "f")
	const create, replace = xattrCreate, xattrReplace

	wantCode(t, h.apply(setXattrCmd(id, "user.a", "1", replace)), CodeNoAttr)
	mustOK(t, h.apply(setXattrCmd(id, "user.a", "1", create)))
	wantCode(t, h.apply(setXattrCmd(id, "user.a", "2", create)), CodeExists)
	r := mustOK(t, h.apply(setXattrCmd(id, "user.a", "3", replace)))
	if r.Attr.CtimeNs != h.now {
		t.Fatal("setxattr does not update ctime")
	}
	mustOK(t, h.apply(setXattrCmd(id, "user.b", "", 0)))
	mustOK(t, h.apply(setXattrCmd(id, "trusted.c", "c", 0)))
	if v, err := h.s.GetXattr(ctx, id, "user.a"); err != nil || string(v) != "3" {
		t.Fatalf("GetXattr = %q, %v", v, err)
	}
	if v, err := h.s.GetXattr(ctx, id, "user.b"); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("GetXattr(empty) = %q, %v", v, err)
	}
	if _, err := h.s.GetXattr(ctx, id, "user.none"); !errors.Is(err, ErrNoAttr) {
		t.Fatalf("GetXattr(none) = %v", err)
	}
	if _, err := h.s.GetXattr(ctx, layout.NewID(), "user.a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetXattr(missing inode) = %v", err)
	}
	names, err := h.s.ListXattr(ctx, id)
	if err != nil || !slices.Equal(names, []string{"trusted.c", "user.a", "user.b"}) {
		t.Fatalf("ListXattr = %v, %v", names, err)
	}
	mustOK(t, h.apply(cmd(&dfspb.RemoveXattrCmd{Id: b(id), Name: "user.a"})))
	wantCode(t, h.apply(cmd(&dfspb.RemoveXattrCmd{Id: b(id), Name: "user.a"})), CodeNoAttr)
	wantCode(t, h.apply(setXattrCmd(id, strings.Repeat("x", 256), "", 0)), CodeNameTooLong)
	wantCode(t, h.apply(setXattrCmd(id, "user.big", strings.Repeat("x", maxXattrLen+1), 0)), CodeTooBig)
	wantCode(t, h.apply(setXattrCmd(id, "user.a", "", create|replace)), CodeInvalid)
	wantCode(t, h.apply(setXattrCmd(layout.NewID(), "user.a", "", 0)), CodeNotFound)
}
