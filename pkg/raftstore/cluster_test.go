package raftstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// listFSM is a trivial FSM that records every command it applies.
type listFSM struct {
	mu      sync.Mutex
	entries []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	if l.Type == raft.LogCommand {
		f.mu.Lock()
		f.entries = append(f.entries, string(l.Data))
		f.mu.Unlock()
	}
	return nil
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return listSnapshot(slices.Clone(f.entries)), nil
}

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var entries []string
	if err := json.NewDecoder(rc).Decode(&entries); err != nil {
		return err
	}
	f.mu.Lock()
	f.entries = entries
	f.mu.Unlock()
	return nil
}

func (f *listFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

type listSnapshot []string

func (s listSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode([]string(s)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (listSnapshot) Release() {}

// clusterNode is one in-process raft server backed by a Store.
type clusterNode struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	dir   string
	store *Store
	snaps *raft.InmemSnapshotStore // survives restarts, like a disk would
	trans *raft.InmemTransport
	fsm   *listFSM
	raft  *raft.Raft
}

func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	conf := raft.DefaultConfig()
	conf.LocalID = n.id
	conf.HeartbeatTimeout = 100 * time.Millisecond
	conf.ElectionTimeout = 100 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	// Snapshot and compact often so raft exercises DeleteRange (prefix
	// truncation) and, for a lagging follower, InstallSnapshot.
	conf.SnapshotThreshold = 50
	conf.SnapshotInterval = 20 * time.Millisecond
	conf.TrailingLogs = 20
	conf.Logger = hclog.New(&hclog.LoggerOptions{
		Name: string(n.id), Level: hclog.Error, Output: io.Discard,
	})
	r, err := raft.NewRaft(conf, n.fsm, n.store, n.store, n.snaps, n.trans)
	if err != nil {
		t.Fatalf("NewRaft(%s): %v", n.id, err)
	}
	n.raft = r
}

// stop shuts raft down (which also closes the transport) and closes the store.
func (n *clusterNode) stop(t *testing.T) {
	t.Helper()
	if n.raft != nil {
		if err := n.raft.Shutdown().Error(); err != nil {
			t.Errorf("Shutdown(%s): %v", n.id, err)
		}
		n.raft = nil
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			t.Errorf("Close store %s: %v", n.id, err)
		}
		n.store = nil
	}
}

// waitFor polls cond until it is true or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitLeader(t *testing.T, nodes []*clusterNode) *clusterNode {
	t.Helper()
	var leader *clusterNode
	waitFor(t, 10*time.Second, "a leader", func() bool {
		for _, n := range nodes {
			if n.raft != nil && n.raft.State() == raft.Leader {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

func applyRange(t *testing.T, leader *clusterNode, lo, hi int) {
	t.Helper()
	futures := make([]raft.ApplyFuture, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		futures = append(futures, leader.raft.Apply([]byte(fmt.Sprintf("cmd-%04d", i)), 5*time.Second))
	}
	for i, f := range futures {
		if err := f.Error(); err != nil {
			t.Fatalf("Apply(cmd-%04d) on %s: %v", lo+i, leader.id, err)
		}
	}
}

func waitFSMs(t *testing.T, nodes []*clusterNode, want []string) {
	t.Helper()
	for _, n := range nodes {
		waitFor(t, 10*time.Second, fmt.Sprintf("%s to apply %d entries", n.id, len(want)), func() bool {
			return len(n.fsm.list()) >= len(want)
		})
		if got := n.fsm.list(); !slices.Equal(got, want) {
			t.Fatalf("%s FSM has %d entries that differ from the expected %d", n.id, len(got), len(want))
		}
	}
}

// TestRaftCluster runs a real 3-node hashicorp/raft cluster with Store as
// each node's log and stable store, then restarts a follower from its store
// and checks that it catches up.
func TestRaftCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const n = 3
	nodes := make([]*clusterNode, n)
	var servers []raft.Server
	for i := range nodes {
		id := raft.ServerID(fmt.Sprintf("node%d", i))
		addr, trans := raft.NewInmemTransport(raft.ServerAddress(id))
		dir := t.TempDir()
		store, err := Open(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = &clusterNode{
			id: id, addr: addr, dir: dir, store: store,
			snaps: raft.NewInmemSnapshotStore(), trans: trans, fsm: &listFSM{},
		}
		servers = append(servers, raft.Server{ID: id, Address: addr})
	}
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.stop(t)
		}
	})
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
	for _, nd := range nodes {
		nd.start(t)
		if err := nd.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			t.Fatalf("BootstrapCluster(%s): %v", nd.id, err)
		}
	}

	leader := waitLeader(t, nodes)
	applyRange(t, leader, 1, 200)
	var want []string
	for i := 1; i <= 200; i++ {
		want = append(want, fmt.Sprintf("cmd-%04d", i))
	}
	waitFSMs(t, nodes, want)

	// Every store holds the newest commands, in order, as durable log
	// entries. Snapshots let raft compact the prefix with DeleteRange, and a
	// follower that installed a snapshot may legitimately have a gap.
	checkStoreSuffix := func(nd *clusterNode) {
		first, _ := nd.store.FirstIndex()
		last, _ := nd.store.LastIndex()
		var cmds []string
		for i := first; i <= last && first > 0; i++ {
			var l raft.Log
			err := nd.store.GetLog(i, &l)
			if errors.Is(err, raft.ErrLogNotFound) {
				continue // compacted meanwhile, or a post-snapshot gap
			}
			if err != nil {
				t.Fatalf("%s GetLog(%d) in [%d, %d]: %v", nd.id, i, first, last, err)
			}
			if l.Index != i {
				t.Fatalf("%s GetLog(%d) returned index %d", nd.id, i, l.Index)
			}
			if l.Type == raft.LogCommand {
				cmds = append(cmds, string(l.Data))
			}
		}
		// A follower brought up to date by a snapshot past its log's end
		// holds the newest commands in the snapshot, not in the log.
		snap, _ := strconv.ParseUint(nd.raft.Stats()["last_snapshot_index"], 10, 64)
		ends := len(cmds) > 0 && cmds[len(cmds)-1] == want[len(want)-1]
		if (!ends && snap <= last) || !slices.IsSorted(cmds) || len(slices.Compact(slices.Clone(cmds))) != len(cmds) {
			t.Fatalf("%s store holds %d commands in [%d, %d]; want increasing, ending with %s",
				nd.id, len(cmds), first, last, want[len(want)-1])
		}
	}
	for _, nd := range nodes {
		checkStoreSuffix(nd)
	}
	waitFor(t, 10*time.Second, "the leader to compact its log", func() bool {
		first, _ := leader.store.FirstIndex()
		return first > 1
	})
	checkStoreSuffix(leader)

	// Restart a follower from its store while the others make progress.
	var f *clusterNode
	for _, nd := range nodes {
		if nd != leader {
			f = nd
			break
		}
	}
	lastBefore, _ := f.store.LastIndex()
	termBefore, _ := f.store.GetUint64([]byte("CurrentTerm"))
	f.stop(t)
	for _, nd := range nodes {
		if nd != f {
			nd.trans.Disconnect(f.addr)
		}
	}
	applyRange(t, leader, 201, 250)
	for i := 201; i <= 250; i++ {
		want = append(want, fmt.Sprintf("cmd-%04d", i))
	}

	store, err := Open(Config{Dir: f.dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("reopen %s: %v", f.id, err)
	}
	f.store = store
	if last, _ := store.LastIndex(); last != lastBefore {
		t.Fatalf("%s LastIndex after reopen = %d, want %d", f.id, last, lastBefore)
	}
	if term, _ := store.GetUint64([]byte("CurrentTerm")); term != termBefore || term == 0 {
		t.Fatalf("%s CurrentTerm after reopen = %d, want %d", f.id, term, termBefore)
	}
	if ok, err := raft.HasExistingState(store, store, f.snaps); err != nil || !ok {
		t.Fatalf("HasExistingState(%s) = %v, %v; want true", f.id, ok, err)
	}
	f.fsm = &listFSM{}
	_, f.trans = raft.NewInmemTransport(f.addr)
	for _, nd := range nodes {
		if nd != f {
			nd.trans.Connect(f.addr, f.trans)
			f.trans.Connect(nd.addr, nd.trans)
		}
	}
	f.start(t)

	leader = waitLeader(t, nodes)
	applyRange(t, leader, 251, 260)
	for i := 251; i <= 260; i++ {
		want = append(want, fmt.Sprintf("cmd-%04d", i))
	}
	waitFSMs(t, nodes, want)

	// The follower may have caught up through InstallSnapshot, in which case
	// its log need not hold the newest entries yet. Once caught up, new
	// entries reach it through AppendEntries and so land in its Store.
	applyRange(t, leader, 261, 270)
	for i := 261; i <= 270; i++ {
		want = append(want, fmt.Sprintf("cmd-%04d", i))
	}
	waitFSMs(t, nodes, want)
	waitFor(t, 10*time.Second, string(f.id)+" log to catch up", func() bool {
		fl, _ := f.store.LastIndex()
		ll, _ := leader.store.LastIndex()
		return fl == ll
	})
	for _, nd := range nodes {
		checkStoreSuffix(nd)
	}
}
