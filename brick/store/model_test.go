package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// The model is a plain in-memory file system with the store's rules. The
// randomized test applies the same operations to both and compares results
// and, from time to time, the whole state.

type mEntry struct {
	id  layout.ID
	dir bool
}

type mInode struct {
	dir     bool
	nlink   uint32
	size    uint64
	data    []byte // inline data as stored (may be shorter than size)
	chunked bool
	xattrs  map[string]string
	entries map[string]mEntry
}

type mChunk struct {
	file  layout.ID
	index uint64
}

type model struct {
	inlineMax int
	inodes    map[layout.ID]*mInode
	chunks    map[mChunk][]byte
}

func newModel(inlineMax int) *model {
	return &model{
		inlineMax: inlineMax,
		inodes:    map[layout.ID]*mInode{root: {dir: true, nlink: 2, xattrs: map[string]string{}, entries: map[string]mEntry{}}},
		chunks:    map[mChunk][]byte{},
	}
}

func (m *model) create(parent layout.ID, name string, id layout.ID, excl bool) ErrorCode {
	p := m.inodes[parent]
	if _, ok := p.entries[name]; ok {
		if excl {
			return CodeExists
		}
		return CodeOK
	}
	p.entries[name] = mEntry{id: id}
	m.inodes[id] = &mInode{nlink: 1, xattrs: map[string]string{}}
	return CodeOK
}

func (m *model) mkdir(parent layout.ID, name string, id layout.ID) ErrorCode {
	p := m.inodes[parent]
	if _, ok := p.entries[name]; ok {
		return CodeExists
	}
	p.entries[name] = mEntry{id: id, dir: true}
	p.nlink++
	m.inodes[id] = &mInode{dir: true, nlink: 2, xattrs: map[string]string{}, entries: map[string]mEntry{}}
	return CodeOK
}

// drop removes entry name of parent and its link.
func (m *model) drop(parent layout.ID, name string) {
	p := m.inodes[parent]
	e := p.entries[name]
	delete(p.entries, name)
	if e.dir {
		p.nlink--
		delete(m.inodes, e.id)
		return
	}
	in := m.inodes[e.id]
	if in.nlink--; in.nlink == 0 {
		delete(m.inodes, e.id)
	}
}

func (m *model) unlink(parent layout.ID, name string, expectDir bool) ErrorCode {
	e, ok := m.inodes[parent].entries[name]
	switch {
	case !ok:
		return CodeNotFound
	case e.dir && !expectDir:
		return CodeIsDir
	case !e.dir && expectDir:
		return CodeNotDir
	case e.dir && len(m.inodes[e.id].entries) > 0:
		return CodeNotEmpty
	}
	m.drop(parent, name)
	return CodeOK
}

// isAncestor reports whether a is d or one of d's ancestors.
func (m *model) isAncestor(a, d layout.ID) bool {
	if a == d {
		return true
	}
	for id, in := range m.inodes {
		for _, e := range in.entries {
			if e.id == d && e.dir {
				return m.isAncestor(a, id)
			}
		}
	}
	return false
}

func (m *model) rename(op layout.ID, on string, np layout.ID, nn string, noreplace bool) ErrorCode {
	src, ok := m.inodes[op].entries[on]
	if !ok {
		return CodeNotFound
	}
	if src.id == np || src.id == op {
		return CodeInvalid
	}
	if op == np && on == nn {
		return CodeOK
	}
	dst, exists := m.inodes[np].entries[nn]
	if exists {
		switch {
		case noreplace:
			return CodeExists
		case dst.id == src.id:
			return CodeOK
		case src.dir && !dst.dir:
			return CodeNotDir
		case !src.dir && dst.dir:
			return CodeIsDir
		case dst.dir && len(m.inodes[dst.id].entries) > 0:
			return CodeNotEmpty
		}
		m.drop(np, nn)
	}
	delete(m.inodes[op].entries, on)
	m.inodes[np].entries[nn] = src
	if src.dir && op != np {
		m.inodes[op].nlink--
		m.inodes[np].nlink++
	}
	return CodeOK
}

func (m *model) writeInline(id layout.ID, off int, data []byte) ErrorCode {
	in := m.inodes[id]
	end := off + len(data)
	if in.chunked || end > m.inlineMax {
		return CodeTooBig
	}
	if len(in.data) < end {
		in.data = append(in.data, make([]byte, end-len(in.data))...)
	}
	copy(in.data[off:], data)
	in.size = max(in.size, uint64(end))
	return CodeOK
}

func (m *model) setSize(id layout.ID, size uint64) ErrorCode {
	in := m.inodes[id]
	if in.chunked {
		in.chunked = size != 0
	} else if size > uint64(m.inlineMax) {
		if len(in.data) > 0 {
			return CodeTooBig
		}
		in.chunked = true
	} else if uint64(len(in.data)) > size {
		in.data = in.data[:size]
	}
	in.size = size
	return CodeOK
}

func (m *model) setXattr(id layout.ID, name, value string, flags uint32) ErrorCode {
	in := m.inodes[id]
	_, exists := in.xattrs[name]
	switch {
	case exists && flags&xattrCreate != 0:
		return CodeExists
	case !exists && flags&xattrReplace != 0:
		return CodeNoAttr
	}
	in.xattrs[name] = value
	return CodeOK
}

func (m *model) removeXattr(id layout.ID, name string) ErrorCode {
	in := m.inodes[id]
	if _, ok := in.xattrs[name]; !ok {
		return CodeNoAttr
	}
	delete(in.xattrs, name)
	return CodeOK
}

func (m *model) writeChunk(k mChunk, off int, data []byte) ErrorCode {
	c := m.chunks[k]
	if end := off + len(data); end > len(c) {
		c = append(c, make([]byte, end-len(c))...)
	}
	copy(c[off:], data)
	m.chunks[k] = c
	return CodeOK
}

func (m *model) truncateChunk(k mChunk, n int) ErrorCode {
	c := m.chunks[k]
	switch {
	case n == 0:
		delete(m.chunks, k)
		return CodeOK
	case n < len(c):
		c = c[:n]
	default:
		c = append(c, make([]byte, n-len(c))...)
	}
	m.chunks[k] = c
	return CodeOK
}

func (m *model) deleteChunks(file layout.ID, from uint64) ErrorCode {
	for k := range m.chunks {
		if k.file == file && k.index >= from {
			delete(m.chunks, k)
		}
	}
	return CodeOK
}

// compare checks the whole store against the model.
func (m *model) compare(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	for id, in := range m.inodes {
		a, err := s.GetAttr(ctx, id)
		if err != nil {
			t.Fatalf("GetAttr(%s): %v", id, err)
		}
		if a.Nlink != in.nlink || (a.Type == dfspb.FileType_FILE_TYPE_DIR) != in.dir {
			t.Fatalf("inode %s: nlink %d dir %v, model %d %v", id, a.Nlink, a.Type, in.nlink, in.dir)
		}
		names, err := s.ListXattr(ctx, id)
		if err != nil || len(names) != len(in.xattrs) {
			t.Fatalf("ListXattr(%s) = %v, %v; model %v", id, names, err, in.xattrs)
		}
		for _, n := range names {
			if v, err := s.GetXattr(ctx, id, n); err != nil || string(v) != in.xattrs[n] {
				t.Fatalf("xattr %s of %s = %q, %v", n, id, v, err)
			}
		}
		if in.dir {
			ents, eof, err := s.ReadDir(ctx, id, "", 0)
			if err != nil || !eof || len(ents) != len(in.entries) {
				t.Fatalf("ReadDir(%s) = %d entries, %v; model %d", id, len(ents), err, len(in.entries))
			}
			for _, e := range ents {
				me, ok := in.entries[e.Name]
				if !ok || !slices.Equal(e.Id, me.id[:]) || (e.Type == dfspb.FileType_FILE_TYPE_DIR) != me.dir || e.Attr == nil {
					t.Fatalf("entry %q of %s = %+v, model %+v", e.Name, id, e, me)
				}
			}
			continue
		}
		if a.Size != in.size || a.Chunked != in.chunked {
			t.Fatalf("file %s: size %d chunked %v, model %d %v", id, a.Size, a.Chunked, in.size, in.chunked)
		}
		if !in.chunked {
			got, err := s.ReadInline(ctx, id, 0, int(in.size)+10)
			want := append(slices.Clone(in.data), make([]byte, int(in.size)-len(in.data))...)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("ReadInline(%s) = %d bytes, %v; model %d", id, len(got), err, len(want))
			}
		}
	}
	var chunkBytes uint64
	for k, want := range m.chunks {
		got, err := s.ReadChunk(ctx, k.file, k.index, 0, 1<<30)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("chunk %s.%d = %d bytes, %v; model %d", k.file, k.index, len(got), err, len(want))
		}
		chunkBytes += uint64(len(want))
	}
	st, err := s.Statfs(ctx)
	if err != nil || st.Inodes != uint64(len(m.inodes)) || st.Chunks != uint64(len(m.chunks)) || st.ChunkBytes != chunkBytes {
		t.Fatalf("statfs = %+v, %v; model %d inodes %d chunks %d bytes", st, err, len(m.inodes), len(m.chunks), chunkBytes)
	}
	if _, err := s.Scrub(ctx, func(r ScrubReport) { t.Fatalf("scrub: %v", r.Err) }); err != nil {
		t.Fatal(err)
	}
}

func TestModel(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	steps := 1500
	if testing.Short() {
		seeds, steps = seeds[:1], 400
	}
	for _, seed := range seeds {
		t.Run("seed"+string(rune('0'+seed)), func(t *testing.T) { runModel(t, seed, steps) })
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	h := newHarness(t, smallConfig).withRoot()
	m := newModel(h.cfg.InlineMax)
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	names := []string{"a", "b", "c", "d", "e"}
	chunkFiles := []layout.ID{layout.NewID(), layout.NewID()}
	pick := func(dirs bool) (layout.ID, bool) {
		var ids []layout.ID
		for id, in := range m.inodes {
			if in.dir == dirs {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return layout.ID{}, false
		}
		slices.SortFunc(ids, func(a, b layout.ID) int { return bytes.Compare(a[:], b[:]) })
		return ids[rng.IntN(len(ids))], true
	}
	anyInode := func() layout.ID {
		id, ok := pick(rng.IntN(2) == 0)
		if !ok {
			id, _ = pick(true)
		}
		return id
	}
	data := func(maxLen int) []byte { return pattern(byte(rng.IntN(256)), 1+rng.IntN(maxLen)) }
	bs, cs := h.cfg.BlockSize, h.cfg.ChunkSize

	// op builds a command and applies it to the model, returning the
	// expected code.
	type op struct {
		cmd  *dfspb.StoreCommand
		want ErrorCode
	}
	next := func() (op, bool) {
		switch rng.IntN(13) {
		case 0, 1:
			p, _ := pick(true)
			name, id, excl := names[rng.IntN(len(names))], layout.NewID(), rng.IntN(2) == 0
			return op{createCmd(p, name, id, dfspb.FileType_FILE_TYPE_FILE, excl), m.create(p, name, id, excl)}, true
		case 2:
			// The inode half of mkdir, with the link in the same batch.
			p, _ := pick(true)
			name, id := names[rng.IntN(len(names))], layout.NewID()
			want := m.mkdir(p, name, id)
			if want != CodeOK {
				return op{}, false
			}
			mustOK(t, h.apply(createInodeCmd(id, dfspb.FileType_FILE_TYPE_DIR)))
			return op{linkCmd(p, name, id, dfspb.FileType_FILE_TYPE_DIR, id, true), want}, true
		case 3:
			p, _ := pick(true)
			name, dir := names[rng.IntN(len(names))], rng.IntN(3) == 0
			return op{unlinkCmd(p, name, dir), m.unlink(p, name, dir)}, true
		case 4, 5:
			op1, _ := pick(true)
			np, _ := pick(true)
			on, nn := names[rng.IntN(len(names))], names[rng.IntN(len(names))]
			if e, ok := m.inodes[op1].entries[on]; ok && e.dir && e.id != np && m.isAncestor(e.id, np) {
				return op{}, false // the client refuses moves into a subtree
			}
			noreplace := rng.IntN(4) == 0
			var flags uint32
			if noreplace {
				flags = renameNoReplace
			}
			return op{renameCmd(op1, on, np, nn, flags), m.rename(op1, on, np, nn, noreplace)}, true
		case 6:
			f, ok := pick(false)
			if !ok {
				return op{}, false
			}
			off, d := rng.IntN(m.inlineMax+100), data(300)
			return op{writeInlineCmd(f, uint64(off), d), m.writeInline(f, off, d)}, true
		case 7:
			f, ok := pick(false)
			if !ok {
				return op{}, false
			}
			size := uint64(rng.IntN(2 * m.inlineMax))
			return op{setSizeCmd(f, size), m.setSize(f, size)}, true
		case 8:
			id := anyInode()
			name, val, flags := names[rng.IntN(2)], string(data(20)), uint32(rng.IntN(3))
			return op{setXattrCmd(id, name, val, flags), m.setXattr(id, name, val, flags)}, true
		case 9:
			id := anyInode()
			name := names[rng.IntN(2)]
			return op{cmd(&dfspb.RemoveXattrCmd{Id: b(id), Name: name}), m.removeXattr(id, name)}, true
		case 10, 11:
			k := mChunk{chunkFiles[rng.IntN(2)], uint64(rng.IntN(3))}
			var off int
			switch rng.IntN(3) {
			case 0:
				off = rng.IntN(4) * bs
			case 1:
				off = len(m.chunks[k])
			default:
				off = rng.IntN(cs)
			}
			d := data(3 * bs)
			if off+len(d) > cs {
				d = d[:cs-off]
			}
			if len(d) == 0 {
				return op{}, false
			}
			return op{writeChunkCmd(k.file, k.index, off, d), m.writeChunk(k, off, d)}, true
		default:
			k := mChunk{chunkFiles[rng.IntN(2)], uint64(rng.IntN(3))}
			if rng.IntN(4) == 0 {
				from := uint64(rng.IntN(3))
				return op{cmd(&dfspb.DeleteChunksCmd{File: b(k.file), FromIndex: from}), m.deleteChunks(k.file, from)}, true
			}
			n := rng.IntN(cs + 1)
			if rng.IntN(3) == 0 {
				n = rng.IntN(4) * bs
			}
			return op{truncChunkCmd(k.file, k.index, n), m.truncateChunk(k, n)}, true
		}
	}

	hist := map[string]int{}
	defer func() { t.Log(hist) }()
	for step := 0; step < steps; {
		// A batch of 1..8 operations, applied in one ApplyBatch.
		n := 1 + rng.IntN(8)
		var ops []op
		for len(ops) < n {
			if o, ok := next(); ok {
				ops = append(ops, o)
			}
		}
		cmds := make([]*dfspb.StoreCommand, len(ops))
		for i, o := range ops {
			cmds[i] = o.cmd
		}
		for i, r := range h.applyBatch(cmds...) {
			hist[fmt.Sprintf("%T/%v", cmds[i].Op, ErrorCode(r.Code))]++
			if got := ErrorCode(r.Code); got != ops[i].want {
				t.Fatalf("step %d: %v: code %v (%s), model %v", step+i, cmds[i].Op, got, r.Message, ops[i].want)
			}
		}
		step += n
		switch {
		case step%300 < n:
			h.reopen()
			m.compare(t, h.s)
		case step%500 < n:
			data := snapshotOf(t, h.s)
			if err := h.s.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
				t.Fatal(err)
			}
			m.compare(t, h.s)
		case step%50 < n:
			m.compare(t, h.s)
		}
	}
	m.compare(t, h.s)
}
