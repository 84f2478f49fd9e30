package fuse_test

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The pjdfstest-style conformance cases: each case (pjd_cases_test.go) is
// a setup, run as root, and a sequence of steps, run as the user under
// test, in a fresh directory of the mount and in one of a local ext4
// reference directory. The errno of every step and the state of the whole
// directory afterwards (lstat of every entry, symlink targets, file
// contents) must be the same on both. Every case runs as root and as an
// unprivileged user; the unprivileged steps run in a child process (this
// test binary, re-executed with pjdChildEnv set) with its credentials.

// Identities of the unprivileged user under test. pjdSuppGroup is a
// supplementary group of that user (chgrp to it is allowed), pjdOther* an
// identity nobody has.
const (
	pjdNobody    = 65534
	pjdSuppGroup = 65533
	pjdOtherUID  = 1234
	pjdOtherGID  = 4321
)

var pjdDump = flag.Bool("pjd.dump", false, "log every pjd case's steps and results")

// pjdChildEnv, when set, makes the test binary a pjd child: it reads the
// job (a pjdJob in JSON) from the named file, runs its steps and prints
// the results (JSON) on stdout, then exits.
const pjdChildEnv = "DFS_PJD_CHILD"

func init() {
	if job := os.Getenv(pjdChildEnv); job != "" {
		os.Exit(pjdChild(job))
	}
}

// pjdEnv is what a step sees.
type pjdEnv struct {
	dir      string // the case directory
	uid, gid int    // the user under test
	stamps   map[string]unix.Stat_t
}

// p returns the path of name in the case directory ("" is the
// directory), uncleaned: "d/." and "f/" stay what they are.
func (c *pjdEnv) p(name string) string {
	if name == "" {
		return c.dir
	}
	return c.dir + "/" + name
}

// Placeholders for owners in steps, resolved per user: the user under
// test and his primary group.
const (
	uMe = -2
	gMe = -3
)

func (c *pjdEnv) id(v int) int {
	switch v {
	case uMe:
		return c.uid
	case gMe:
		return c.gid
	}
	return v
}

// pjdStep is one system call (or a short sequence of them).
type pjdStep struct {
	desc string
	run  func(c *pjdEnv) error
}

// pjdCase is one conformance case.
type pjdCase struct {
	name  string
	setup []pjdStep // as root; must succeed
	steps []pjdStep // as the user under test; errno compared
}

// pjdUser is one identity the cases run as.
type pjdUser struct {
	name     string
	uid, gid int
}

var pjdUsers = []pjdUser{{"root", 0, 0}, {"nobody", pjdNobody, pjdNobody}}

// pjdJob is the work handed to a child: run every case's steps in its
// directories.
type pjdJob struct {
	UID, GID int
	Cases    []pjdJobCase
}

type pjdJobCase struct {
	Index int
	Dirs  []string // the case directory on the mount and on the reference
}

// pjdChild runs a job as the current (unprivileged) process and prints
// the results: for each case and directory, one result per step.
func pjdChild(jobFile string) int {
	raw, err := os.ReadFile(jobFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var job pjdJob
	if err := json.Unmarshal(raw, &job); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cases := pjdCases()
	out := make([][][]string, len(job.Cases))
	for i, jc := range job.Cases {
		for _, dir := range jc.Dirs {
			env := &pjdEnv{dir: dir, uid: job.UID, gid: job.GID, stamps: map[string]unix.Stat_t{}}
			out[i] = append(out[i], runSteps(env, cases[jc.Index].steps))
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

// runSteps runs steps and returns each one's result: "ok" or the errno's
// name (or the error's text when it is no errno).
func runSteps(c *pjdEnv, steps []pjdStep) []string {
	res := make([]string, len(steps))
	for i, s := range steps {
		res[i] = errnoName(s.run(c))
	}
	return res
}

func errnoName(err error) string {
	if err == nil {
		return "ok"
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		if name := unix.ErrnoName(en); name != "" {
			return name
		}
		return fmt.Sprintf("errno %d", int(en))
	}
	return err.Error()
}

// snapshot describes everything under dir, one line per entry: type and
// permission bits, owner, link count, size (not of directories, whose
// size depends on the file system), times (exact when set far from now,
// "now" otherwise), symlink target and a hash of the contents.
func snapshot(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("mode=%07o uid=%d gid=%d nlink=%d atime=%s mtime=%s",
			st.Mode, st.Uid, st.Gid, st.Nlink, pjdTime(st.Atim), pjdTime(st.Mtim))
		line += userXattrs(path)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" size=%d sha=%x", st.Size, sha256.Sum256(data))
		case unix.S_IFLNK:
			t, err := os.Readlink(path)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" size=%d target=%q", st.Size, pjdShort(t))
		}
		out[rel] = line
		return nil
	})
	return out, err
}

// userXattrs describes the user.* extended attributes of path.
func userXattrs(path string) string {
	buf := make([]byte, 8<<10)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		return " xattrs: " + errnoName(err)
	}
	var out []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		v := make([]byte, 8<<10)
		k, err := unix.Lgetxattr(path, name, v)
		if err != nil {
			out = append(out, name+":"+errnoName(err))
			continue
		}
		out = append(out, fmt.Sprintf("%s=%q", pjdShort(name), pjdShort(string(v[:k]))))
	}
	if len(out) == 0 {
		return ""
	}
	sort.Strings(out)
	return " xattrs{" + strings.Join(out, " ") + "}"
}

// pjdTime prints a time set explicitly by a case exactly; a time near the
// present (set by the file system) as "now".
func pjdTime(ts unix.Timespec) string {
	if d := time.Since(time.Unix(ts.Unix())); d < time.Hour && d > -time.Hour {
		return "now"
	}
	return fmt.Sprintf("%d.%09d", ts.Sec, ts.Nsec)
}

func pjdShort(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%s...(%d bytes)", s[:20], len(s))
	}
	return s
}

// pjdDirs makes the per-user, per-case directories under root: each
// owned by the user under test, mode 0755.
func pjdCaseDir(t *testing.T, root string, u pjdUser, name string) string {
	t.Helper()
	d := filepath.Join(root, u.name, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(d), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, u.uid, u.gid); err != nil {
		t.Fatal(err)
	}
	return d
}

// openUp lets every user through dir and its parents up to /tmp.
func openUp(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPJD runs every conformance case on the mount and on a local
// reference directory, as root and as an unprivileged user, and compares.
func TestPJD(t *testing.T) {
	t.Parallel() // its own mount; runs beside TestFsx
	e := mountEnv(t)
	mnt2 := mountSecond(t, e)
	ref := t.TempDir()
	openUp(t, e.mnt)
	openUp(t, ref)
	cases := pjdCases()
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("two cases named %s", c.name)
		}
		seen[c.name] = true
	}
	for _, u := range pjdUsers {
		t.Run(u.name, func(t *testing.T) {
			t.Parallel() // the users' directories are disjoint
			job := pjdJob{UID: u.uid, GID: u.gid}
			for i, c := range cases {
				dirs := []string{pjdCaseDir(t, e.mnt, u, c.name), pjdCaseDir(t, ref, u, c.name)}
				for _, d := range dirs {
					env := &pjdEnv{dir: d, uid: u.uid, gid: u.gid, stamps: map[string]unix.Stat_t{}}
					for _, s := range c.setup {
						if err := s.run(env); err != nil {
							t.Fatalf("%s: setup %s in %s: %v", c.name, s.desc, d, err)
						}
					}
				}
				job.Cases = append(job.Cases, pjdJobCase{Index: i, Dirs: dirs})
			}
			results := runPJDChild(t, u, job)
			failed := 0
			for i, jc := range job.Cases {
				c := cases[jc.Index]
				var diffs []string
				mnt, loc := results[i][0], results[i][1]
				for k, s := range c.steps {
					if mnt[k] != loc[k] {
						diffs = append(diffs, fmt.Sprintf("step %d %s: dfs %s, ext4 %s", k, s.desc, mnt[k], loc[k]))
					}
				}
				// The reference is read once: reading updates its atimes.
				want, err := snapshot(jc.Dirs[1])
				if err != nil {
					t.Fatalf("snapshot of the reference: %v", err)
				}
				diffs = append(diffs, compareSnapshot(jc.Dirs[0], want)...)
				// What another client sees, through its own mount (in one
				// of the runs: it costs).
				if u.uid != 0 {
					rel, err := filepath.Rel(e.mnt, jc.Dirs[0])
					if err != nil {
						t.Fatal(err)
					}
					for _, d := range compareSnapshot(filepath.Join(mnt2, rel), want) {
						diffs = append(diffs, "second mount: "+d)
					}
				}
				if *pjdDump {
					t.Logf("%s: %s", c.name, stepList(c.steps, loc))
				}
				if len(diffs) > 0 {
					failed++
					t.Errorf("case %s as %s:\n  %s\n  steps: %s", c.name, u.name, strings.Join(diffs, "\n  "), stepList(c.steps, loc))
				}
			}
			t.Logf("%d cases as %s, %d differ", len(cases), u.name, failed)
		})
	}
}

func stepList(steps []pjdStep, res []string) string {
	var b strings.Builder
	for i, s := range steps {
		fmt.Fprintf(&b, "%s=%s; ", s.desc, res[i])
	}
	return b.String()
}

// compareSnapshot compares the snapshot of dir on a mount with the
// reference's.
func compareSnapshot(mnt string, b map[string]string) []string {
	a, err := snapshot(mnt)
	if err != nil {
		return []string{fmt.Sprintf("snapshot of the mount: %v", err)}
	}
	var names []string
	for n := range a {
		names = append(names, n)
	}
	for n := range b {
		if _, ok := a[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var diffs []string
	for _, n := range names {
		if a[n] != b[n] {
			diffs = append(diffs, fmt.Sprintf("%s: dfs {%s}, ext4 {%s}", pjdShort(n), a[n], b[n]))
		}
	}
	return diffs
}

// runPJDChild runs the job's steps: in a child process with the user's
// credentials (root too, so that both users take the same path).
func runPJDChild(t *testing.T, u pjdUser, job pjdJob) [][][]string {
	t.Helper()
	raw, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	jobFile := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(jobFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	openUp(t, filepath.Dir(jobFile))
	cmd := exec.Command(pjdBinary(t, filepath.Dir(jobFile)))
	cmd.Env = append(os.Environ(), pjdChildEnv+"="+jobFile)
	cmd.Dir = "/"
	if u.uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{pjdSuppGroup},
		}}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pjd child as %s: %v\n%s", u.name, err, stderr.String())
	}
	var res [][][]string
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(job.Cases) {
		t.Fatalf("pjd child as %s: %d results, %v", u.name, len(res), err)
	}
	return res
}

// pjdBinary copies the test binary into dir (which every user can reach):
// the one go test runs lies in a directory private to root.
func pjdBinary(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "pjd-child")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}
