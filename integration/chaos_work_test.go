package integration

import (
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// chaosDirs is how many top-level directories the writers spread over.
const chaosDirs = 8

// fileRec is an acknowledged file: what its last successful close left.
type fileRec struct {
	rel    string // path below the mount
	mount  int    // the mount its writer uses
	size   int64
	sum    [32]byte
	hstate []byte // sha256 state after size bytes, for appends
	ino    uint64
	acked  time.Time
	gen    int  // bumped when a writer starts changing the file
	busy   bool // a writer is changing it
	idx    int  // position in workload.list
}

// callRec is one timed application call.
type callRec struct {
	kind  string
	path  string
	mount int
	at    time.Duration // since the run started
	d     time.Duration
	errno string // "" on success
	fault string // the fault in effect when the call started or ended
	exp   bool   // an expected failure (ENOSPC under the enospc fault)
}

func (c callRec) String() string {
	s := fmt.Sprintf("%s %s on mount %d at %.1fs took %.2fs", c.kind, c.path, c.mount, c.at.Seconds(), c.d.Seconds())
	if c.errno != "" {
		s += " failed: " + c.errno
	}
	if c.fault != "" {
		s += " during " + c.fault
	} else {
		s += " (no fault in effect)"
	}
	return s
}

type opStat struct {
	n, fails       int
	total, max     time.Duration
	over1s, over5s int
}

// workload is the writers and readers of a run and what they recorded.
type workload struct {
	r      *chaosRun
	seed   int64
	start  time.Time
	stopCh chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu           sync.Mutex
	files        map[string]*fileRec
	list         []*fileRec
	deleted      map[string]bool
	dirs         []string
	ops          map[string]*opStat
	failures     []callRec
	wrong        []string
	long         callRec
	stalls       []callRec
	acked        int
	ackedBytes   int64
	live         int64 // bytes of the files in the registry
	undetermined int
}

func newWorkload(r *chaosRun, seed int64) *workload {
	return &workload{r: r, seed: seed, stopCh: make(chan struct{}), files: map[string]*fileRec{},
		deleted: map[string]bool{}, ops: map[string]*opStat{}}
}

// setup makes the top-level directories.
func (w *workload) setup() error {
	for i := 0; i < chaosDirs; i++ {
		d := fmt.Sprintf("d%02d", i)
		if err := os.Mkdir(filepath.Join(w.r.mounts[0], d), 0o755); err != nil {
			return err
		}
		w.dirs = append(w.dirs, d)
	}
	return nil
}

func (w *workload) run(writers, readers int) {
	for i := 0; i < writers; i++ {
		w.wg.Add(1)
		go w.writer(i, rand.New(rand.NewSource(w.seed+int64(i)+1)))
	}
	for i := 0; i < readers; i++ {
		w.wg.Add(1)
		go w.reader(i, rand.New(rand.NewSource(w.seed+1000+int64(i))))
	}
}

// stop stops the workers and waits for them; it may be called again.
func (w *workload) stop() {
	w.once.Do(func() { close(w.stopCh) })
	w.wg.Wait()
}

func (w *workload) stopped() bool {
	select {
	case <-w.stopCh:
		return true
	default:
		return false
	}
}

// errnoOf names the errno of a failed call.
func errnoOf(err error) string {
	var en syscall.Errno
	if errors.As(err, &en) {
		return unixErrName(en)
	}
	return "error: " + err.Error()
}

func unixErrName(en syscall.Errno) string {
	names := map[syscall.Errno]string{
		syscall.EIO: "EIO", syscall.ENOENT: "ENOENT", syscall.ENOSPC: "ENOSPC", syscall.ETIMEDOUT: "ETIMEDOUT",
		syscall.EAGAIN: "EAGAIN", syscall.EINTR: "EINTR", syscall.ESTALE: "ESTALE", syscall.ENOTCONN: "ENOTCONN",
		syscall.EEXIST: "EEXIST", syscall.EROFS: "EROFS", syscall.EBADF: "EBADF", syscall.ENOTEMPTY: "ENOTEMPTY",
		syscall.EINVAL: "EINVAL", syscall.EHOSTUNREACH: "EHOSTUNREACH", syscall.ECONNREFUSED: "ECONNREFUSED",
		syscall.ENODATA: "ENODATA", syscall.EDQUOT: "EDQUOT", syscall.EPERM: "EPERM", syscall.EACCES: "EACCES",
	}
	if n, ok := names[en]; ok {
		return n
	}
	return fmt.Sprintf("errno %d (%v)", int(en), en)
}

// timed runs one application call and returns its duration.
func timed(fn func() error) (time.Time, time.Duration, error) {
	t0 := time.Now()
	err := fn()
	return t0, time.Since(t0), err
}

// record accounts one call.
func (w *workload) record(kind, path string, mount int, t0 time.Time, d time.Duration, err error, faultAtStart string) {
	fault := faultAtStart
	if now := w.r.activeFault(); fault == "" {
		fault = now
	}
	c := callRec{kind: kind, path: path, mount: mount, at: t0.Sub(w.start), d: d, fault: fault}
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.ops[kind]
	if st == nil {
		st = &opStat{}
		w.ops[kind] = st
	}
	st.n++
	st.total += d
	st.max = max(st.max, d)
	if d > time.Second {
		st.over1s++
	}
	if d > 5*time.Second {
		st.over5s++
	}
	if d > w.long.d {
		w.long = c
	}
	if err != nil {
		st.fails++
		c.errno = errnoOf(err)
		// With tmpfs bricks a full brick may answer ENOSPC at any time:
		// that is the right answer, not a failure.
		c.exp = c.errno == "ENOSPC" && w.r.faults["enospc"]
		w.failures = append(w.failures, c)
	}
	if d > 2*time.Second {
		w.stalls = append(w.stalls, c)
	}
}

// call runs and records one application call.
func (w *workload) call(kind, path string, mount int, fn func() error) error {
	f := w.r.activeFault()
	t0, d, err := timed(fn)
	w.record(kind, path, mount, t0, d, err, f)
	return err
}

// fileSize draws a file size: mostly small files, some up to ~3 MiB.
func fileSize(rng *rand.Rand) int64 {
	switch p := rng.Intn(100); {
	case p < 10:
		return int64(rng.Intn(2)) * int64(rng.Intn(100)) // empty or tiny
	case p < 45:
		return int64(1 + rng.Intn(4096))
	case p < 75:
		return int64(4096 + rng.Intn(64<<10))
	case p < 90:
		return int64(64<<10 + rng.Intn(1<<20))
	default:
		return int64(1<<20 + rng.Intn(2<<20))
	}
}

// writeContent writes size bytes drawn from rng to f in pieces of random
// size, feeding h, timing each write.
func (w *workload) writeContent(f *os.File, h hash.Hash, size int64, rng *rand.Rand, rel string, mount int) error {
	data := make([]byte, size)
	rng.Read(data)
	h.Write(data)
	for off := int64(0); off < size; {
		n := min(int64(4096+rng.Intn(512<<10)), size-off)
		piece := data[off : off+n]
		if err := w.call("write", rel, mount, func() error { _, err := f.Write(piece); return err }); err != nil {
			return err
		}
		off += n
	}
	return nil
}

func hashState(h hash.Hash) []byte {
	b, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	return b
}

func hashFrom(state []byte) hash.Hash {
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		panic(err)
	}
	return h
}

func sumOf(h hash.Hash) (out [32]byte) {
	copy(out[:], h.Sum(nil))
	return out
}

// writer creates, overwrites, appends to and deletes its own files, and
// makes directories now and then.
func (w *workload) writer(id int, rng *rand.Rand) {
	defer w.wg.Done()
	mount := id % len(w.r.mounts)
	mnt := w.r.mounts[mount]
	var own []*fileRec
	dirs := append([]string(nil), w.dirs...)
	budget := int64(*chaosLiveMiB) << 20
	for seq := 0; !w.stopped(); seq++ {
		p := rng.Intn(100)
		w.mu.Lock()
		full := w.live > budget
		w.mu.Unlock()
		if full && len(own) > 0 {
			p = 95 // over the budget: delete
		}
		switch {
		case p < 3:
			rel := filepath.Join(dirs[rng.Intn(len(dirs))], fmt.Sprintf("w%d-dir%d", id, seq))
			if w.call("mkdir", rel, mount, func() error { return os.Mkdir(filepath.Join(mnt, rel), 0o755) }) == nil {
				dirs = append(dirs, rel)
				w.mu.Lock()
				w.dirs = append(w.dirs, rel)
				w.mu.Unlock()
			}
		case p < 55 || len(own) == 0:
			rel := filepath.Join(dirs[rng.Intn(len(dirs))], fmt.Sprintf("w%d-f%d", id, seq))
			if rec := w.create(rel, mount, rng); rec != nil {
				own = append(own, rec)
			}
		default:
			i := rng.Intn(len(own))
			rec := own[i]
			var ok bool
			switch {
			case p < 75:
				ok = w.modify(rec, rng, false)
			case p < 92:
				ok = w.modify(rec, rng, true)
			default:
				ok = w.remove(rec)
			}
			if !ok || p >= 92 {
				own[i] = own[len(own)-1]
				own = own[:len(own)-1]
			}
		}
	}
}

// create writes a new file; it returns its record once close succeeded.
func (w *workload) create(rel string, mount int, rng *rand.Rand) *fileRec {
	path := filepath.Join(w.r.mounts[mount], rel)
	var f *os.File
	if err := w.call("create", rel, mount, func() (err error) {
		f, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		return err
	}); err != nil {
		w.undetermine(nil)
		return nil
	}
	h := sha256.New()
	size := fileSize(rng)
	var st os.FileInfo
	err := w.writeContent(f, h, size, rng, rel, mount)
	if err == nil {
		err = w.call("fstat", rel, mount, func() (err error) { st, err = f.Stat(); return err })
	}
	if err != nil {
		f.Close()
		w.undetermine(nil)
		return nil
	}
	if w.call("close", rel, mount, f.Close) != nil {
		w.undetermine(nil)
		return nil
	}
	rec := &fileRec{rel: rel, mount: mount, size: size, sum: sumOf(h), hstate: hashState(h), acked: time.Now(),
		ino: st.Sys().(*syscall.Stat_t).Ino}
	w.mu.Lock()
	rec.idx = len(w.list)
	w.list = append(w.list, rec)
	w.files[rel] = rec
	w.acked++
	w.ackedBytes += size
	w.live += size
	w.mu.Unlock()
	return rec
}

// modify overwrites (truncating) or appends to an acknowledged file. On
// failure the file's content is undetermined and it leaves the registry.
func (w *workload) modify(rec *fileRec, rng *rand.Rand, appendTo bool) bool {
	w.mu.Lock()
	rec.busy = true
	rec.gen++
	w.mu.Unlock()
	path := filepath.Join(w.r.mounts[rec.mount], rec.rel)
	kind, flags, h, size := "open-trunc", os.O_WRONLY|os.O_TRUNC, sha256.New(), fileSize(rng)
	if appendTo {
		kind, flags, h, size = "open-append", os.O_WRONLY|os.O_APPEND, hashFrom(rec.hstate), int64(rng.Intn(256<<10))
	}
	var f *os.File
	if w.call(kind, rec.rel, rec.mount, func() (err error) { f, err = os.OpenFile(path, flags, 0); return err }) != nil {
		w.undetermine(rec)
		return false
	}
	if err := w.writeContent(f, h, size, rng, rec.rel, rec.mount); err != nil {
		f.Close()
		w.undetermine(rec)
		return false
	}
	if w.call("close", rec.rel, rec.mount, f.Close) != nil {
		w.undetermine(rec)
		return false
	}
	w.mu.Lock()
	w.live -= rec.size
	if appendTo {
		rec.size += size
	} else {
		rec.size = size
	}
	w.live += rec.size
	rec.sum, rec.hstate, rec.acked, rec.busy = sumOf(h), hashState(h), time.Now(), false
	w.acked++
	w.ackedBytes += size
	w.mu.Unlock()
	return true
}

// remove unlinks an acknowledged file.
func (w *workload) remove(rec *fileRec) bool {
	w.mu.Lock()
	rec.busy = true
	rec.gen++
	w.mu.Unlock()
	err := w.call("unlink", rec.rel, rec.mount, func() error { return os.Remove(filepath.Join(w.r.mounts[rec.mount], rec.rel)) })
	w.mu.Lock()
	w.drop(rec)
	if err == nil {
		w.deleted[rec.rel] = true
	} else {
		w.undetermined++
	}
	w.mu.Unlock()
	return err == nil
}

// undetermine forgets a file whose change failed: its content is now
// unknown (nil rec: a create that failed).
func (w *workload) undetermine(rec *fileRec) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.undetermined++
	if rec != nil {
		w.drop(rec)
	}
}

// drop removes rec from the registry. Callers hold mu.
func (w *workload) drop(rec *fileRec) {
	if w.files[rec.rel] != rec {
		return
	}
	delete(w.files, rec.rel)
	w.live -= rec.size
	last := w.list[len(w.list)-1]
	w.list[rec.idx] = last
	last.idx = rec.idx
	w.list = w.list[:len(w.list)-1]
}

// reader re-reads acknowledged files and lists directories.
func (w *workload) reader(id int, rng *rand.Rand) {
	defer w.wg.Done()
	buf := make([]byte, 1<<20)
	for !w.stopped() {
		mount := rng.Intn(len(w.r.mounts))
		mnt := w.r.mounts[mount]
		if rng.Intn(10) == 0 {
			w.mu.Lock()
			dir := w.dirs[rng.Intn(len(w.dirs))]
			w.mu.Unlock()
			w.call("readdir", dir, mount, func() error { _, err := os.ReadDir(filepath.Join(mnt, dir)); return err })
			continue
		}
		w.mu.Lock()
		if len(w.list) == 0 {
			w.mu.Unlock()
			time.Sleep(10 * time.Millisecond) // nothing written yet
			continue
		}
		rec := w.list[rng.Intn(len(w.list))]
		// Close-to-open: what any mount wrote and closed, every mount
		// reads whole on its next open.
		skip := rec.busy
		gen, want, size, wmount, acked := rec.gen, rec.sum, rec.size, rec.mount, rec.acked
		w.mu.Unlock()
		if skip {
			continue
		}
		got, n, calls, err := w.readFile(filepath.Join(mnt, rec.rel), buf)
		w.mu.Lock()
		changed := rec.gen != gen || rec.busy || w.files[rec.rel] != rec
		w.mu.Unlock()
		if changed {
			continue // a writer changed it meanwhile: nothing to judge
		}
		for _, c := range calls {
			c.path, c.mount = rec.rel, mount
			w.record(c.kind, c.path, c.mount, c.t0, c.d, c.err, c.fault)
		}
		if err == nil && got != want {
			at := time.Since(w.start).Seconds()
			// Tell a stale cache from stale data: what stat says now, and
			// what a second read gets.
			again := "stat failed"
			if st, err := os.Stat(filepath.Join(mnt, rec.rel)); err == nil {
				got2, n2, _, err2 := w.readFile(filepath.Join(mnt, rec.rel), buf)
				again = fmt.Sprintf("stat then says %d bytes; a second read got %d bytes, right=%v (err %v)", st.Size(), n2, got2 == want, err2)
			}
			w.mu.Lock()
			w.wrong = append(w.wrong, fmt.Sprintf("%s on mount %d at %.1fs: read %d bytes, want %d bytes with sha256 %x, got %x (during %q; written on mount %d, acknowledged %.1fs before); %s",
				rec.rel, mount, at, n, size, want[:6], got[:6], w.r.activeFault(), wmount, time.Since(acked).Seconds(), again))
			w.mu.Unlock()
		}
	}
}

type pendingCall struct {
	kind  string
	path  string
	mount int
	t0    time.Time
	d     time.Duration
	err   error
	fault string
}

// readFile reads a whole file, timing open, every read and close; the
// calls are recorded by the caller once it knows the file did not change.
func (w *workload) readFile(path string, buf []byte) (sum [32]byte, n int64, calls []pendingCall, err error) {
	do := func(kind string, fn func() error) error {
		f := w.r.activeFault()
		t0, d, err := timed(fn)
		calls = append(calls, pendingCall{kind: kind, t0: t0, d: d, err: err, fault: f})
		return err
	}
	var f *os.File
	if err = do("open", func() (err error) { f, err = os.Open(path); return err }); err != nil {
		return sum, 0, calls, err
	}
	h := sha256.New()
	for {
		var k int
		rerr := do("read", func() error {
			var err error
			k, err = f.Read(buf)
			if err == io.EOF {
				return nil
			}
			return err
		})
		if rerr != nil {
			f.Close()
			return sum, n, calls, rerr
		}
		if k == 0 {
			break
		}
		h.Write(buf[:k])
		n += int64(k)
	}
	if err = do("close-read", f.Close); err != nil {
		return sum, n, calls, err
	}
	return sumOf(h), n, calls, nil
}

// Report helpers.

func (w *workload) total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.ops {
		n += s.n
	}
	return n
}

func (w *workload) opTable() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	kinds := make([]string, 0, len(w.ops))
	for k := range w.ops {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "  %-12s %8s %6s %9s %9s %6s %6s\n", "call", "count", "failed", "mean ms", "max s", ">1s", ">5s")
	for _, k := range kinds {
		s := w.ops[k]
		fmt.Fprintf(&b, "  %-12s %8d %6d %9.2f %9.2f %6d %6d\n", k, s.n, s.fails,
			float64(s.total.Microseconds())/1000/float64(s.n), s.max.Seconds(), s.over1s, s.over5s)
	}
	return b.String()
}

func (w *workload) failureList() []callRec {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]callRec(nil), w.failures...)
}

func (w *workload) unexpectedFailures() []callRec {
	var out []callRec
	for _, f := range w.failureList() {
		if !f.exp {
			out = append(out, f)
		}
	}
	return out
}

func (w *workload) failureSummary() string {
	fails := w.failureList()
	if len(fails) == 0 {
		return "none"
	}
	by := map[string]int{}
	for _, f := range fails {
		k := f.errno
		if f.exp {
			k += " (expected)"
		}
		by[k]++
	}
	var parts []string
	for k, n := range by {
		parts = append(parts, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d (%s)", len(fails), strings.Join(parts, ", "))
}

func (w *workload) longest() callRec {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.long
}

func (w *workload) stallsOver(d time.Duration) []callRec {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []callRec
	for _, s := range w.stalls {
		if s.d > d {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].d > out[j].d })
	if len(out) > 15 {
		out = out[:15]
	}
	return out
}

func (w *workload) wrongReads() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.wrong...)
}
