package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// allFaultKinds are the faults TestChaos knows (see chaos_test.go).
var allFaultKinds = []string{"kill", "stop", "cut", "cutin", "leader", "flip", "enospc"}

// nftTable is the nftables table of the cut fault; it is deleted on
// recovery and when the test ends.
const nftTable = "dfs_chaos"

type faultSet map[string]bool

func parseFaults(s string) (faultSet, error) {
	fs := faultSet{}
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		if k == "" || k == "none" {
			continue
		}
		known := false
		for _, a := range allFaultKinds {
			known = known || a == k
		}
		if !known {
			return nil, fmt.Errorf("-chaos.faults: unknown fault %q (known: %s)", k, strings.Join(allFaultKinds, ","))
		}
		fs[k] = true
	}
	return fs, nil
}

func (fs faultSet) kinds() []string {
	var out []string
	for k := range fs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// inject applies one fault, holds it, undoes it and waits until the pool
// is whole again (every server up, every brick online, the faulted
// server's bricks caught up with their leaders).
func (r *chaosRun) inject(kind string, hold time.Duration) faultEvent {
	t := r.t
	s := r.c.servers[r.rng.Intn(len(r.c.servers))]
	if kind == "leader" {
		s = leaderOf(t, r.c, r.c.servers[0].addr)
	}
	ev := faultEvent{kind: kind, target: s.host, at: time.Since(r.start)}
	r.setActive(kind + " " + s.host)
	defer r.setActive("")
	t0 := time.Now()
	var recovered time.Time
	switch kind {
	case "kill", "leader":
		s.kill()
		time.Sleep(hold)
		recovered = time.Now()
		s.start()
		s.awaitUp()
	case "stop":
		s.cmd.Process.Signal(syscall.SIGSTOP)
		time.Sleep(hold)
		recovered = time.Now()
		s.cmd.Process.Signal(syscall.SIGCONT)
	case "cut":
		r.netcls.cut(t, s)
		time.Sleep(hold)
		recovered = time.Now()
		r.netcls.restore(t, s)
	case "cutin":
		nftCut(t, s.host, 0)
		time.Sleep(hold)
		recovered = time.Now()
		nftReset(t)
	case "flip":
		ev.target, ev.detail = r.flip()
		recovered = time.Now()
	case "enospc":
		ev.target = "subvolume " + fmt.Sprint(*chaosSubvolumes-1)
		ev.detail = r.fillUp(hold)
		recovered = time.Now()
	}
	ev.held = recovered.Sub(t0)
	r.awaitWhole(60 * time.Second)
	if kind != "flip" && kind != "enospc" {
		ev.recovery = r.awaitCaughtUp(s.host, 60*time.Second)
	}
	ev.recover = time.Since(recovered)
	return ev
}

// awaitWhole waits until every server answers and every brick is online.
func (r *chaosRun) awaitWhole(limit time.Duration) {
	for _, s := range r.c.servers {
		s.awaitUp()
	}
	awaitBricks(r.t, r.c.servers[0].addr, r.vol, limit, r.c.hosts())
}

// brickRef is one brick of the volume as status shows it.
type brickRef struct {
	host, path string
	port       uint32
	sv         int
}

func (b brickRef) addr() string { return fmt.Sprintf("%s:%d", b.host, b.port) }

func (r *chaosRun) bricks() []brickRef {
	st, err := volumeStatus(r.t, r.c.servers[0].addr, r.vol)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []brickRef
	for _, b := range st.Bricks {
		out = append(out, brickRef{host: b.Host, path: b.Path, port: b.Port, sv: int(b.Subvolume)})
	}
	return out
}

// brickStatus asks one brick for its Raft role and applied index.
func brickStatus(addr string) (*dfspb.BrickStatusResponse, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return dfspb.NewBrickServiceClient(conn).Status(ctx, &dfspb.BrickStatusRequest{})
}

// leaderApplied returns, per subvolume, the applied index of its leader.
func (r *chaosRun) leaderApplied(bricks []brickRef) (map[int]uint64, error) {
	out := map[int]uint64{}
	for _, b := range bricks {
		st, err := brickStatus(b.addr())
		if err != nil {
			continue
		}
		if strings.EqualFold(st.Role, "leader") {
			out[b.sv] = st.AppliedIndex
		}
	}
	for _, b := range bricks {
		if _, ok := out[b.sv]; !ok {
			return nil, fmt.Errorf("subvolume %d has no leader", b.sv)
		}
	}
	return out, nil
}

// awaitCaughtUp waits until the bricks on host have applied what their
// leaders had applied when the wait began (that is self-heal for a brick
// that was away).
func (r *chaosRun) awaitCaughtUp(host string, limit time.Duration) string {
	bricks := r.bricks()
	var target map[int]uint64
	eventually(r.t, limit, "a leader in every subvolume", func() (err error) {
		target, err = r.leaderApplied(bricks)
		return err
	})
	start := time.Now()
	eventually(r.t, limit, "bricks on "+host+" caught up", func() error {
		for _, b := range bricks {
			if b.host != host {
				continue
			}
			st, err := brickStatus(b.addr())
			if err != nil {
				return err
			}
			if st.AppliedIndex < target[b.sv] {
				return fmt.Errorf("brick %s applied %d, leader had %d", b.addr(), st.AppliedIndex, target[b.sv])
			}
		}
		return nil
	})
	return fmt.Sprintf("(caught up %.1fs after online)", time.Since(start).Seconds())
}

// awaitReplicasCaughtUp waits, with no writes running, until every
// replica of every subvolume has applied the same index.
func (r *chaosRun) awaitReplicasCaughtUp(limit time.Duration) {
	bricks := r.bricks()
	eventually(r.t, limit, "replicas at the same applied index", func() error {
		idx := map[int]uint64{}
		for _, b := range bricks {
			st, err := brickStatus(b.addr())
			if err != nil {
				return err
			}
			if have, ok := idx[b.sv]; ok && have != st.AppliedIndex {
				return fmt.Errorf("subvolume %d: applied %d on one brick, %d on %s", b.sv, have, st.AppliedIndex, b.addr())
			}
			idx[b.sv] = st.AppliedIndex
		}
		return nil
	})
}

// The cut fault: nftables rules dropping every packet from and to one
// loopback address.

func nftAvailable() error {
	_, err := exec.LookPath("nft")
	return err
}

// nftCut drops packets from and to host on every hook, and, when classid
// is not 0, every packet sent by a process of that net_cls class (the
// server's own outgoing connections, which leave from 127.0.0.1).
func nftCut(t *testing.T, host string, classid uint32) {
	t.Helper()
	cls := ""
	if classid != 0 {
		cls = fmt.Sprintf(" meta cgroup 0x%08x drop;", classid)
	}
	rules := fmt.Sprintf(`table inet %[1]s {
	chain in { type filter hook input priority -10; policy accept; ip saddr %[2]s drop; ip daddr %[2]s drop; }
	chain out { type filter hook output priority -10; policy accept; ip saddr %[2]s drop; ip daddr %[2]s drop;%[3]s }
}
`, nftTable, host, cls)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
}

// nftReset deletes the chaos table if it exists.
func nftReset(t *testing.T) {
	t.Helper()
	if exec.Command("nft", "list", "table", "inet", nftTable).Run() != nil {
		return
	}
	if out, err := exec.Command("nft", "delete", "table", "inet", nftTable).CombinedOutput(); err != nil {
		t.Errorf("nft delete table inet %s: %v: %s", nftTable, err, out)
	}
}

// The flip fault: flip bytes of a chunk file on one brick (the
// subvolume's leader unless -chaos.flip-followers), preferably of a file
// the workload knows, which is then read back through a mount so the
// leader repairs its copy.

func (r *chaosRun) flip() (target, detail string) {
	t := r.t
	st, err := volumeStatus(t, r.c.servers[0].addr, r.vol)
	if err != nil {
		t.Fatal(err)
	}
	var brick string
	if *chaosFlipAny {
		b := st.Bricks[r.rng.Intn(len(st.Bricks))]
		brick = b.Host + ":" + b.Path
	} else {
		brick = st.Subvolumes[r.rng.Intn(len(st.Subvolumes))].Leader
	}
	host, path, _ := strings.Cut(brick, ":")
	if path == "" {
		return brick, "no leader known: nothing flipped"
	}
	files := chunkFiles(t, path)
	r.rng.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
	// Index the workload's idle files by inode number.
	w := r.w
	w.mu.Lock()
	byIno := map[uint64]*fileRec{}
	for _, rec := range w.list {
		if !rec.busy {
			byIno[rec.ino] = rec
		}
	}
	w.mu.Unlock()
	var victim string
	var rec *fileRec
	for _, f := range files {
		id, _, ok := strings.Cut(filepath.Base(f), ".")
		fid, err := layout.ParseID(id)
		if info, serr := os.Stat(f); err != nil || !ok || serr != nil || info.Size() == 0 {
			continue
		}
		// On a leader, flip only chunks of a file the workload can read
		// back at once (reads repair the leader's copy; nothing repairs
		// a follower's yet). Under -chaos.flip-followers, any chunk.
		if victim == "" && *chaosFlipAny {
			victim = f
		}
		if rr := byIno[inoFold(fid)]; rr != nil {
			victim, rec = f, rr
			break
		}
	}
	if victim == "" {
		return host, "no chunk file of an idle known file on " + path + ": nothing flipped"
	}
	orig, err := os.ReadFile(victim)
	if err != nil {
		return host, fmt.Sprintf("read %s: %v", victim, err)
	}
	fh, err := os.OpenFile(victim, os.O_WRONLY, 0)
	if err != nil {
		return host, fmt.Sprintf("open %s: %v", victim, err)
	}
	off := int64(r.rng.Intn(len(orig)))
	n := min(1+r.rng.Intn(8), len(orig)-int(off))
	bad := bytes.Clone(orig[off : off+int64(n)])
	for i := range bad {
		bad[i] ^= 0xff
	}
	_, werr := fh.WriteAt(bad, off)
	fh.Close()
	if werr != nil {
		return host, fmt.Sprintf("write %s: %v", victim, werr)
	}
	role := "leader"
	if *chaosFlipAny {
		role = "brick"
	}
	detail = fmt.Sprintf("%d bytes at %d of %s (%s %s)", n, off, strings.TrimPrefix(victim, path), role, path)
	if rec == nil {
		return host, detail + "; no known file owns it, not read back"
	}
	// Read it back through the writer's mount.
	w.mu.Lock()
	gen, want, busy := rec.gen, rec.sum, rec.busy
	w.mu.Unlock()
	if busy {
		return host, detail + "; owner " + rec.rel + " is being changed, not read back"
	}
	dropCaches(t)
	got, _, calls, err := w.readFile(filepath.Join(r.mounts[rec.mount], rec.rel), make([]byte, 1<<20))
	w.mu.Lock()
	changed := rec.gen != gen || rec.busy || w.files[rec.rel] != rec
	w.mu.Unlock()
	if changed {
		return host, detail + "; owner " + rec.rel + " changed meanwhile"
	}
	for _, c := range calls {
		w.record(c.kind, rec.rel, rec.mount, c.t0, c.d, c.err, c.fault)
	}
	switch {
	case err != nil:
		detail += fmt.Sprintf("; read of %s failed: %v", rec.rel, err)
	case got != want:
		w.mu.Lock()
		w.wrong = append(w.wrong, fmt.Sprintf("%s read back after flipping %s: wrong bytes", rec.rel, victim))
		w.mu.Unlock()
		detail += "; read back WRONG BYTES from " + rec.rel
	default:
		now, _ := os.ReadFile(victim)
		repaired := "repaired on disk"
		if !bytes.Equal(now[:min(len(now), len(orig))], orig[:min(len(now), len(orig))]) {
			repaired = "NOT repaired on disk"
		}
		detail += "; " + rec.rel + " read back right, chunk " + repaired
	}
	return host, detail
}

// inoFold is fuse's inode number of an id (fuse/errno.go inoOf).
func inoFold(id layout.ID) uint64 {
	if id == layout.RootID {
		return 1
	}
	var a, b uint64
	for i := 7; i >= 0; i-- {
		a = a<<8 | uint64(id[i])
		b = b<<8 | uint64(id[8+i])
	}
	ino := a ^ b
	if ino <= 1 {
		ino += 2
	}
	return ino
}

// The enospc fault: the last subvolume's bricks are small tmpfs mounts;
// fill the volume until a write fails with ENOSPC, hold, delete the filler
// and check that the volume writes again.

func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount tmpfs %s: %v: %s", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
}

func (r *chaosRun) fillUp(hold time.Duration) string {
	w := r.w
	mnt := r.mounts[0]
	dir := filepath.Join(mnt, fmt.Sprintf("fill-%d", time.Now().UnixNano()))
	if err := w.call("mkdir", dir, 0, func() error { return os.Mkdir(dir, 0o755) }); err != nil {
		return "mkdir of the filler directory failed: " + errnoOf(err)
	}
	chunk := make([]byte, 1<<20)
	var names []string
	var written int64
	var outcome string
	deadline := time.Now().Add(60 * time.Second)
fill:
	for i := 0; ; i++ {
		if time.Now().After(deadline) || written > 1<<30 {
			outcome = fmt.Sprintf("NO ENOSPC after %d MiB in %d files", written>>20, len(names))
			break
		}
		name := filepath.Join(dir, fmt.Sprintf("f%d", i))
		var f *os.File
		if err := w.call("create", name, 0, func() (err error) { f, err = os.Create(name); return err }); err != nil {
			outcome = fmt.Sprintf("create failed with %s after %d MiB", errnoOf(err), written>>20)
			break
		}
		names = append(names, name)
		for k := 0; k < 4; k++ {
			if err := w.call("write", name, 0, func() error { _, err := f.Write(chunk); return err }); err != nil {
				f.Close()
				outcome = fmt.Sprintf("write failed with %s after %d MiB", errnoOf(err), written>>20)
				break fill
			}
			written += int64(len(chunk))
		}
		if err := w.call("close", name, 0, f.Close); err != nil {
			outcome = fmt.Sprintf("close failed with %s after %d MiB", errnoOf(err), written>>20)
			break
		}
	}
	r.note("enospc: %s", outcome)
	time.Sleep(hold)
	// Free the space, within a minute: a wedged volume fails every
	// unlink after the failover timeout.
	failed := 0
	cleanupEnd := time.Now().Add(60 * time.Second)
	for i, n := range names {
		if time.Now().After(cleanupEnd) {
			r.note("enospc: gave up deleting the filler after %d of %d files (%d unlinks failed)", i, len(names), failed)
			break
		}
		if w.call("unlink", n, 0, func() error { return os.Remove(n) }) != nil {
			failed++
		}
	}
	// The volume must write again once space is freed.
	probe := filepath.Join(dir, "after")
	eventually(r.t, 30*time.Second, fmt.Sprintf("a write after freeing space (%d of %d filler unlinks failed)", failed, len(names)), func() error {
		return w.call("create", probe, 0, func() error { return os.WriteFile(probe, chunk, 0o644) })
	})
	return outcome + "; writes again after the filler was deleted"
}

// netCls is a net_cls cgroup (v1) whose processes' packets the cut fault
// drops: on loopback a server's outgoing connections leave from 127.0.0.1,
// so dropping its address alone would cut only what is sent to it.
type netCls struct {
	root, group string
	classid     uint32
}

const chaosClassID = 0x00d50001

// newNetCls mounts a net_cls hierarchy and makes the chaos group; both go
// when the test ends.
func newNetCls(t *testing.T) *netCls {
	t.Helper()
	n := &netCls{root: filepath.Join(os.TempDir(), fmt.Sprintf("dfs-chaos-netcls-%d", os.Getpid())), classid: chaosClassID}
	n.group = filepath.Join(n.root, "dfs_chaos")
	if err := os.MkdirAll(n.root, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "cgroup", "-o", "net_cls", "net_cls", n.root).CombinedOutput(); err != nil {
		t.Fatalf("the cut fault needs the net_cls cgroup controller: mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(n.group, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				os.WriteFile(filepath.Join(n.root, "cgroup.procs"), []byte(pid), 0o644)
			}
		}
		os.Remove(n.group)
		if out, err := exec.Command("umount", n.root).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", n.root, err, out)
		}
		os.Remove(n.root)
	})
	if err := os.Mkdir(n.group, 0o755); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.group, "net_cls.classid"), []byte(fmt.Sprint(n.classid)), 0o644); err != nil {
		t.Fatal(err)
	}
	return n
}

// cut isolates server s: nothing reaches it and nothing it sends leaves.
func (n *netCls) cut(t *testing.T, s *server) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(n.group, "cgroup.procs"), []byte(fmt.Sprint(s.cmd.Process.Pid)), 0o644); err != nil {
		t.Fatalf("move server %s into the net_cls group: %v", s.host, err)
	}
	nftCut(t, s.host, n.classid)
}

// restore removes the rules and moves the server back.
func (n *netCls) restore(t *testing.T, s *server) {
	t.Helper()
	nftReset(t)
	os.WriteFile(filepath.Join(n.root, "cgroup.procs"), []byte(fmt.Sprint(s.cmd.Process.Pid)), 0o644)
}
