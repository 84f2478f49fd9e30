package client_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestRoundTrip writes files of the interesting sizes and reads them back
// through the writer and through a second client.
func TestRoundTrip(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	other := e.open()
	root := e.v.Root()
	for i, size := range []int{0, 1, 4096, client.InlineMax, client.InlineMax + 1, client.ChunkSize, client.ChunkSize + 1, 3 << 20, 3<<20 + 1<<19} {
		data := randBytes(uint64(i), size)
		name := "f" + string(rune('a'+i))
		n := e.writeFile(e.v, root, name, data)
		for _, v := range []*client.Volume{e.v, other} {
			got := e.readAll(v, n)
			if !bytes.Equal(got, data) {
				t.Fatalf("size %d: read %d bytes, differ at %d", size, len(got), firstDiff(got, data))
			}
			a, err := v.GetAttr(e.ctx, n)
			mustOK(t, "getattr", err)
			if a.Size != uint64(size) || a.Chunked != (size > client.InlineMax) {
				t.Fatalf("size %d: attr size %d chunked %v", size, a.Size, a.Chunked)
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestSmallFileTwoRounds: create, write, close of a small file is two Raft
// commands.
func TestSmallFileTwoRounds(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	before := e.applied()
	n, _, err := e.v.Create(e.ctx, e.v.Root(), "small", 0o644, 0, 0, true)
	mustOK(t, "create", err)
	f, err := e.v.Open(e.ctx, n, syscall.O_WRONLY)
	mustOK(t, "open", err)
	_, err = f.WriteAt(e.ctx, []byte("hello, world"), 0)
	mustOK(t, "write", err)
	mustOK(t, "close", f.Release(e.ctx))
	if n := e.applied() - before; n != 2 {
		t.Fatalf("create-write-close of a small file took %d commands, want 2", n)
	}
	// Many small writes are still one commit.
	n = e.create(e.v.Root(), "small2")
	before = e.applied()
	f, err = e.v.Open(e.ctx, n, syscall.O_WRONLY)
	mustOK(t, "open", err)
	for i := range 100 {
		_, err := f.WriteAt(e.ctx, []byte{byte(i)}, int64(i))
		mustOK(t, "write", err)
	}
	mustOK(t, "close", f.Release(e.ctx))
	if n := e.applied() - before; n != 1 {
		t.Fatalf("100 small writes and close took %d commands, want 1", n)
	}
	// Scattered writes too: the gaps are filled from the committed data.
	before = e.applied()
	f, err = e.v.Open(e.ctx, n, syscall.O_WRONLY)
	mustOK(t, "open", err)
	for _, off := range []int64{3, 50, 200, 1000} {
		_, err := f.WriteAt(e.ctx, []byte("xy"), off)
		mustOK(t, "write", err)
	}
	mustOK(t, "close", f.Release(e.ctx))
	if n := e.applied() - before; n != 1 {
		t.Fatalf("scattered small writes and close took %d commands, want 1", n)
	}
	want := make([]byte, 1002)
	for i := range 100 {
		want[i] = byte(i)
	}
	for _, off := range []int{3, 50, 200, 1000} {
		copy(want[off:], "xy")
	}
	if got := e.readAll(e.v, n); !bytes.Equal(got, want) {
		t.Fatalf("after scattered writes: differ at %d", firstDiff(got, want))
	}
}

// TestWritePatterns: sparse, overwrite, append, growth past InlineMax, all
// checked against a model.
func TestWritePatterns(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	other := e.open()
	root := e.v.Root()
	type op struct {
		off  int
		size int
		sync bool // flush after
	}
	cases := map[string][]op{
		"sparse-inline":     {{off: 1000, size: 10, sync: true}, {off: 5000, size: 3}},
		"sparse-chunked":    {{off: 3<<20 + 17, size: 100}},
		"hole-then-fill":    {{off: 2 << 20, size: 10, sync: true}, {off: 0, size: 10}},
		"overwrite-inline":  {{off: 0, size: 1000, sync: true}, {off: 500, size: 100, sync: true}, {off: 999, size: 2}},
		"append-inline":     {{off: 0, size: 100, sync: true}, {off: 100, size: 100, sync: true}, {off: 200, size: 100}},
		"grow-past-inline":  {{off: 0, size: 60000, sync: true}, {off: 60000, size: 10000}},
		"grow-in-steps":     {{off: 0, size: 40000, sync: true}, {off: 30000, size: 30000, sync: true}, {off: 65536, size: 1}},
		"gaps-inline":       {{off: 0, size: 10, sync: true}, {off: 100, size: 10}, {off: 200, size: 10}, {off: 50, size: 5}},
		"overwrite-chunked": {{off: 0, size: 2 << 20, sync: true}, {off: 1<<20 - 5, size: 10}, {off: 100, size: 100, sync: true}},
		"unaligned-stream":  {{off: 0, size: 333333}, {off: 333333, size: 777777}, {off: 1111110, size: 2222222}},
		"random-small":      {{off: 12345, size: 1}, {off: 2<<20 + 3, size: 7}, {off: 999999, size: 2}, {off: 70000, size: 11, sync: true}, {off: 12340, size: 10}},
	}
	seed := uint64(100)
	for name, ops := range cases {
		t.Run(name, func(t *testing.T) {
			n := e.create(root, name)
			f, err := e.v.Open(e.ctx, n, syscall.O_RDWR)
			mustOK(t, "open", err)
			var model []byte
			for _, o := range ops {
				seed++
				data := randBytes(seed, o.size)
				_, err := f.WriteAt(e.ctx, data, int64(o.off))
				mustOK(t, "write", err)
				if end := o.off + o.size; end > len(model) {
					model = append(model, make([]byte, end-len(model))...)
				}
				copy(model[o.off:], data)
				// The writer sees its own writes before any flush.
				got := make([]byte, len(model))
				k, err := f.ReadAt(e.ctx, got, 0)
				if k != len(model) || (err != nil && err != io.EOF) || !bytes.Equal(got, model) {
					t.Fatalf("read-own-writes: %d bytes, %v, differ at %d", k, err, firstDiff(got[:k], model))
				}
				if o.sync {
					mustOK(t, "flush", f.Flush(e.ctx))
				}
			}
			mustOK(t, "release", f.Release(e.ctx))
			if got := e.readAll(other, n); !bytes.Equal(got, model) {
				t.Fatalf("other client reads %d bytes (want %d), differ at %d", len(got), len(model), firstDiff(got, model))
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	other := e.open()
	root := e.v.Root()
	check := func(n client.Node, want []byte) {
		t.Helper()
		if got := e.readAll(other, n); !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes, want %d, differ at %d", len(got), len(want), firstDiff(got, want))
		}
	}
	data := randBytes(1, 3<<20+100)
	for _, step := range []int{3<<20 + 100, 2<<20 + 5, 5 << 20, 1 << 20, client.InlineMax + 3, 100, 0, 50, client.InlineMax + 10, 2 << 20, 0} {
		n := e.writeFile(e.v, root, "t", data)
		_, err := e.v.SetAttr(e.ctx, n, client.SetAttrIn{Mask: client.SetSize, Size: uint64(step)})
		mustOK(t, "truncate", err)
		want := make([]byte, step)
		copy(want, data)
		check(n, want)
		// Growing after a shrink reads zeros, not the old data.
		_, err = e.v.SetAttr(e.ctx, n, client.SetAttrIn{Mask: client.SetSize, Size: uint64(step) + 3<<20})
		mustOK(t, "grow", err)
		check(n, append(want, make([]byte, 3<<20)...))
	}
	// Inline growth and shrink.
	small := []byte("0123456789")
	n := e.writeFile(e.v, root, "s", small)
	for _, size := range []int{5, 40000, client.InlineMax, client.InlineMax + 1, 7} {
		_, err := e.v.SetAttr(e.ctx, n, client.SetAttrIn{Mask: client.SetSize, Size: uint64(size)})
		mustOK(t, "truncate", err)
		want := make([]byte, size)
		copy(want, small[:min(5, len(small))])
		check(n, want)
	}
	// Truncating an open file with buffered writes, and O_TRUNC.
	f, err := e.v.Open(e.ctx, n, syscall.O_RDWR|syscall.O_TRUNC)
	mustOK(t, "open trunc", err)
	if f.Size() != 0 {
		t.Fatalf("size after O_TRUNC: %d", f.Size())
	}
	_, err = f.WriteAt(e.ctx, randBytes(2, 2<<20), 0)
	mustOK(t, "write", err)
	mustOK(t, "truncate open", f.Truncate(e.ctx, 1000))
	_, err = f.WriteAt(e.ctx, []byte("end"), 2000)
	mustOK(t, "write", err)
	mustOK(t, "release", f.Release(e.ctx))
	want := append(randBytes(2, 2<<20)[:1000], make([]byte, 1000)...)
	check(n, append(want, "end"...))
	// Stale chunks are gone: only chunk 0 of "t" (size 2 MiB... 0) and
	// nothing else remains beyond what the files need.
	if c := e.chunks(); c > 1 {
		t.Fatalf("%d chunks stored for files that need at most 1", c)
	}
}

// TestUnlinkDeletesChunks: removing a chunked file removes its chunks from
// every subvolume.
func TestUnlinkDeletesChunks(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	root := e.v.Root()
	e.writeFile(e.v, root, "big", randBytes(3, 5<<20))
	if c := e.chunks(); c != 5 {
		t.Fatalf("%d chunks for a 5 MiB file", c)
	}
	per := make(map[int]bool)
	for i, sv := range e.c.Subvolumes {
		s, _ := sv.Store().Statfs(e.ctx)
		per[i] = s.Chunks > 0
	}
	if !per[0] || !per[1] {
		t.Logf("chunks not striped over both subvolumes: %v (possible by chance)", per)
	}
	mustOK(t, "unlink", e.v.Unlink(e.ctx, root, "big"))
	if c := e.chunks(); c != 0 {
		t.Fatalf("%d chunks left", c)
	}
}

// TestSharedOpenState: two Files of one inode share buffered writes, and
// GetAttr reports the buffered size.
func TestSharedOpenState(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	n := e.create(e.v.Root(), "f")
	w, err := e.v.Open(e.ctx, n, syscall.O_WRONLY)
	mustOK(t, "open w", err)
	r, err := e.v.Open(e.ctx, n, syscall.O_RDONLY)
	mustOK(t, "open r", err)
	data := randBytes(4, 200000)
	_, err = w.WriteAt(e.ctx, data, 0)
	mustOK(t, "write", err)
	a, err := e.v.GetAttr(e.ctx, n)
	mustOK(t, "getattr", err)
	if a.Size != 200000 {
		t.Fatalf("getattr during buffered write: size %d", a.Size)
	}
	got := make([]byte, 300000)
	k, err := r.ReadAt(e.ctx, got, 0)
	if k != 200000 || err != io.EOF || !bytes.Equal(got[:k], data) {
		t.Fatalf("reader: %d bytes, %v", k, err)
	}
	_, err = r.WriteAt(e.ctx, []byte("x"), 0)
	wantErr(t, "write to read-only handle", err, client.ErrInvalid)
	mustOK(t, "release w", w.Release(e.ctx))
	mustOK(t, "release r", r.Release(e.ctx))
	mustOK(t, "release again", r.Release(e.ctx))
	_, err = e.v.Open(e.ctx, e.v.Root(), 0)
	wantErr(t, "open dir", err, client.ErrIsDir)
}

// TestBigRandomRoundTrip: a 3.5 MiB file written in odd pieces, read back in
// odd pieces.
func TestBigRandomRoundTrip(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	other := e.open()
	data := randBytes(5, 3<<20+1<<19)
	n := e.create(e.v.Root(), "big")
	f, err := e.v.Open(e.ctx, n, syscall.O_WRONLY)
	mustOK(t, "open", err)
	r := rand.New(rand.NewPCG(1, 2))
	for off := 0; off < len(data); {
		k := min(len(data)-off, 1+r.IntN(300000))
		_, err := f.WriteAt(e.ctx, data[off:off+k], int64(off))
		mustOK(t, "write", err)
		off += k
	}
	mustOK(t, "release", f.Release(e.ctx))
	g, err := other.Open(e.ctx, n, syscall.O_RDONLY)
	mustOK(t, "open", err)
	defer g.Release(e.ctx)
	got := make([]byte, 0, len(data))
	buf := make([]byte, 1<<20)
	for off := 0; ; {
		k := 1 + r.IntN(len(buf))
		m, err := g.ReadAt(e.ctx, buf[:k], int64(off))
		got = append(got, buf[:m]...)
		off += m
		if err == io.EOF {
			break
		}
		mustOK(t, "read", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, want %d, differ at %d", len(got), len(data), firstDiff(got, data))
	}
}
