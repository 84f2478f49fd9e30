package integration

// The chaos test (issue 5): real servers, a replica 3 volume, FUSE mounts,
// writers and readers that record every acknowledged write, and a seeded
// schedule of faults, one at a time with recovery in between. It ends by
// checking that nothing acknowledged was lost, that no read returned wrong
// bytes, that no application call failed while a majority of every replica
// set was reachable, and that every replica is identical; then it prints a
// report.
//
//	go test -run TestChaos ./integration/ -chaos.duration=10m -chaos.seed=42 -v
//	make chaos CHAOS_DURATION=10m CHAOS_SEED=42
//
// Faults (-chaos.faults): kill (kill -9 a server, restart it), stop
// (SIGSTOP, SIGCONT), cut (nftables drops every packet to and from one
// server's address and, through a net_cls cgroup, every packet its
// process sends), leader (kill -9 the volume manager's leader), flip
// (bytes of a chunk file on any brick, then read back; the background
// scrub, every 20 s here, repairs a follower's copy), cutin (drop only
// what is sent to one server: a one-way cut; its own connections leave
// from its address, so they fail too, as on a machine of its own) and
// enospc (the last subvolume's bricks on 256 MiB tmpfs; fill the volume
// until writes fail with ENOSPC, then free the space; ENOSPC is an
// expected answer at any time then; the Raft log's chunk data stays
// within a twentieth of a brick, so the workload alone does not fill
// them). All are in the default set. The run ends with a scrub of every brick, and the replicas are compared
// entry by entry, chunk record by chunk record and byte by byte (every
// chunk read through its checksums). The seed fixes the schedule
// and the workload's choices; timing still differs between runs.
//
// Files: chaos_test.go (flags, the run), chaos_work_test.go (writers,
// readers, call accounting), chaos_faults_test.go (the faults),
// chaos_verify_test.go (end-of-run checks and replica comparison).

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dfsproject/dfs/proto/dfspb"
)

var (
	chaosDuration   = flag.Duration("chaos.duration", 60*time.Second, "how long TestChaos injects faults")
	chaosSeed       = flag.Int64("chaos.seed", 0, "seed of TestChaos's fault schedule and workload (0: random, logged)")
	chaosFaults     = flag.String("chaos.faults", "kill,stop,cut,cutin,leader,flip,enospc", "faults TestChaos injects, comma separated, from "+strings.Join(allFaultKinds, ","))
	chaosSubvolumes = flag.Int("chaos.subvolumes", 2, "replica sets of TestChaos's volume (1 or more)")
	chaosMounts     = flag.Int("chaos.mounts", 2, "FUSE mounts the workers use")
	chaosWriters    = flag.Int("chaos.writers", 4, "writer goroutines")
	chaosReaders    = flag.Int("chaos.readers", 2, "reader goroutines")
	chaosFlipAny    = flag.Bool("chaos.flip-followers", true, "flip bytes on any brick, not only the subvolume leader; a follower's corrupt copy is repaired by the background scrub (every 20 s in TestChaos) and the scrub run at the end")
	chaosFirstHost  = flag.Int("chaos.first-host", 2, "servers listen on 127.0.0.N, N+1, N+2 (the other integration tests use 2; pick another to run beside them)")
	chaosTmpfsSize  = flag.String("chaos.enospc-size", "256m", "size of each tmpfs brick of the enospc fault")
	chaosLogDir     = flag.String("chaos.logdir", "", "keep the servers' and clients' logs (clients at DEBUG) in this directory")
	chaosBackups    = flag.Bool("chaos.backup-servers", false, "mount with backup-volfile-servers naming the other servers (default: only the first server, like the other tests)")
	chaosLiveMiB    = flag.Int("chaos.live-mib", 150, "writers delete files while the files they keep exceed this many MiB")
	chaosMaxStall   = flag.Duration("chaos.max-stall", 0, "fail if any application call took longer (0: only report)")
)

// chaosRun is the state of one TestChaos run.
type chaosRun struct {
	t      *testing.T
	c      *cluster
	rng    *rand.Rand // the fault schedule's; used by the test goroutine only
	seed   int64
	vol    string
	mounts []string
	start  time.Time
	faults faultSet
	w      *workload
	// enospcBricks are the bricks on small tmpfs mounts (enospc fault).
	enospcBricks map[string]bool
	tmpfsRoot    string
	netcls       *netCls

	mu      sync.Mutex
	active  string // the fault now in effect, "" between faults
	events  []faultEvent
	notes   []string
	healDur time.Duration
}

// faultEvent is one injected fault.
type faultEvent struct {
	kind     string
	target   string
	at       time.Duration // since the run started
	held     time.Duration // from injection to the start of recovery
	recover  time.Duration // from the start of recovery until the pool was whole
	detail   string
	recovery string // what recovery waited for, or why it failed
}

func (r *chaosRun) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.t.Log(msg)
	r.mu.Lock()
	r.notes = append(r.notes, fmt.Sprintf("%6.1fs %s", time.Since(r.start).Seconds(), msg))
	r.mu.Unlock()
}

func (r *chaosRun) activeFault() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active
}

func (r *chaosRun) setActive(s string) {
	r.mu.Lock()
	r.active = s
	r.mu.Unlock()
}

func TestChaos(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("TestChaos needs root (FUSE mounts, nftables, tmpfs)")
	}
	seed := *chaosSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("chaos seed %d (rerun with -chaos.seed=%d), duration %v", seed, seed, *chaosDuration)
	faults, err := parseFaults(*chaosFaults)
	if err != nil {
		t.Fatal(err)
	}
	r := &chaosRun{t: t, rng: rand.New(rand.NewSource(seed)), seed: seed, vol: "gv0", faults: faults}
	if faults["cut"] || faults["cutin"] {
		if err := nftAvailable(); err != nil {
			t.Fatalf("the cut fault needs nftables (make chaos-deps): %v", err)
		}
		nftReset(t)
		t.Cleanup(func() { nftReset(t) })
		if faults["cut"] {
			r.netcls = newNetCls(t)
		}
	}

	// tmpfs bricks are mounted before the servers start, so that they are
	// unmounted after the servers are gone.
	if faults["enospc"] {
		r.tmpfsRoot = t.TempDir()
		for i := 0; i < 3; i++ {
			mountTmpfs(t, filepath.Join(r.tmpfsRoot, fmt.Sprintf("%s.%d", *loopNet, *chaosFirstHost+i)), *chaosTmpfsSize)
		}
	}
	if *chaosFirstHost == 2 {
		r.c = pool(t, 3)
	} else {
		r.c = poolAt(t, 3, *chaosFirstHost)
	}
	if *chaosLogDir != "" {
		if err := os.MkdirAll(*chaosLogDir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			for _, s := range r.c.servers {
				if b, err := os.ReadFile(s.logPath); err == nil {
					os.WriteFile(filepath.Join(*chaosLogDir, "server-"+s.host+".log"), b, 0o644)
				}
			}
		})
	}
	r.createVolume()
	for i := 0; i < *chaosMounts; i++ {
		r.mounts = append(r.mounts, r.mount(fmt.Sprintf("client-%d.log", i)))
	}
	r.w = newWorkload(r, seed)
	if err := r.w.setup(); err != nil {
		t.Fatal(err)
	}
	r.start = time.Now()
	r.w.start = r.start
	r.w.run(*chaosWriters, *chaosReaders)
	// Runs before the mounts' cleanups: workers must not outlive a
	// failed test.
	t.Cleanup(r.w.stop)

	// If the run dies half-way (t.Fatal), still say what happened.
	var v *verifyResult
	defer func() {
		if v == nil && r.w != nil {
			r.w.stop()
			r.report(nil)
		}
	}()
	r.schedule(*chaosDuration)

	r.w.stop()
	r.note("workers stopped after %d operations", r.w.total())
	r.setActive("")
	healStart := time.Now()
	r.awaitWhole(2 * time.Minute)
	r.awaitReplicasCaughtUp(2 * time.Minute)
	r.scrubAll(2 * time.Minute)
	r.healDur = time.Since(healStart)

	v = r.verify()
	r.report(v)
	r.judge(v)
}

// createVolume makes and starts a replica 3 volume of *chaosSubvolumes
// sets. With the enospc fault, the last set's bricks live on small tmpfs
// mounts.
func (r *chaosRun) createVolume() {
	t := r.t
	root := t.TempDir()
	args := []string{"volume", "create", r.vol, "replica", "3"}
	sets := *chaosSubvolumes
	if sets < 1 {
		t.Fatalf("-chaos.subvolumes %d: want at least 1", sets)
	}
	r.enospcBricks = map[string]bool{}
	for i := 0; i < sets; i++ {
		bricks := r.c.bricks(root, fmt.Sprintf("%s-%d", r.vol, i))
		if r.tmpfsRoot != "" && i == sets-1 {
			bricks = r.c.bricks(r.tmpfsRoot, fmt.Sprintf("%s-%d", r.vol, i))
			for _, b := range bricks {
				_, path, _ := strings.Cut(b, ":")
				r.enospcBricks[path] = true
			}
		}
		args = append(args, bricks...)
	}
	a := r.c.servers[0].addr
	must(t, a, args...)
	// The background scrub repairs corrupt chunks on followers (the flip
	// fault); run it often, at full speed.
	must(t, a, "volume", "set", r.vol, "features.scrub-freq", "20s")
	must(t, a, "volume", "set", r.vol, "features.scrub-throttle", "aggressive")
	must(t, a, "volume", "start", r.vol)
	awaitBricks(t, a, r.vol, 20*time.Second, r.c.hosts())
}

// scrubAll runs a scrub on every brick now and waits until each has
// finished one that started after this call: what a flip left corrupt on
// a follower is repaired before the replicas are compared.
func (r *chaosRun) scrubAll(limit time.Duration) {
	t := r.t
	a := r.c.servers[0].addr
	since := time.Now().Unix()
	must(t, a, "volume", "scrub", r.vol, "ondemand")
	eventually(t, limit, "a scrub on every brick after the workers stopped", func() error {
		var st dfspb.VolumeScrubResponse
		if err := jsonInto(t, a, &st, "volume", "scrub", r.vol, "status"); err != nil {
			return err
		}
		for _, b := range st.Bricks {
			run := b.GetScrub().GetRun()
			if !b.Online || run.GetStartedUnix() < since || run.GetFinishedUnix() == 0 {
				return fmt.Errorf("%s:%s: scrub run %v not finished", b.Host, b.Path, run)
			}
			if run.GetError() != "" {
				return fmt.Errorf("%s:%s: scrub: %s", b.Host, b.Path, run.GetError())
			}
		}
		return nil
	})
}

// schedule injects faults one at a time until d has passed: a quiet spell,
// a fault held for a few seconds, recovery, and a wait until the pool is
// whole again.
func (r *chaosRun) schedule(d time.Duration) {
	kinds := r.faults.kinds()
	deadline := r.start.Add(d)
	for n := 0; time.Now().Before(deadline); n++ {
		quiet := time.Duration(1000+r.rng.Intn(3000)) * time.Millisecond
		if !sleepUntil(time.Now().Add(quiet), deadline) {
			break
		}
		if len(kinds) == 0 {
			continue
		}
		kind := kinds[r.rng.Intn(len(kinds))]
		hold := time.Duration(2000+r.rng.Intn(4000)) * time.Millisecond
		ev := r.inject(kind, hold)
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
		r.t.Logf("fault %d %s on %s at %.1fs: held %.1fs, recovered in %.1fs %s %s", n, ev.kind, ev.target,
			ev.at.Seconds(), ev.held.Seconds(), ev.recover.Seconds(), ev.detail, ev.recovery)
		if r.t.Failed() {
			return
		}
	}
}

// sleepUntil sleeps until t or deadline, whichever is first, and reports
// whether t came first. The schedule's pauses are the fault model itself
// (how long a fault lasts), not waits for a condition.
func sleepUntil(t, deadline time.Time) bool {
	if deadline.Before(t) {
		time.Sleep(time.Until(deadline))
		return false
	}
	time.Sleep(time.Until(t))
	return true
}

// judge fails the test on every broken promise.
func (r *chaosRun) judge(v *verifyResult) {
	t := r.t
	w := r.w
	if n := len(v.lost); n > 0 {
		t.Errorf("%d acknowledged writes lost or changed (first: %s)", n, v.lost[0])
	}
	if n := len(v.resurrected); n > 0 {
		t.Errorf("%d deleted files are back (first: %s)", n, v.resurrected[0])
	}
	if n := len(w.wrongReads()); n > 0 {
		t.Errorf("%d reads returned wrong bytes (first: %s)", n, w.wrongReads()[0])
	}
	if fails := w.unexpectedFailures(); len(fails) > 0 {
		t.Errorf("%d application calls failed while a majority of every replica set was reachable (first: %s)", len(fails), fails[0])
	}
	if n := len(v.replicaDiffs); n > 0 {
		t.Errorf("replicas differ after heal (%d differences; first: %s)", n, v.replicaDiffs[0])
	}
	if *chaosMaxStall > 0 && w.longest().d > *chaosMaxStall {
		t.Errorf("longest stall %v exceeds -chaos.max-stall %v: %s", w.longest().d, *chaosMaxStall, w.longest())
	}
}

// report prints what happened.
func (r *chaosRun) report(v *verifyResult) {
	var b strings.Builder
	w := r.w
	fmt.Fprintf(&b, "==== chaos report: seed %d, %v of faults, %d subvolume(s), %d mount(s), %d writers, %d readers ====\n",
		r.seed, *chaosDuration, *chaosSubvolumes, len(r.mounts), *chaosWriters, *chaosReaders)
	fmt.Fprintf(&b, "operations (application calls):\n%s", w.opTable())
	w.mu.Lock()
	fmt.Fprintf(&b, "acknowledged: %d writes (%.1f MiB), %d files at the end, %d deleted, %d left undetermined by a failed call\n",
		w.acked, float64(w.ackedBytes)/(1<<20), len(w.list), len(w.deleted), w.undetermined)
	w.mu.Unlock()
	r.mu.Lock()
	byKind := map[string]int{}
	for _, e := range r.events {
		byKind[e.kind]++
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintf(&b, "faults injected: %d (", len(r.events))
	for i, k := range kinds {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, byKind[k])
	}
	b.WriteString(")\n")
	for _, e := range r.events {
		fmt.Fprintf(&b, "  %7.1fs %-7s %-22s held %4.1fs  whole again after %5.1fs  %s %s\n",
			e.at.Seconds(), e.kind, e.target, e.held.Seconds(), e.recover.Seconds(), e.detail, e.recovery)
	}
	if len(r.events) > 0 {
		var worst faultEvent
		var sum time.Duration
		for _, e := range r.events {
			sum += e.recover
			if e.recover > worst.recover {
				worst = e
			}
		}
		fmt.Fprintf(&b, "time to heal after a fault (recovery start -> every brick online, the faulted server's bricks caught up with their leaders): mean %.1fs, max %.1fs (%s on %s at %.1fs)\n",
			(sum / time.Duration(len(r.events))).Seconds(), worst.recover.Seconds(), worst.kind, worst.target, worst.at.Seconds())
	}
	for _, n := range r.notes {
		fmt.Fprintf(&b, "  note %s\n", n)
	}
	r.mu.Unlock()
	fmt.Fprintf(&b, "failed calls: %s\n", w.failureSummary())
	for i, f := range w.failureList() {
		if i == 20 {
			fmt.Fprintf(&b, "  ... %d more\n", len(w.failureList())-20)
			break
		}
		fmt.Fprintf(&b, "  %s\n", f)
	}
	fmt.Fprintf(&b, "longest stall: %s\n", w.longest())
	for _, s := range w.stallsOver(2 * time.Second) {
		fmt.Fprintf(&b, "  stall %s\n", s)
	}
	fmt.Fprintf(&b, "wrong bytes read: %d\n", len(w.wrongReads()))
	for _, s := range w.wrongReads() {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	if v == nil {
		fmt.Fprintf(&b, "THE RUN STOPPED EARLY (see the failure above): no end check\n")
		r.print(b.String())
		return
	}
	fmt.Fprintf(&b, "time to heal (workers stopped -> every brick online and every replica at the same applied index): %.1fs\n", r.healDur.Seconds())
	fmt.Fprintf(&b, "end check: %d files read back through a fresh mount in %.1fs, %d lost or changed, %d deleted files back\n",
		v.checked, v.readBack.Seconds(), len(v.lost), len(v.resurrected))
	for i, l := range v.lost {
		if i == 20 {
			fmt.Fprintf(&b, "  ... %d more\n", len(v.lost)-20)
			break
		}
		fmt.Fprintf(&b, "  lost: %s\n", l)
	}
	fmt.Fprintf(&b, "replicas: %s; %d differences\n", v.replicaSummary, len(v.replicaDiffs))
	for i, d := range v.replicaDiffs {
		if i == 30 {
			fmt.Fprintf(&b, "  ... %d more\n", len(v.replicaDiffs)-30)
			break
		}
		fmt.Fprintf(&b, "  %s\n", d)
	}
	r.print(b.String())
}

// print writes the report to stdout under -v (make chaos), else to the
// test log.
func (r *chaosRun) print(s string) {
	if testing.Verbose() {
		fmt.Print(s)
	} else {
		r.t.Log("\n" + s)
	}
}

// poolAt is pool with servers on 127.0.0.first and up, for running the
// chaos test beside other users of 127.0.0.2-4.
func poolAt(t *testing.T, n, first int) *cluster {
	t.Helper()
	c := &cluster{t: t}
	root := t.TempDir()
	for i := 0; i < n; i++ {
		host := fmt.Sprintf("%s.%d", *loopNet, first+i)
		s := &server{t: t, host: host, addr: host + ":24007", data: filepath.Join(root, "srv"+host), logPath: filepath.Join(root, host+".log")}
		c.servers = append(c.servers, s)
		s.start()
	}
	t.Cleanup(func() {
		for _, s := range c.servers {
			s.kill()
		}
		if t.Failed() {
			for _, s := range c.servers {
				s.dumpLog()
			}
		}
	})
	for _, s := range c.servers {
		s.awaitUp()
	}
	for _, s := range c.servers[1:] {
		must(t, c.servers[0].addr, "peer", "probe", s.host)
	}
	eventually(t, 10*time.Second, "all peers connected", func() error {
		var pl dfspb.PeerListResponse
		if err := jsonInto(t, c.servers[0].addr, &pl, "pool", "list"); err != nil {
			return err
		}
		connected := 0
		for _, p := range pl.Peers {
			if p.Connected {
				connected++
			}
		}
		if connected != n {
			return fmt.Errorf("%d of %d peers connected", connected, n)
		}
		return nil
	})
	return c
}

// mount mounts the volume (with backup-volfile-servers naming the other
// servers under -chaos.backup-servers), logging to the log directory when one is
// given, and unmounts it when the test ends.
func (r *chaosRun) mount(logName string) string {
	t := r.t
	t.Helper()
	dir := t.TempDir()
	logDir := *chaosLogDir
	if logDir == "" {
		logDir = t.TempDir()
	}
	log := filepath.Join(logDir, logName)
	var backups []string
	for _, s := range r.c.servers[1:] {
		backups = append(backups, s.host)
	}
	opts := "log-file=" + log
	if *chaosBackups {
		opts += ",backup-volfile-servers=" + strings.Join(backups, ":")
	}
	if *chaosLogDir != "" {
		opts += ",log-level=DEBUG"
	}
	res := dfs(t, r.c.servers[0].addr, "mount", "-o", opts, r.c.servers[0].host+":/"+r.vol, dir)
	if res.code != 0 {
		b, _ := os.ReadFile(log)
		t.Fatalf("dfs mount: exit %d: %s\nclient log:\n%s", res.code, res.stderr, b)
	}
	if !isMounted(t, dir) {
		t.Fatalf("dfs mount returned but %s is not mounted", dir)
	}
	t.Cleanup(func() {
		unmount(t, dir)
		if t.Failed() && *chaosLogDir == "" {
			b, _ := os.ReadFile(log)
			t.Logf("---- client log of %s ----\n%s", dir, tail(string(b), 40))
		}
	})
	return dir
}
