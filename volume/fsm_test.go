package volume

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// errPanicked stands for an Apply that panicked: a panic in Raft's FSM
// goroutine takes the whole server down, so a test must report it rather
// than crash the test binary.
var errPanicked = errors.New("Apply panicked")

// applyData feeds one raw log entry to f and returns its verdict.
func applyData(f *FSM, index uint64, data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errPanicked, r)
		}
	}()
	resp := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data})
	if resp == nil {
		return nil
	}
	e, ok := resp.(error)
	if !ok {
		return fmt.Errorf("Apply returned %T %v, want nil or an error", resp, resp)
	}
	return e
}

func encode(t testing.TB, c Command) []byte {
	t.Helper()
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("encode %+v: %v", c, err)
	}
	return data
}

// fsmFrom applies cmds, each of which must succeed, to a new FSM.
func fsmFrom(t testing.TB, cmds ...Command) *FSM {
	t.Helper()
	f := NewFSM()
	for i, c := range cmds {
		if err := applyData(f, uint64(i+1), encode(t, c)); err != nil {
			t.Fatalf("setup command %d (%s): %v", i, c.Op, err)
		}
	}
	return f
}

func testPeer(id, addr string, voter bool) *Peer {
	return &Peer{ID: id, Address: addr, Voter: voter, Added: 1700000000}
}

func testBrick(server, host, path string, port, subvolume int) Brick {
	return Brick{ServerID: server, Host: host, Path: path, Port: port, Subvolume: subvolume}
}

// testVolume is a distribute volume in the given state over bricks, laid
// out on 16 partitions.
func testVolume(name string, state Lifecycle, bricks ...Brick) *Volume {
	v := &Volume{ID: "id-" + name, Name: name, State: state, Bricks: bricks, Created: 1700000000, Version: 1}
	for p := 0; p < 16; p++ {
		v.Partitions = append(v.Partitions, p%len(bricks))
	}
	return v
}

// The commands that build the usual starting point: a pool of two servers
// and a volume gv0 with one brick on each.
var (
	cmdInit    = Command{Op: OpInit, Time: 1700000000, PoolID: "pool-1", Voters: 3, Peer: testPeer("s1", "10.0.0.1:24007", true)}
	cmdAddS2   = Command{Op: OpAddPeer, Peer: testPeer("s2", "10.0.0.2:24007", true)}
	cmdAddS3   = Command{Op: OpAddPeer, Peer: testPeer("s3", "10.0.0.3:24007", false)}
	cmdCreate0 = Command{Op: OpCreate, Volume: testVolume("gv0", Created,
		testBrick("s1", "10.0.0.1", "/data/gv0", 49152, 0),
		testBrick("s2", "10.0.0.2", "/data/gv0", 49152, 1))}
	pool2 = []Command{cmdInit, cmdAddS2}
	pool3 = []Command{cmdInit, cmdAddS2, cmdAddS3}
	withV = []Command{cmdInit, cmdAddS2, cmdCreate0}
)

func setState(name string, s Lifecycle) Command { return Command{Op: OpSetState, Name: name, State: s} }

func setOpt(name, key, value string) Command {
	return Command{Op: OpSetOption, Name: name, Key: key, Value: value}
}

func createOn(name string, bricks ...Brick) Command {
	return Command{Op: OpCreate, Volume: testVolume(name, Created, bricks...)}
}

func concat(parts ...[]Command) []Command {
	var out []Command
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestFSMApply(t *testing.T) {
	withOpts := concat(withV, []Command{setOpt("gv0", "features.read-only", "on"), setOpt("gv0", "network.ping-timeout", "10")})
	tests := []struct {
		name  string
		setup []Command
		cmd   Command
		raw   string // when set, the log entry's data instead of cmd
		err   error
		// edit turns the state before the command into the expected state
		// after it; nil means unchanged (always so when err is set).
		edit func(s *State)
	}{
		// init
		{name: "init founds the pool", cmd: cmdInit, edit: func(s *State) {
			s.PoolID, s.Voters = "pool-1", 3
			s.Peers["s1"] = testPeer("s1", "10.0.0.1:24007", true)
		}},
		{name: "init without a peer", cmd: Command{Op: OpInit, PoolID: "pool-1", Voters: 1}, edit: func(s *State) {
			s.PoolID, s.Voters = "pool-1", 1
		}},
		{name: "init twice", setup: pool2, cmd: Command{Op: OpInit, PoolID: "pool-2", Voters: 5, Peer: testPeer("s9", "10.0.0.9:24007", true)}, err: ErrExists},

		// add-peer
		{name: "add-peer", setup: pool2, cmd: cmdAddS3, edit: func(s *State) {
			s.Peers["s3"] = testPeer("s3", "10.0.0.3:24007", false)
		}},
		{name: "add-peer again with the same id and address", setup: pool2, cmd: Command{Op: OpAddPeer, Peer: testPeer("s2", "10.0.0.2:24007", false)}, edit: func(s *State) {
			s.Peers["s2"].Voter = false
		}},
		{name: "add-peer with another peer's address", setup: pool2, cmd: Command{Op: OpAddPeer, Peer: testPeer("s9", "10.0.0.2:24007", true)}, err: ErrExists},
		{name: "add-peer without a peer", setup: pool2, cmd: Command{Op: OpAddPeer}, err: ErrInvalid},
		{name: "add-peer without an id", setup: pool2, cmd: Command{Op: OpAddPeer, Peer: &Peer{Address: "10.0.0.9:24007"}}, err: ErrInvalid},

		// remove-peer
		{name: "remove-peer", setup: pool3, cmd: Command{Op: OpRemovePeer, Peer: &Peer{ID: "s3"}}, edit: func(s *State) {
			delete(s.Peers, "s3")
		}},
		{name: "remove-peer missing", setup: pool2, cmd: Command{Op: OpRemovePeer, Peer: &Peer{ID: "s9"}}, err: ErrNotFound},
		{name: "remove-peer without a peer", setup: pool2, cmd: Command{Op: OpRemovePeer}, err: ErrInvalid},

		// set-voter
		{name: "set-voter promotes", setup: pool3, cmd: Command{Op: OpSetVoter, Peer: &Peer{ID: "s3", Voter: true}}, edit: func(s *State) {
			s.Peers["s3"].Voter = true
		}},
		{name: "set-voter demotes", setup: pool3, cmd: Command{Op: OpSetVoter, Peer: &Peer{ID: "s2"}}, edit: func(s *State) {
			s.Peers["s2"].Voter = false
		}},
		{name: "set-voter missing", setup: pool2, cmd: Command{Op: OpSetVoter, Peer: &Peer{ID: "s9", Voter: true}}, err: ErrNotFound},
		{name: "set-voter without a peer", setup: pool2, cmd: Command{Op: OpSetVoter}, err: ErrInvalid},

		// create-volume
		{name: "create", setup: pool2, cmd: cmdCreate0, edit: func(s *State) {
			s.Volumes["gv0"] = cmdCreate0.Volume.Clone()
		}},
		{name: "create without a volume", setup: pool2, cmd: Command{Op: OpCreate}, err: ErrInvalid},
		{name: "create with a taken name", setup: withV, cmd: createOn("gv0", testBrick("s1", "10.0.0.1", "/data/other", 49153, 0)), err: ErrExists},
		{name: "create on the same path as another volume's brick", setup: withV, cmd: createOn("gv1", testBrick("s1", "10.0.0.1", "/data/gv0", 49153, 0)), err: ErrInvalid},
		{name: "create nested under another volume's brick", setup: withV, cmd: createOn("gv1", testBrick("s2", "10.0.0.2", "/data/gv0/sub", 49153, 0)), err: ErrInvalid},
		{name: "create holding another volume's brick", setup: withV, cmd: createOn("gv1", testBrick("s1", "10.0.0.1", "/data", 49153, 0)), err: ErrInvalid},
		{name: "create on another volume's path on another server", setup: concat(pool3, []Command{cmdCreate0}), cmd: createOn("gv1", testBrick("s3", "10.0.0.3", "/data/gv0", 49152, 0)), edit: func(s *State) {
			s.Volumes["gv1"] = testVolume("gv1", Created, testBrick("s3", "10.0.0.3", "/data/gv0", 49152, 0))
		}},
		{name: "create beside another volume's brick sharing a name prefix", setup: withV, cmd: createOn("gv1", testBrick("s1", "10.0.0.1", "/data/gv0x", 49153, 0)), edit: func(s *State) {
			s.Volumes["gv1"] = testVolume("gv1", Created, testBrick("s1", "10.0.0.1", "/data/gv0x", 49153, 0))
		}},
		{name: "create on a server not in the pool", setup: pool2, cmd: createOn("gv1", testBrick("s9", "10.0.0.9", "/data/gv1", 49152, 0)), err: ErrInvalid},

		// set-state
		{name: "set-state start", setup: withV, cmd: setState("gv0", Started), edit: func(s *State) {
			s.Volumes["gv0"].State = Started
			s.Volumes["gv0"].Version++
		}},
		{name: "set-state stop", setup: concat(withV, []Command{setState("gv0", Started)}), cmd: setState("gv0", Stopped), edit: func(s *State) {
			s.Volumes["gv0"].State = Stopped
			s.Volumes["gv0"].Version++
		}},
		{name: "set-state missing", setup: withV, cmd: setState("gv9", Started), err: ErrNotFound},

		// delete-volume
		{name: "delete started", setup: concat(withV, []Command{setState("gv0", Started)}), cmd: Command{Op: OpDelete, Name: "gv0"}, err: ErrState},
		{name: "delete created", setup: withV, cmd: Command{Op: OpDelete, Name: "gv0"}, edit: func(s *State) {
			delete(s.Volumes, "gv0")
		}},
		{name: "delete stopped", setup: concat(withV, []Command{setState("gv0", Started), setState("gv0", Stopped)}), cmd: Command{Op: OpDelete, Name: "gv0"}, edit: func(s *State) {
			delete(s.Volumes, "gv0")
		}},
		{name: "delete missing", setup: withV, cmd: Command{Op: OpDelete, Name: "gv9"}, err: ErrNotFound},

		// set-option and reset-option
		{name: "set-option on a volume without options", setup: withV, cmd: setOpt("gv0", "auth.allow", "10.0.0.0/8"), edit: func(s *State) {
			s.Volumes["gv0"].Options = map[string]string{"auth.allow": "10.0.0.0/8"}
			s.Volumes["gv0"].Version++
		}},
		{name: "set-option overwrites", setup: withOpts, cmd: setOpt("gv0", "features.read-only", "off"), edit: func(s *State) {
			s.Volumes["gv0"].Options["features.read-only"] = "off"
			s.Volumes["gv0"].Version++
		}},
		{name: "set-option missing volume", setup: withV, cmd: setOpt("gv9", "features.read-only", "on"), err: ErrNotFound},
		{name: "reset-option one key", setup: withOpts, cmd: Command{Op: OpResetOption, Name: "gv0", Key: "features.read-only"}, edit: func(s *State) {
			delete(s.Volumes["gv0"].Options, "features.read-only")
			s.Volumes["gv0"].Version++
		}},
		{name: "reset-option all keys", setup: withOpts, cmd: Command{Op: OpResetOption, Name: "gv0"}, edit: func(s *State) {
			s.Volumes["gv0"].Options = nil
			s.Volumes["gv0"].Version++
		}},
		{name: "reset-option missing volume", setup: withV, cmd: Command{Op: OpResetOption, Name: "gv9"}, err: ErrNotFound},

		// entries the FSM cannot apply
		{name: "unknown op", setup: withV, cmd: Command{Op: "rename-volume", Name: "gv0"}, err: ErrInvalid},
		{name: "empty op", setup: withV, cmd: Command{}, err: ErrInvalid},
		{name: "undecodable entry", setup: withV, raw: "{not json", err: ErrInvalid},
		{name: "mistyped field", setup: withV, raw: `{"op":"set-state","name":7}`, err: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsmFrom(t, tt.setup...)
			want, _ := f.State()
			if tt.edit != nil {
				tt.edit(want)
			}
			data := []byte(tt.raw)
			if tt.raw == "" {
				data = encode(t, tt.cmd)
			}
			index := uint64(len(tt.setup) + 1)
			err := applyData(f, index, data)
			if errors.Is(err, errPanicked) {
				t.Fatal(err)
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("Apply: %v, want %v", err, tt.err)
			}
			got, gotIndex := f.State()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("state after Apply:\n got %s\nwant %s", dump(got), dump(want))
			}
			if tt.raw == "" && gotIndex != index {
				t.Errorf("State index %d, want %d", gotIndex, index)
			}
		})
	}
}

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestFSMCreateKeepsBrickPortsUnique applies two creates that were planned
// against the same state, as two racing `volume create` calls are: both
// chose the first free port on s1. The FSM re-checks names and paths at
// apply time; it must also keep the ports of one server distinct, either
// by refusing the second create or by giving it another port.
func TestFSMCreateKeepsBrickPortsUnique(t *testing.T) {
	f := fsmFrom(t, pool2...)
	a := createOn("gva", testBrick("s1", "10.0.0.1", "/data/a", FirstBrickPort, 0))
	b := createOn("gvb", testBrick("s1", "10.0.0.1", "/data/b", FirstBrickPort, 0))
	if err := applyData(f, 10, encode(t, a)); err != nil {
		t.Fatalf("first create: %v", err)
	}
	err := applyData(f, 11, encode(t, b))
	if errors.Is(err, errPanicked) {
		t.Fatal(err)
	}
	st, _ := f.State()
	used := map[string]string{}
	for _, v := range st.SortedVolumes() {
		for _, br := range v.Bricks {
			key := fmt.Sprintf("%s:%d", br.ServerID, br.Port)
			if other, ok := used[key]; ok {
				t.Errorf("bricks %s and %s both have port %d on server %s (second create returned %v)", other, v.Name+" "+br.Name(), br.Port, br.ServerID, err)
			}
			used[key] = v.Name + " " + br.Name()
		}
	}
}

func TestFSMChanged(t *testing.T) {
	tests := []struct {
		name   string
		data   func(t *testing.T) []byte
		closed bool
	}{
		{"successful apply", func(t *testing.T) []byte { return encode(t, setState("gv0", Started)) }, true},
		{"refused command", func(t *testing.T) []byte { return encode(t, setState("gv9", Started)) }, false},
		{"unknown op", func(t *testing.T) []byte { return encode(t, Command{Op: "nope"}) }, false},
		{"undecodable entry", func(*testing.T) []byte { return []byte("{") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsmFrom(t, withV...)
			ch := f.Changed()
			if isClosed(ch) {
				t.Fatal("Changed() closed before any apply")
			}
			err := applyData(f, 100, tt.data(t))
			if errors.Is(err, errPanicked) {
				t.Fatal(err)
			}
			if got := isClosed(ch); got != tt.closed {
				t.Fatalf("Changed() closed = %v after Apply (err %v), want %v", got, err, tt.closed)
			}
			if tt.closed && isClosed(f.Changed()) {
				t.Error("Changed() after the apply is already closed; it must wait for the next change")
			}
			if !tt.closed && f.Changed() != ch {
				t.Error("a failed apply replaced the Changed() channel")
			}
		})
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestFSMStateIsACopy(t *testing.T) {
	f := fsmFrom(t, concat(withV, []Command{setOpt("gv0", "features.read-only", "on")})...)
	before, index := f.State()

	st, _ := f.State()
	st.PoolID = "changed"
	st.Voters = 5
	st.Peers["s1"].Address = "changed:1"
	st.Peers["s9"] = testPeer("s9", "x:1", true)
	delete(st.Peers, "s2")
	v := st.Volumes["gv0"]
	v.State = Started
	v.Bricks[0].Path = "/changed"
	v.Bricks = append(v.Bricks, testBrick("s9", "x", "/x", 1, 2))
	v.Partitions[0] = 99
	v.Options["features.read-only"] = "off"
	v.Options["auth.allow"] = "1.2.3.4"
	st.Volumes["gv9"] = v.Clone()

	after, afterIndex := f.State()
	if !reflect.DeepEqual(after, before) || afterIndex != index {
		t.Errorf("mutating a State() copy changed the FSM:\n got %s\nwant %s", dump(after), dump(before))
	}
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

// readCloser records whether Restore closed its reader.
type readCloser struct {
	io.Reader
	closed bool
}

func (r *readCloser) Close() error { r.closed = true; return nil }

func snapshotOf(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("Persist left the sink closed=%v cancelled=%v, want closed and not cancelled", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

func TestFSMSnapshotRestore(t *testing.T) {
	tests := []struct {
		name string
		cmds []Command
	}{
		{"empty", nil},
		{"pool without volumes", pool3},
		{"volumes with options and states", concat(pool3, []Command{
			cmdCreate0,
			createOn("gv1", testBrick("s3", "10.0.0.3", "/data/gv1", 49152, 0), testBrick("s1", "10.0.0.1", "/data/gv1", 49153, 1)),
			setState("gv1", Started),
			setOpt("gv1", "performance.cache-size", "64MB"),
			setOpt("gv1", "auth.allow", "10.0.0.0/8"),
			{Op: OpSetVoter, Peer: &Peer{ID: "s3", Voter: true}},
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := fsmFrom(t, tt.cmds...)
			want, _ := src.State()
			data := snapshotOf(t, src)

			// Restore into an FSM that holds something else, as a lagging
			// follower does.
			dst := fsmFrom(t, Command{Op: OpInit, PoolID: "other", Voters: 1, Peer: testPeer("x", "x:1", true)})
			ch := dst.Changed()
			r := &readCloser{Reader: bytes.NewReader(data)}
			if err := dst.Restore(r); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if !r.closed {
				t.Error("Restore did not close its reader")
			}
			if !isClosed(ch) {
				t.Error("Restore did not signal Changed()")
			}
			got, _ := dst.State()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("restored state:\n got %s\nwant %s", dump(got), dump(want))
			}
			// The restored FSM goes on applying.
			if err := applyData(dst, 1000, encode(t, Command{Op: OpAddPeer, Peer: testPeer("s8", "10.0.0.8:24007", false)})); err != nil {
				t.Errorf("Apply after Restore: %v", err)
			}
		})
	}
}

func TestFSMRestoreRefusesGarbage(t *testing.T) {
	f := fsmFrom(t, withV...)
	want, _ := f.State()
	r := &readCloser{Reader: strings.NewReader("{garbage")}
	if err := f.Restore(r); err == nil {
		t.Fatal("Restore of garbage succeeded")
	}
	if !r.closed {
		t.Error("Restore did not close its reader")
	}
	if got, _ := f.State(); !reflect.DeepEqual(got, want) {
		t.Errorf("failed Restore changed the state:\n got %s\nwant %s", dump(got), dump(want))
	}
}

// A snapshot written with empty maps (or by a version without them) still
// restores to a state the FSM can apply to.
func TestFSMRestoreFillsMaps(t *testing.T) {
	f := NewFSM()
	if err := f.Restore(io.NopCloser(strings.NewReader(`{"pool_id":"p","voters":3,"peers":null}`))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	for i, c := range []Command{cmdAddS2, createOn("gv0", testBrick("s2", "10.0.0.2", "/b", 49152, 0))} {
		if err := applyData(f, uint64(i+1), encode(t, c)); err != nil {
			t.Fatalf("Apply %s after Restore: %v", c.Op, err)
		}
	}
	st, _ := f.State()
	if st.PoolID != "p" || len(st.Peers) != 1 || len(st.Volumes) != 1 {
		t.Errorf("state after restore and applies: %s", dump(st))
	}
}
