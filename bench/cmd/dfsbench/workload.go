package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// phase is one timed step of the workload. Phases run in order on one
// directory; later ones use what earlier ones left (the sequential file,
// the small files, the copied tree).
type phase struct {
	Name string
	Unit string
	// Target is the goal for dfs/GlusterFS (0: none).
	Target float64
	run    func(ctx context.Context, w *workload) (PhaseResult, error)
}

// workload holds the state shared by the phases of one system.
type workload struct {
	cfg      *config
	dir      string
	smallDir string
	treeDir  string
	names    []string
	buf      []byte
}

func phases(cfg *config) []phase {
	ps := []phase{
		{Name: "seq write", Unit: "MiB/s", Target: 1.2, run: seqWrite},
		{Name: "seq read (cold)", Unit: "MiB/s", Target: 1, run: seqRead},
		{Name: "small create", Unit: "files/s", Target: 5, run: smallCreate},
		{Name: "ls -l (cold)", Unit: "entries/s", Target: 3, run: lsCold},
		{Name: "stat (cold)", Unit: "files/s", run: statAll},
		{Name: "small read (cold)", Unit: "files/s", Target: 3, run: smallRead},
		{Name: "rename", Unit: "files/s", Target: 5, run: renameAll},
		{Name: "remove", Unit: "files/s", Target: 5, run: removeAll},
	}
	if !cfg.skipTree {
		ps = append(ps,
			phase{Name: "tree copy (cp -a)", Unit: "files/s", Target: 3, run: treeCopy},
			phase{Name: "tree walk (find -ls)", Unit: "entries/s", run: treeWalk},
			phase{Name: "tree read (tar)", Unit: "MiB/s", run: treeRead},
			phase{Name: "tree rm -r", Unit: "files/s", run: treeRemove},
		)
	}
	if cfg.fioRuntime > 0 {
		ps = append(ps,
			phase{Name: "fio randread 4k", Unit: "IOPS", run: fioRun},
			phase{Name: "fio randwrite 4k", Unit: "IOPS"}, // filled in by fioRun
		)
	}
	ps = append(ps, phase{Name: "metadata mix", Unit: "ops/s", run: metaMix})
	return ps
}

// runWorkload runs every phase on sys, each under the phase timeout, and
// records the CPU time its processes spent in it.
func runWorkload(ctx context.Context, cfg *config, sys system) []PhaseResult {
	w := &workload{cfg: cfg, dir: filepath.Join(sys.Dir(), "w")}
	w.smallDir = filepath.Join(w.dir, "small")
	w.treeDir = filepath.Join(w.dir, "tree")
	var out []PhaseResult
	if err := os.MkdirAll(w.smallDir, 0o755); err != nil {
		return []PhaseResult{{Name: "setup", Err: err.Error()}}
	}
	var pending *PhaseResult // the fio write half
	for _, p := range phases(cfg) {
		if p.run == nil {
			if pending != nil {
				pending.Name, pending.Unit, pending.Target = p.Name, p.Unit, p.Target
				out = append(out, *pending)
				pending = nil
			}
			continue
		}
		if ctx.Err() != nil {
			out = append(out, PhaseResult{Name: p.Name, Unit: p.Unit, Target: p.Target, Err: "interrupted"})
			continue
		}
		procs := sys.Procs()
		cpu0 := map[string]float64{}
		for n, pid := range procs {
			cpu0[n] = cpuSeconds(pid)
		}
		r, hung, err := runPhase(ctx, cfg.phaseTimeout, p, w)
		r.Name, r.Unit, r.Target = p.Name, p.Unit, p.Target
		if err != nil {
			r.Err = err.Error()
			logf("   %-22s FAILED: %v", p.Name, err)
		} else {
			logf("   %-22s %12.1f %-9s %8.2f s", p.Name, r.Value, p.Unit, r.Seconds)
		}
		if len(procs) > 0 {
			r.CPU = map[string]float64{}
			for n, pid := range procs {
				r.CPU[n] = cpuSeconds(pid) - cpu0[n]
			}
		}
		if r.extra != nil {
			x := *r.extra
			x.CPU = r.CPU
			pending = &x
			r.extra = nil
		}
		out = append(out, r)
		if hung {
			// A system call is stuck in the file system: stop here, so
			// that the teardown (unmount, kill) releases it.
			logf("   %s did not return %v after its timeout; skipping the remaining phases", p.Name, phaseGrace)
			return out
		}
	}
	_ = os.RemoveAll(w.dir)
	return out
}

// phaseGrace is how long a phase may take to return after its timeout
// before it is given up as hung.
const phaseGrace = 30 * time.Second

// runPhase runs one phase under its timeout. Phases check their context
// between operations, but a system call blocked in a hung file system
// cannot be cancelled: such a phase is left behind (hung) after
// phaseGrace.
func runPhase(ctx context.Context, timeout time.Duration, p phase, w *workload) (PhaseResult, bool, error) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type ret struct {
		r   PhaseResult
		err error
	}
	done := make(chan ret, 1)
	go func() {
		r, err := p.run(pctx, w)
		done <- ret{r, err}
	}()
	select {
	case x := <-done:
		return x.r, false, x.err
	case <-pctx.Done():
	}
	select {
	case x := <-done:
		return x.r, false, x.err
	case <-time.After(phaseGrace):
		return PhaseResult{}, true, fmt.Errorf("hung: no return %v after %w", phaseGrace, pctx.Err())
	}
}

// dropCaches writes dirty pages back and empties the page, dentry and
// inode caches, so the next phase reads from the file system, not memory.
func dropCaches() error {
	if _, err := runCmd(context.Background(), 5*time.Minute, nil, "sync"); err != nil {
		return err
	}
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200)
}

func rate(count float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return count / d.Seconds()
}

func result(count float64, d time.Duration) PhaseResult {
	return PhaseResult{Value: rate(count, d), Seconds: d.Seconds(), Count: count}
}

func (w *workload) block() []byte {
	if w.buf == nil {
		w.buf = make([]byte, 1<<20)
		for i := range w.buf {
			w.buf[i] = byte(i*7 + i>>8)
		}
	}
	return w.buf
}

func seqWrite(ctx context.Context, w *workload) (PhaseResult, error) {
	buf := w.block()
	path := filepath.Join(w.dir, "seq")
	start := time.Now()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return PhaseResult{}, err
	}
	defer f.Close()
	for n := int64(0); n < w.cfg.seqBytes; n += int64(len(buf)) {
		if ctx.Err() != nil {
			return PhaseResult{}, ctx.Err()
		}
		if _, err := f.Write(buf); err != nil {
			return PhaseResult{}, err
		}
	}
	if err := f.Sync(); err != nil {
		return PhaseResult{}, err
	}
	if err := f.Close(); err != nil {
		return PhaseResult{}, err
	}
	d := time.Since(start)
	return result(float64(w.cfg.seqBytes)/(1<<20), d), nil
}

func seqRead(ctx context.Context, w *workload) (PhaseResult, error) {
	if err := dropCaches(); err != nil {
		return PhaseResult{}, err
	}
	buf := make([]byte, 1<<20)
	start := time.Now()
	f, err := os.Open(filepath.Join(w.dir, "seq"))
	if err != nil {
		return PhaseResult{}, err
	}
	defer f.Close()
	var total int64
	for {
		if ctx.Err() != nil {
			return PhaseResult{}, ctx.Err()
		}
		n, err := f.Read(buf)
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return PhaseResult{}, err
		}
	}
	d := time.Since(start)
	if total != w.cfg.seqBytes {
		return PhaseResult{}, fmt.Errorf("read %d bytes, wrote %d", total, w.cfg.seqBytes)
	}
	_ = os.Remove(filepath.Join(w.dir, "seq"))
	return result(float64(total)/(1<<20), d), nil
}

func smallCreate(ctx context.Context, w *workload) (PhaseResult, error) {
	data := w.block()[:w.cfg.smallSize]
	w.names = make([]string, w.cfg.smallFiles)
	for i := range w.names {
		w.names[i] = fmt.Sprintf("f%06d", i)
	}
	start := time.Now()
	for _, name := range w.names {
		if ctx.Err() != nil {
			return PhaseResult{}, ctx.Err()
		}
		f, err := os.OpenFile(filepath.Join(w.smallDir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return PhaseResult{}, err
		}
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return PhaseResult{}, err
		}
	}
	return result(float64(len(w.names)), time.Since(start)), nil
}

func lsCold(ctx context.Context, w *workload) (PhaseResult, error) {
	if err := dropCaches(); err != nil {
		return PhaseResult{}, err
	}
	cmd := exec.CommandContext(ctx, "ls", "-l", w.smallDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return PhaseResult{}, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return PhaseResult{}, err
	}
	b, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil {
		return PhaseResult{}, fmt.Errorf("ls -l: %w", err)
	}
	d := time.Since(start)
	lines := strings.Count(string(b), "\n") - 1 // "total N"
	if lines != len(w.names) {
		return PhaseResult{}, fmt.Errorf("ls -l listed %d entries, want %d", lines, len(w.names))
	}
	return result(float64(lines), d), nil
}

func statAll(ctx context.Context, w *workload) (PhaseResult, error) {
	if err := dropCaches(); err != nil {
		return PhaseResult{}, err
	}
	start := time.Now()
	for _, name := range w.names {
		if ctx.Err() != nil {
			return PhaseResult{}, ctx.Err()
		}
		fi, err := os.Lstat(filepath.Join(w.smallDir, name))
		if err != nil {
			return PhaseResult{}, err
		}
		if fi.Size() != int64(w.cfg.smallSize) {
			return PhaseResult{}, fmt.Errorf("%s: size %d, want %d", name, fi.Size(), w.cfg.smallSize)
		}
	}
	return result(float64(len(w.names)), time.Since(start)), nil
}

func smallRead(ctx context.Context, w *workload) (PhaseResult, error) {
	if err := dropCaches(); err != nil {
		return PhaseResult{}, err
	}
	buf := make([]byte, w.cfg.smallSize+1)
	want := w.block()[:w.cfg.smallSize]
	start := time.Now()
	for _, name := range w.names {
		if ctx.Err() != nil {
			return PhaseResult{}, ctx.Err()
		}
		f, err := os.Open(filepath.Join(w.smallDir, name))
		if err != nil {
			return PhaseResult{}, err
		}
		n, err := io.ReadFull(f, buf)
		f.Close()
		if err != io.ErrUnexpectedEOF && err != nil && !(err == io.EOF && n == 0) {
			return PhaseResult{}, fmt.Errorf("%s: %w", name, err)
		}
		if n != len(want) || string(buf[:n]) != string(want) {
			return PhaseResult{}, fmt.Errorf("%s: read %d bytes that differ from what was written", name, n)
		}
	}
	return result(float64(len(w.names)), time.Since(start)), nil
}

func renameAll(ctx context.Context, w *workload) (PhaseResult, error) {
	start := time.Now()
	for i, name := range w.names {
		if ctx.Err() != nil {
			return PhaseResult{}, ctx.Err()
		}
		to := name + ".r"
		if err := os.Rename(filepath.Join(w.smallDir, name), filepath.Join(w.smallDir, to)); err != nil {
			return PhaseResult{}, err
		}
		w.names[i] = to
	}
	return result(float64(len(w.names)), time.Since(start)), nil
}

func removeAll(ctx context.Context, w *workload) (PhaseResult, error) {
	start := time.Now()
	for _, name := range w.names {
		if ctx.Err() != nil {
			return PhaseResult{}, ctx.Err()
		}
		if err := os.Remove(filepath.Join(w.smallDir, name)); err != nil {
			return PhaseResult{}, err
		}
	}
	d := time.Since(start)
	if ents, err := os.ReadDir(w.smallDir); err != nil || len(ents) != 0 {
		return PhaseResult{}, fmt.Errorf("after remove: %d entries left (%v)", len(ents), err)
	}
	return result(float64(len(w.names)), d), nil
}

// countTree counts the entries and regular-file bytes under dir.
func countTree(dir string) (entries int, bytes int64, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		entries++
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			bytes += fi.Size()
		}
		return nil
	})
	return entries, bytes, err
}

func treeCopy(ctx context.Context, w *workload) (PhaseResult, error) {
	n, _, err := countTree(w.cfg.tree)
	if err != nil {
		return PhaseResult{}, err
	}
	// Warm the source, so the copy measures the destination only.
	if _, err := runCmd(ctx, 10*time.Minute, nil, "sh", "-c", "tar -C "+shellQuote(w.cfg.tree)+" -cf - . | cat >/dev/null"); err != nil {
		return PhaseResult{}, err
	}
	start := time.Now()
	if _, err := runCmd(ctx, w.cfg.phaseTimeout, nil, "cp", "-a", w.cfg.tree, w.treeDir); err != nil {
		return PhaseResult{}, err
	}
	return result(float64(n), time.Since(start)), nil
}

func treeWalk(ctx context.Context, w *workload) (PhaseResult, error) {
	if err := dropCaches(); err != nil {
		return PhaseResult{}, err
	}
	cmd := exec.CommandContext(ctx, "find", w.treeDir, "-ls")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return PhaseResult{}, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return PhaseResult{}, err
	}
	b, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil {
		return PhaseResult{}, fmt.Errorf("find -ls: %w", err)
	}
	return result(float64(strings.Count(string(b), "\n")), time.Since(start)), nil
}

func treeRead(ctx context.Context, w *workload) (PhaseResult, error) {
	if err := dropCaches(); err != nil {
		return PhaseResult{}, err
	}
	// tar to a pipe: GNU tar skips reading file data when writing to /dev/null.
	cmd := exec.CommandContext(ctx, "tar", "-C", w.treeDir, "-cf", "-", ".")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return PhaseResult{}, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return PhaseResult{}, err
	}
	n, _ := io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return PhaseResult{}, fmt.Errorf("tar: %w", err)
	}
	return result(float64(n)/(1<<20), time.Since(start)), nil
}

func treeRemove(ctx context.Context, w *workload) (PhaseResult, error) {
	n, _, err := countTree(w.treeDir)
	if err != nil {
		return PhaseResult{}, err
	}
	start := time.Now()
	if _, err := runCmd(ctx, w.cfg.phaseTimeout, nil, "rm", "-r", w.treeDir); err != nil {
		return PhaseResult{}, err
	}
	return result(float64(n), time.Since(start)), nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// fioRun runs fio's random 4 KiB read/write mix with crc32c verification
// and returns the read IOPS, with the write IOPS in extra.
func fioRun(ctx context.Context, w *workload) (PhaseResult, error) {
	if _, err := exec.LookPath("fio"); err != nil {
		return PhaseResult{}, errors.New("fio is not installed (run make bench-deps)")
	}
	file := filepath.Join(w.dir, "fio.dat")
	defer os.Remove(file)
	secs := int(w.cfg.fioRuntime.Seconds())
	if secs < 1 {
		secs = 1
	}
	args := []string{"--name=randrw", "--filename=" + file, fmt.Sprintf("--size=%d", w.cfg.fioSize),
		"--rw=randrw", "--rwmixread=50", "--bs=4k", "--ioengine=psync", "--iodepth=1",
		fmt.Sprintf("--runtime=%d", secs), "--time_based", "--verify=crc32c", "--do_verify=1", "--verify_backlog=1024", "--verify_fatal=1",
		"--output-format=json", "--group_reporting"}
	type side struct {
		IOPS float64 `json:"iops"`
		IOs  float64 `json:"total_ios"`
	}
	var rep struct {
		Jobs []struct {
			Error int   `json:"error"`
			Read  side  `json:"read"`
			Write side  `json:"write"`
			Run   int64 `json:"job_runtime"`
		} `json:"jobs"`
	}
	timeout := w.cfg.fioRuntime + 10*time.Minute // layout of the file and the verify pass
	start := time.Now()
	out, err := runCmdStdout(ctx, timeout, "fio", args...)
	d := time.Since(start)
	if err != nil {
		return PhaseResult{}, err
	}
	if i := strings.IndexByte(out, '{'); i > 0 {
		out = out[i:] // fio may print notes before the JSON
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Jobs) == 0 {
		return PhaseResult{}, fmt.Errorf("fio output: %v", err)
	}
	j := rep.Jobs[0]
	if j.Error != 0 {
		return PhaseResult{}, fmt.Errorf("fio job error %d", j.Error)
	}
	rs := float64(j.Run) / 1000
	r := PhaseResult{Value: j.Read.IOPS, Seconds: rs, Count: j.Read.IOs, Note: fmt.Sprintf("fio wall time %.1f s incl. layout and verify", d.Seconds())}
	r.extra = &PhaseResult{Value: j.Write.IOPS, Seconds: rs, Count: j.Write.IOs}
	return r, nil
}

// runCmdStdout runs a command and returns its standard output only.
func runCmdStdout(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// metaMix runs create/stat/rename/unlink rounds from several threads at
// once, each in its own directory.
func metaMix(ctx context.Context, w *workload) (PhaseResult, error) {
	base := filepath.Join(w.dir, "meta")
	for t := 0; t < w.cfg.metaThreads; t++ {
		if err := os.MkdirAll(filepath.Join(base, fmt.Sprint("t", t)), 0o755); err != nil {
			return PhaseResult{}, err
		}
	}
	errs := make([]error, w.cfg.metaThreads)
	var wg sync.WaitGroup
	start := time.Now()
	for t := 0; t < w.cfg.metaThreads; t++ {
		wg.Add(1)
		go func(t int) {
			defer wg.Done()
			dir := filepath.Join(base, fmt.Sprint("t", t))
			for i := 0; i < w.cfg.metaCount; i++ {
				if ctx.Err() != nil {
					errs[t] = ctx.Err()
					return
				}
				a := filepath.Join(dir, fmt.Sprint("m", i))
				b := a + ".r"
				f, err := os.OpenFile(a, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
				if err == nil {
					err = f.Close()
				}
				if err == nil {
					_, err = os.Stat(a)
				}
				if err == nil {
					err = os.Rename(a, b)
				}
				if err == nil {
					err = os.Remove(b)
				}
				if err != nil {
					errs[t] = err
					return
				}
			}
		}(t)
	}
	wg.Wait()
	d := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return PhaseResult{}, err
	}
	return result(float64(4*w.cfg.metaCount*w.cfg.metaThreads), d), nil
}
