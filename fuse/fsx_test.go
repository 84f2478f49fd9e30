package fuse_test

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dfsproject/dfs/fuse"
	"github.com/dfsproject/dfs/pkg/client"
)

// TestFsx is a randomized differential exerciser in the manner of fsx:
// from a seed, random writes, truncates, reads, fallocates, shared mmap
// reads and writes, O_APPEND writes, reopens, writes and reads through a
// second descriptor, files unlinked while open, and writes through a
// second client and its mount, on a few files of the
// mount and on reference copies in a local directory. Every read is
// compared, and the size after every operation. Now and then a brick of
// the fake volume fails calls or loses answers (the client retries). A
// failure prints the seed,
// the command that replays it and the last operations.
//
// make test runs a bounded run (1,500 operations or 15 s); make fsx a long
// one (-fsx.long: 50,000 operations, files up to 9 MiB).
var (
	fsxSeed = flag.Uint64("fsx.seed", 0, "fsx: seed of the random operations (0: a random one, printed)")
	fsxOps  = flag.Int("fsx.ops", 0, "fsx: number of operations (default 1500, or 50000 with -fsx.long)")
	fsxLong = flag.Bool("fsx.long", false, "fsx: a long run (more operations, larger files, no time limit)")
	fsxTime = flag.Duration("fsx.time", 15*time.Second, "fsx: stop after this long, even before -fsx.ops operations (0: no limit)")
)

// Boundaries the offsets cluster around: the inline limit of the brick
// store (store.DefaultInlineMax) and its chunk size (client.ChunkSize).
const (
	fsxInline = 64 << 10
	fsxChunk  = client.ChunkSize
	fsxFiles  = 3
	fsxLogLen = 50
)

// fsxSide is one file on one side (the mount or the reference): its
// descriptors.
type fsxSide struct {
	path    string
	fd      int // O_RDWR
	second  int // O_RDWR too, opened independently
	mounted bool
}

type fsxFile struct {
	name string
	mnt  fsxSide
	ref  fsxSide
}

type fsx struct {
	t       *testing.T
	e       *env
	r       *rand.Rand
	seed    uint64
	maxSize int64
	files   []*fsxFile
	op      int
	log     []string // the last fsxLogLen operations
	scratch int      // a memfd through which mapped memory is read and written
	mnt2    string   // a second mount, of the second client
}

func TestFsx(t *testing.T) {
	t.Parallel() // its own mount; runs beside TestPJD
	seed := *fsxSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	ops, maxSize, limit := 1500, int64(4*fsxChunk+fsxInline), *fsxTime
	if *fsxLong {
		ops, maxSize, limit = 50000, int64(9*fsxChunk+fsxInline), 0
	}
	if *fsxOps > 0 {
		ops = *fsxOps
	}
	runFsx(t, seed, ops, maxSize, limit)
}

// TestFsxFoundSeeds replays, up to the operation that failed, the runs of
// TestFsx that once found a bug.
func TestFsxFoundSeeds(t *testing.T) {
	for _, c := range []struct {
		seed uint64
		ops  int
		bug  string
	}{
		{6490500352897709517, 325, "a second mount's cached name opened a file removed while open elsewhere"},
		{3461457102617005531, 212, "an open kept pages the kernel cached before another mount's write"},
	} {
		t.Run(fmt.Sprint(c.seed), func(t *testing.T) {
			t.Logf("found: %s", c.bug)
			runFsx(t, c.seed, c.ops, int64(4*fsxChunk+fsxInline), 0)
		})
	}
}

// runFsx runs ops random operations drawn from seed on files up to
// maxSize bytes (for at most limit, if set).
func runFsx(t *testing.T, seed uint64, ops int, maxSize int64, limit time.Duration) {
	e := mountEnv(t)
	t.Logf("fsx: seed %d, %d operations (time limit %v), files up to %d bytes", seed, ops, limit, maxSize)
	x := &fsx{t: t, e: e, r: rand.New(rand.NewPCG(seed, seed^0x5eed)), seed: seed, maxSize: maxSize}
	scratch, err := unix.MemfdCreate("fsx", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	x.scratch = scratch
	defer unix.Close(scratch)
	x.mnt2 = mountSecond(t, e)
	ref := t.TempDir()
	for i := range fsxFiles {
		name := fmt.Sprintf("fsx%d", i)
		f := &fsxFile{name: name,
			mnt: fsxSide{path: filepath.Join(e.mnt, name), mounted: true},
			ref: fsxSide{path: filepath.Join(ref, name)}}
		for _, s := range f.sides() {
			if err := os.WriteFile(s.path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			x.open(s)
		}
		x.files = append(x.files, f)
	}
	defer func() {
		for _, f := range x.files {
			for _, s := range f.sides() {
				x.close(s)
			}
		}
	}()
	start := time.Now()
	counts := map[string]int{}
	spent := map[string]time.Duration{}
	for x.op = 1; x.op <= ops; x.op++ {
		if limit > 0 && time.Since(start) > limit {
			t.Logf("fsx: time limit reached after %d operations", x.op-1)
			break
		}
		if x.r.IntN(20) == 0 {
			counts[x.armFault()]++
		}
		f := x.files[x.r.IntN(len(x.files))]
		opStart := time.Now()
		name := x.step(f)
		counts[name]++
		spent[name] += time.Since(opStart)
		x.checkSize(f)
		if x.op%100 == 0 {
			x.compareAll(f)
		}
	}
	x.op-- // the last operation run: the final checks belong to it
	for _, f := range x.files {
		x.compareAll(f)
		x.reopen(f)
		x.compareOther(f)
	}
	var summary []string
	for name, n := range counts {
		summary = append(summary, fmt.Sprintf("%s: %d (%v)", name, n, spent[name].Round(time.Millisecond)))
	}
	sort.Strings(summary)
	t.Logf("fsx: %d operations in %v:\n  %s", x.op, time.Since(start).Round(time.Millisecond), strings.Join(summary, "\n  "))
}

func (f *fsxFile) sides() []*fsxSide { return []*fsxSide{&f.mnt, &f.ref} }

// logf records the current operation.
func (x *fsx) logf(format string, args ...any) {
	line := fmt.Sprintf("#%d ", x.op) + fmt.Sprintf(format, args...)
	if len(x.log) == fsxLogLen {
		x.log = x.log[1:]
	}
	x.log = append(x.log, line)
}

// fail stops the run with the seed, the replay command and the log.
func (x *fsx) fail(format string, args ...any) {
	x.t.Helper()
	x.t.Fatalf("fsx: operation #%d: %s\nseed %d; replay: go test ./fuse/ -run 'TestFsx$' -fsx.seed=%d -fsx.ops=%d%s\nlast operations:\n  %s",
		x.op, fmt.Sprintf(format, args...), x.seed, x.seed, x.op, map[bool]string{true: " -fsx.long"}[*fsxLong],
		strings.Join(x.log, "\n  "))
}

// must fails the run on a setup error (one that is not compared).
func (x *fsx) must(what string, s *fsxSide, err error) {
	x.t.Helper()
	if err != nil {
		x.fail("%s %s: %v", what, s.path, err)
	}
}

func (x *fsx) open(s *fsxSide) {
	var err error
	s.fd, err = unix.Open(s.path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	x.must("open", s, err)
	s.second, err = unix.Open(s.path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	x.must("open second", s, err)
}

func (x *fsx) close(s *fsxSide) {
	x.must("close", s, unix.Close(s.fd))
	x.must("close second", s, unix.Close(s.second))
}

func (x *fsx) reopen(f *fsxFile) {
	for _, s := range f.sides() {
		x.close(s)
		x.open(s)
	}
}

// both runs op on the mount and the reference and requires the same
// outcome.
func (x *fsx) both(f *fsxFile, what string, op func(s *fsxSide) error) {
	x.t.Helper()
	em, er := op(&f.mnt), op(&f.ref)
	if errnoName(em) != errnoName(er) {
		x.fail("%s on %s: dfs %v, ext4 %v", what, f.name, em, er)
	}
}

func (x *fsx) size(s *fsxSide) int64 {
	var st unix.Stat_t
	x.must("fstat", s, unix.Fstat(s.fd, &st))
	return st.Size
}

func (x *fsx) checkSize(f *fsxFile) {
	x.t.Helper()
	if a, b := x.size(&f.mnt), x.size(&f.ref); a != b {
		x.fail("size of %s: dfs %d, ext4 %d", f.name, a, b)
	}
}

// fsxNoise is random data (no zeros) that writes take their bytes from.
var fsxNoise = func() []byte {
	b := randBytes(99, 2*fsxChunk+fsxPatternShifts)
	for i := range b {
		b[i] |= 1
	}
	return b
}()

// fsxPatternShifts is the number of different starting points of the
// data in fsxNoise.
const fsxPatternShifts = 1 << 16

// pattern returns n bytes (at most 2 chunks) particular to the current
// operation.
func (x *fsx) pattern(n int) []byte {
	shift := (x.op * 4099) % fsxPatternShifts
	return bytes.Clone(fsxNoise[shift : shift+n])
}

// offset picks an offset: anywhere, near a boundary of the inline limit or
// of a chunk, or near the end of the file.
func (x *fsx) offset(size int64) int64 {
	var off int64
	switch x.r.IntN(3) {
	case 0:
		off = x.r.Int64N(x.maxSize)
	case 1:
		bounds := []int64{fsxInline, fsxChunk, 2 * fsxChunk, 3 * fsxChunk, fsxChunk + fsxInline}
		off = bounds[x.r.IntN(len(bounds))] + x.r.Int64N(1025) - 512
	default:
		off = size + x.r.Int64N(8193) - 4096
	}
	return min(max(off, 0), x.maxSize-1)
}

// length picks a length: small, up to a little over the inline limit,
// or (less often: they cost) up to one and a half chunks.
func (x *fsx) length(off int64) int {
	var n int64
	switch k := x.r.IntN(20); {
	case k < 9:
		n = 1 + x.r.Int64N(512)
	case k < 17:
		n = 1 + x.r.Int64N(fsxInline+4096)
	default:
		n = 1 + x.r.Int64N(fsxChunk+fsxChunk/2)
	}
	return int(max(min(n, x.maxSize-off), 1))
}

// step runs one random operation on f and returns its kind.
func (x *fsx) step(f *fsxFile) string {
	size := x.size(&f.ref)
	switch k := x.r.IntN(100); {
	case k < 70:
		return x.fdStep(f, size)
	case k < 72:
		return x.orphan(f)
	case k < 76:
		n := x.newSize(size)
		x.logf("%s truncate(path) %d (from %d)", f.name, n, size)
		x.both(f, "truncate", func(s *fsxSide) error { return unix.Truncate(s.path, n) })
		return "truncate(path)"
	case k < 82:
		// Through a descriptor of its own, opened and closed around the
		// write while the others stay open: O_APPEND, O_TRUNC or neither.
		flags, kind := unix.O_WRONLY|unix.O_APPEND, "append"
		off := int64(-1)
		switch x.r.IntN(4) {
		case 0:
			flags, kind = unix.O_WRONLY|unix.O_TRUNC, "open O_TRUNC and write"
		case 1:
			flags, kind = unix.O_WRONLY, "write through a fresh descriptor"
			off = x.offset(size)
		}
		data := x.pattern(x.r.IntN(20000))
		x.logf("%s %s off=%d len=%d", f.name, kind, off, len(data))
		x.both(f, kind, func(s *fsxSide) error {
			fd, err := unix.Open(s.path, flags|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			werr := writeFull(fd, data, off)
			if err := unix.Close(fd); werr == nil {
				werr = err
			}
			return werr
		})
		return kind
	case k < 87:
		x.logf("%s close and reopen", f.name)
		x.reopen(f)
		return "reopen"
	case k < 90:
		x.logf("%s fsync", f.name)
		x.both(f, "fsync", func(s *fsxSide) error { return unix.Fsync(s.fd) })
		return "fsync"
	case k < 92: // rarer: it reads the whole file twice
		x.logf("%s compare through the other client and its mount", f.name)
		x.reopen(f)
		x.compareOther(f)
		return "other read"
	default:
		off := x.offset(size)
		data := x.pattern(x.length(off))
		viaMount := x.r.IntN(2) == 0
		x.logf("%s write off=%d len=%d through the other client (its mount: %v; this mount closed)", f.name, off, len(data), viaMount)
		x.writeOther(f, off, data, viaMount)
		return "other write"
	}
}

// newSize picks a size to truncate to.
func (x *fsx) newSize(size int64) int64 {
	switch x.r.IntN(3) {
	case 0:
		return x.r.Int64N(x.maxSize)
	case 1:
		return x.offset(size)
	}
	return x.r.Int64N(fsxInline + 2)
}

// fdStep runs a random operation that needs only f's open descriptors
// (no path): writes through either, reads, ftruncate, fallocate, punch
// hole, mmap.
func (x *fsx) fdStep(f *fsxFile, size int64) string {
	switch k := x.r.IntN(70); {
	case k < 25:
		off := x.offset(size)
		data := x.pattern(x.length(off))
		second := x.r.IntN(4) == 0
		x.logf("%s write off=%d len=%d second_fd=%v", f.name, off, len(data), second)
		x.both(f, "pwrite", func(s *fsxSide) error { return writeFull(s.pick(second), data, off) })
		return "write"
	case k < 45:
		off := x.offset(size)
		n := x.length(off)
		second := x.r.IntN(3) == 0
		x.logf("%s read off=%d len=%d second_fd=%v", f.name, off, n, second)
		x.read(f, off, n, second)
		return "read"
	case k < 51:
		n := x.newSize(size)
		x.logf("%s ftruncate %d (from %d)", f.name, n, size)
		x.both(f, "ftruncate", func(s *fsxSide) error { return unix.Ftruncate(s.fd, n) })
		return "ftruncate"
	case k < 56:
		off := x.offset(size)
		n := int64(x.length(off))
		x.logf("%s fallocate mode=0 off=%d len=%d", f.name, off, n)
		x.both(f, "fallocate", func(s *fsxSide) error { return unix.Fallocate(s.fd, 0, off, n) })
		return "fallocate"
	case k < 62:
		off := x.offset(size)
		n := int64(x.length(off))
		x.logf("%s punch hole off=%d len=%d", f.name, off, n)
		x.both(f, "punch hole", func(s *fsxSide) error {
			return unix.Fallocate(s.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
		})
		return "punch"
	default:
		if size == 0 {
			return "mmap (empty)"
		}
		off := x.r.Int64N(size)
		n := int(min(int64(x.length(off)), size-off))
		if x.r.IntN(2) == 0 {
			x.logf("%s mmap read off=%d len=%d", f.name, off, n)
			x.mmapRead(f, size, off, n)
			return "mmap read"
		}
		data := x.pattern(n)
		x.logf("%s mmap write off=%d len=%d (+msync)", f.name, off, n)
		x.both(f, "mmap write", func(s *fsxSide) error { return x.mmapWrite(s, size, off, data) })
		return "mmap write"
	}
}

// orphan unlinks f while its descriptors stay open, runs a few operations
// through them (the file must work until the last close), then saves the
// content under the name again (a new file) and reopens that.
func (x *fsx) orphan(f *fsxFile) string {
	x.logf("%s unlink while open", f.name)
	x.both(f, "unlink", func(s *fsxSide) error { return unix.Unlink(s.path) })
	for range 1 + x.r.IntN(5) {
		x.fdStep(f, x.size(&f.ref))
		x.checkSize(f)
	}
	x.logf("%s save the unlinked file's content under its name and reopen", f.name)
	x.read(f, 0, int(x.size(&f.ref))+1, false)
	for _, s := range f.sides() {
		var st unix.Stat_t
		x.must("fstat", s, unix.Fstat(s.fd, &st))
		if st.Nlink != 0 {
			x.fail("%s: nlink %d after unlink", s.path, st.Nlink)
		}
		data := make([]byte, st.Size)
		_, err := preadFull(s.fd, data, 0)
		x.must("read the unlinked file", s, err)
		x.must("save", s, os.WriteFile(s.path, data, 0o644))
		x.close(s)
		x.open(s)
	}
	return "unlink while open"
}

// pick returns the second descriptor or the first.
func (s *fsxSide) pick(second bool) int {
	if second {
		return s.second
	}
	return s.fd
}

// armFault makes a brick of the fake volume fail its next few calls, or
// apply its next few commands and lose the answers: the client retries,
// and nothing of it may show.
func (x *fsx) armFault() string {
	sv := x.e.c.Subvolumes[x.r.IntN(len(x.e.c.Subvolumes))]
	b := sv.Bricks[x.r.IntN(len(sv.Bricks))]
	n := 1 + x.r.IntN(3)
	if x.r.IntN(2) == 0 {
		x.logf("fault: subvolume %d brick %s fails its next %d calls", sv.Index, b.Addr, n)
		b.FailNext(n)
		return "fault: fail calls"
	}
	x.logf("fault: subvolume %d brick %s loses the answers of its next %d commands", sv.Index, b.Addr, n)
	b.LoseNextAnswers(n)
	return "fault: lose answers"
}

// writeFull writes all of p at off (off < 0: at the file offset).
func writeFull(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		var n int
		var err error
		if off < 0 {
			n, err = unix.Write(fd, p)
		} else {
			n, err = unix.Pwrite(fd, p, off)
			off += int64(n)
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// preadFull reads up to len(p) bytes at off, short only at the end of
// the file.
func preadFull(fd int, p []byte, off int64) (int, error) {
	got := 0
	for got < len(p) {
		n, err := unix.Pread(fd, p[got:], off+int64(got))
		if err != nil {
			return got, err
		}
		if n == 0 {
			break
		}
		got += n
	}
	return got, nil
}

func (x *fsx) read(f *fsxFile, off int64, n int, second bool) {
	x.t.Helper()
	bufs := [2][]byte{make([]byte, n), make([]byte, n)}
	var got [2]int
	for i, s := range f.sides() {
		fd := s.fd
		if second {
			fd = s.second
		}
		k, err := preadFull(fd, bufs[i], off)
		x.must("pread", s, err)
		got[i] = k
	}
	if got[0] != got[1] || !bytes.Equal(bufs[0][:got[0]], bufs[1][:got[1]]) {
		x.fail("read %s off=%d len=%d: dfs %d bytes, ext4 %d bytes, first difference at file offset %d",
			f.name, off, n, got[0], got[1], off+int64(firstDiff(bufs[0][:got[0]], bufs[1][:got[1]])))
	}
}

// compareAll reads the whole file on both sides.
func (x *fsx) compareAll(f *fsxFile) {
	x.t.Helper()
	size := x.size(&f.ref)
	x.logf("%s compare all %d bytes", f.name, size)
	x.read(f, 0, int(size)+1, false)
}

// compareOther reads the whole file through the second client and
// through its mount (after a reopen here: close-to-open consistency).
func (x *fsx) compareOther(f *fsxFile) {
	x.t.Helper()
	want, err := os.ReadFile(f.ref.path)
	x.must("read", &f.ref, err)
	got, err := x.readOther(f)
	if err != nil {
		x.fail("other client: %v", err)
	}
	if !bytes.Equal(got, want) {
		x.fail("other client reads %s: %d bytes, ext4 %d, first difference at %d", f.name, len(got), len(want), firstDiff(got, want))
	}
	got, err = os.ReadFile(filepath.Join(x.mnt2, f.name))
	if err != nil {
		x.fail("second mount: %v", err)
	}
	if !bytes.Equal(got, want) {
		x.fail("second mount reads %s: %d bytes, ext4 %d, first difference at %d", f.name, len(got), len(want), firstDiff(got, want))
	}
}

func (x *fsx) otherFile(f *fsxFile, flags int) (*client.File, error) {
	ctx := x.t.Context()
	n, _, err := x.e.other.Lookup(ctx, x.e.other.Root(), f.name)
	if err != nil {
		return nil, err
	}
	return x.e.other.Open(ctx, n, flags)
}

func (x *fsx) readOther(f *fsxFile) ([]byte, error) {
	ctx := x.t.Context()
	of, err := x.otherFile(f, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer of.Release(ctx)
	buf := make([]byte, of.Size())
	k, err := of.ReadAt(ctx, buf, 0)
	if k != len(buf) {
		return nil, fmt.Errorf("read %d of %d bytes: %v", k, len(buf), err)
	}
	return buf, nil
}

// writeOther writes through the second client (or its mount) while the
// mount has the file closed, then reopens it on the mount: the mount must
// see the write (close-to-open consistency).
func (x *fsx) writeOther(f *fsxFile, off int64, data []byte, viaMount bool) {
	x.t.Helper()
	ctx := x.t.Context()
	x.close(&f.mnt)
	defer x.open(&f.mnt)
	x.must("pwrite", &f.ref, writeFull(f.ref.fd, data, off))
	if viaMount {
		p := filepath.Join(x.mnt2, f.name)
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			x.fail("second mount: open: %v", err)
		}
		if err := writeFull(fd, data, off); err != nil {
			x.fail("second mount: pwrite: %v", err)
		}
		if err := unix.Close(fd); err != nil {
			x.fail("second mount: close: %v", err)
		}
		return
	}
	of, err := x.otherFile(f, os.O_RDWR)
	if err != nil {
		x.fail("other client open: %v", err)
	}
	if _, err := of.WriteAt(ctx, data, off); err != nil {
		x.fail("other client write: %v", err)
	}
	if err := of.Release(ctx); err != nil {
		x.fail("other client release: %v", err)
	}
}

// mountSecond mounts the second client (env.other) too, and returns the
// mount point.
func mountSecond(t *testing.T, e *env) string {
	t.Helper()
	return mountOther(t, e, fuse.DefaultOptions())
}

// mountOther mounts the second client (env.other) with opts, and returns
// the mount point.
func mountOther(t *testing.T, e *env, opts fuse.Options) string {
	t.Helper()
	dir := t.TempDir()
	opts.FsName = "test2:/" + e.c.Volume
	m, err := fuse.Mount(dir, e.other, opts)
	if err != nil {
		t.Fatalf("second mount: %v", err)
	}
	t.Cleanup(func() {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			err := m.Unmount()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("unmount the second mount: %v", err)
				_ = unix.Unmount(dir, unix.MNT_DETACH)
				break
			}
		}
		m.Wait()
	})
	return dir
}

// The mapped memory is only ever touched by system calls (copied to and
// from the scratch memfd), never by Go code: a page fault on the mount
// blocks its thread until this process's FUSE server answers, and a fault
// outside a system call would stall the Go runtime's stop-the-world with
// the server stopped.

func (x *fsx) mmapRead(f *fsxFile, size, off int64, n int) {
	x.t.Helper()
	var bufs [2][]byte
	for i, s := range f.sides() {
		m, err := unix.Mmap(s.fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
		x.must("mmap", s, err)
		_, err = unix.Pwrite(x.scratch, m[off:off+int64(n)], 0)
		x.must("copy from the mapping", s, err)
		x.must("munmap", s, unix.Munmap(m))
		bufs[i] = make([]byte, n)
		_, err = preadFull(x.scratch, bufs[i], 0)
		x.must("read scratch", s, err)
	}
	if !bytes.Equal(bufs[0], bufs[1]) {
		x.fail("mmap read %s off=%d len=%d: first difference at file offset %d", f.name, off, n, off+int64(firstDiff(bufs[0], bufs[1])))
	}
}

func (x *fsx) mmapWrite(s *fsxSide, size, off int64, data []byte) error {
	if err := writeFull(x.scratch, data, 0); err != nil {
		return err
	}
	m, err := unix.Mmap(s.fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	defer unix.Munmap(m)
	if _, err := preadFull(x.scratch, m[off:off+int64(len(data))], 0); err != nil {
		return err
	}
	return unix.Msync(m, unix.MS_SYNC)
}
