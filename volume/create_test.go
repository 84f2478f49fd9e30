package volume

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// planPool is the pool PlanCreate tests plan against: six servers s1..s6 on
// 10.0.0.1..6, two servers (h1a, h1b) sharing host 10.0.1.1, and a volume
// "old" with bricks s1:/old and s2:/old/b.
func planPool() *State {
	s := NewState()
	s.PoolID, s.Voters = "pool-1", 3
	for i := 1; i <= 6; i++ {
		id := fmt.Sprintf("s%d", i)
		s.Peers[id] = testPeer(id, fmt.Sprintf("10.0.0.%d:24007", i), i <= 3)
	}
	s.Peers["h1a"] = testPeer("h1a", "10.0.1.1:24007", false)
	s.Peers["h1b"] = testPeer("h1b", "10.0.1.1:24008", false)
	s.Volumes["old"] = testVolume("old", Started,
		testBrick("s1", "10.0.0.1", "/old", FirstBrickPort, 0),
		testBrick("s2", "10.0.0.2", "/old/b", FirstBrickPort, 1))
	return s
}

// bricks parses HOST:/PATH arguments as the CLI gives them; HOST may carry
// a port (10.0.0.1:24007:/b).
func bricks(args ...string) []BrickSpec {
	out := make([]BrickSpec, 0, len(args))
	for _, a := range args {
		i := strings.Index(a, ":/")
		if i < 0 {
			panic("brick argument without :/ — write the BrickSpec out: " + a)
		}
		out = append(out, BrickSpec{Host: a[:i], Path: a[i+1:]})
	}
	return out
}

// spread is n bricks named path+index, one per server s1..s6 in turn.
func spread(n int, path string) []BrickSpec {
	out := make([]BrickSpec, n)
	for i := range out {
		out[i] = BrickSpec{Host: fmt.Sprintf("10.0.0.%d", i%6+1), Path: fmt.Sprintf("%s%d", path, i)}
	}
	return out
}

// bricksOf lists a planned volume's bricks as server:path@subvolume.
func bricksOf(v *Volume) []string {
	out := make([]string, len(v.Bricks))
	for i, b := range v.Bricks {
		out[i] = fmt.Sprintf("%s:%s@%d", b.ServerID, b.Path, b.Subvolume)
	}
	return out
}

func warned(warnings []string, substr string) bool {
	for _, w := range warnings {
		if strings.Contains(w, substr) {
			return true
		}
	}
	return false
}

func TestPlanCreate(t *testing.T) {
	type shape struct {
		replica, disperse, redundancy, subvolumes int
		typ                                       string
	}
	tests := []struct {
		name string
		req  CreateRequest
		err  error
		// want, when set, is the shape of the planned volume.
		want *shape
		// bricks, when set, is bricksOf the planned volume.
		bricks []string
		// warn, when set, must appear in a warning; otherwise there must
		// be none.
		warn string
	}{
		// shapes and brick counts
		{name: "distribute of one brick", req: CreateRequest{Name: "v", Bricks: spread(1, "/b")},
			want: &shape{subvolumes: 1, typ: "Distribute"}},
		{name: "distribute of three bricks", req: CreateRequest{Name: "v", Bricks: spread(3, "/b")},
			want: &shape{subvolumes: 3, typ: "Distribute"}},
		{name: "replica 3", req: CreateRequest{Name: "v", Replica: 3, Bricks: spread(3, "/b")},
			want: &shape{replica: 3, subvolumes: 1, typ: "Replicate"}},
		{name: "replica 3 of 4 bricks", req: CreateRequest{Name: "v", Replica: 3, Bricks: spread(4, "/b")}, err: ErrInvalid},
		{name: "replica 3 of 2 bricks", req: CreateRequest{Name: "v", Replica: 3, Bricks: spread(2, "/b")}, err: ErrInvalid},
		{name: "2x3 distributed replicate", req: CreateRequest{Name: "v", Replica: 3, Bricks: spread(6, "/b")},
			want:   &shape{replica: 3, subvolumes: 2, typ: "Distributed-Replicate"},
			bricks: []string{"s1:/b0@0", "s2:/b1@0", "s3:/b2@0", "s4:/b3@1", "s5:/b4@1", "s6:/b5@1"}},
		{name: "subvolumes follow command-line order", req: CreateRequest{Name: "v", Replica: 3, Bricks: bricks(
			"10.0.0.6:/z", "10.0.0.2:/y", "10.0.0.4:/x", "10.0.0.1:/w", "10.0.0.5:/v", "10.0.0.3:/u")},
			want:   &shape{replica: 3, subvolumes: 2, typ: "Distributed-Replicate"},
			bricks: []string{"s6:/z@0", "s2:/y@0", "s4:/x@0", "s1:/w@1", "s5:/v@1", "s3:/u@1"}},
		{name: "disperse 3", req: CreateRequest{Name: "v", Disperse: 3, Redundancy: 1, Bricks: spread(3, "/b")},
			want: &shape{disperse: 3, redundancy: 1, subvolumes: 1, typ: "Disperse"}},
		{name: "disperse 3 of 4 bricks", req: CreateRequest{Name: "v", Disperse: 3, Redundancy: 1, Bricks: spread(4, "/b")}, err: ErrInvalid},
		{name: "2x3 distributed disperse", req: CreateRequest{Name: "v", Disperse: 3, Redundancy: 1, Bricks: spread(6, "/b")},
			want:   &shape{disperse: 3, redundancy: 1, subvolumes: 2, typ: "Distributed-Disperse"},
			bricks: []string{"s1:/b0@0", "s2:/b1@0", "s3:/b2@0", "s4:/b3@1", "s5:/b4@1", "s6:/b5@1"}},
		{name: "no bricks", req: CreateRequest{Name: "v"}, err: ErrInvalid},

		// replica counts
		{name: "replica 1", req: CreateRequest{Name: "v", Replica: 1, Bricks: spread(1, "/b")}, err: ErrInvalid},
		{name: "negative replica", req: CreateRequest{Name: "v", Replica: -3, Bricks: spread(3, "/b")}, err: ErrInvalid},
		{name: "replica 16", req: CreateRequest{Name: "v", Replica: 16, Force: true, Bricks: spread(16, "/b")},
			want: &shape{replica: 16, subvolumes: 1, typ: "Replicate"}},
		{name: "replica 17", req: CreateRequest{Name: "v", Replica: 17, Force: true, Bricks: spread(17, "/b")}, err: ErrInvalid},
		{name: "replica 2 warns about split brain", req: CreateRequest{Name: "v", Replica: 2, Bricks: spread(2, "/b")},
			want: &shape{replica: 2, subvolumes: 1, typ: "Replicate"}, warn: "replica 3"},
		{name: "replica with disperse", req: CreateRequest{Name: "v", Replica: 3, Disperse: 3, Bricks: spread(3, "/b")}, err: ErrInvalid},
		{name: "replica with redundancy", req: CreateRequest{Name: "v", Replica: 3, Redundancy: 1, Bricks: spread(3, "/b")}, err: ErrInvalid},

		// disperse and redundancy counts
		{name: "disperse 2", req: CreateRequest{Name: "v", Disperse: 2, Redundancy: 1, Bricks: spread(2, "/b")}, err: ErrInvalid},
		{name: "disperse 1", req: CreateRequest{Name: "v", Disperse: 1, Bricks: spread(1, "/b")}, err: ErrInvalid},
		{name: "negative disperse", req: CreateRequest{Name: "v", Disperse: -3, Bricks: spread(3, "/b")}, err: ErrInvalid},
		{name: "disperse 32", req: CreateRequest{Name: "v", Disperse: 32, Redundancy: 8, Force: true, Bricks: spread(32, "/b")},
			want: &shape{disperse: 32, redundancy: 8, subvolumes: 1, typ: "Disperse"}},
		{name: "disperse 33", req: CreateRequest{Name: "v", Disperse: 33, Redundancy: 8, Force: true, Bricks: spread(33, "/b")}, err: ErrInvalid},
		{name: "disperse 4 redundancy 1", req: CreateRequest{Name: "v", Disperse: 4, Redundancy: 1, Bricks: spread(4, "/b")},
			want: &shape{disperse: 4, redundancy: 1, subvolumes: 1, typ: "Disperse"}},
		{name: "disperse 4 redundancy 2", req: CreateRequest{Name: "v", Disperse: 4, Redundancy: 2, Bricks: spread(4, "/b")}, err: ErrInvalid},
		{name: "disperse 6 redundancy 2", req: CreateRequest{Name: "v", Disperse: 6, Redundancy: 2, Bricks: spread(6, "/b")},
			want: &shape{disperse: 6, redundancy: 2, subvolumes: 1, typ: "Disperse"}},
		{name: "disperse 6 redundancy 3", req: CreateRequest{Name: "v", Disperse: 6, Redundancy: 3, Bricks: spread(6, "/b")}, err: ErrInvalid},
		{name: "disperse 6 redundancy 6", req: CreateRequest{Name: "v", Disperse: 6, Redundancy: 6, Bricks: spread(6, "/b")}, err: ErrInvalid},
		{name: "negative redundancy", req: CreateRequest{Name: "v", Disperse: 6, Redundancy: -1, Bricks: spread(6, "/b")}, err: ErrInvalid},
		{name: "disperse 3 redundancy defaults to 1", req: CreateRequest{Name: "v", Disperse: 3, Bricks: spread(3, "/b")},
			want: &shape{disperse: 3, redundancy: 1, subvolumes: 1, typ: "Disperse"}, warn: "using 1"},
		{name: "disperse 6 redundancy defaults to 2", req: CreateRequest{Name: "v", Disperse: 6, Bricks: spread(6, "/b")},
			want: &shape{disperse: 6, redundancy: 2, subvolumes: 1, typ: "Disperse"}, warn: "using 2"},
		{name: "redundancy alone makes one disperse set of every brick", req: CreateRequest{Name: "v", Redundancy: 2, Bricks: spread(6, "/b")},
			want: &shape{disperse: 6, redundancy: 2, subvolumes: 1, typ: "Disperse"}},
		{name: "redundancy alone over too few bricks", req: CreateRequest{Name: "v", Redundancy: 1, Bricks: spread(2, "/b")}, err: ErrInvalid},

		// hosts
		{name: "host by host:port", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.3:24007:/b")},
			bricks: []string{"s3:/b@0"}},
		{name: "host by bare host", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.3:/b")},
			bricks: []string{"s3:/b@0"}},
		{name: "host not in the pool", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/b", "10.0.0.9:/b")}, err: ErrInvalid},
		{name: "known host with an unknown port", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:9999:/b")}, err: ErrInvalid},
		{name: "bare host of two peers is ambiguous", req: CreateRequest{Name: "v", Bricks: bricks("10.0.1.1:/b")}, err: ErrInvalid},
		{name: "host:port picks one of two peers on a host", req: CreateRequest{Name: "v", Bricks: bricks("10.0.1.1:24008:/b", "10.0.1.1:24007:/b")},
			bricks: []string{"h1b:/b@0", "h1a:/b@1"}},

		// brick paths
		{name: "duplicate brick", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/b", "10.0.0.1:/b")}, err: ErrInvalid},
		{name: "duplicate brick spelt differently", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/b/", "10.0.0.1://b")}, err: ErrInvalid},
		{name: "duplicate brick by host and host:port", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/b", "10.0.0.1:24007:/b")}, err: ErrInvalid},
		{name: "nested bricks, parent first", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/a", "10.0.0.1:/a/b")}, err: ErrInvalid},
		{name: "nested bricks, child first", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/a/b", "10.0.0.1:/a")}, err: ErrInvalid},
		{name: "sibling bricks sharing a prefix", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/a", "10.0.0.1:/ab")},
			bricks: []string{"s1:/a@0", "s1:/ab@1"}},
		{name: "same path on two servers", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/a", "10.0.0.2:/a")},
			bricks: []string{"s1:/a@0", "s2:/a@1"}},
		{name: "path is cleaned", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.3:/data//b/")},
			bricks: []string{"s3:/data/b@0"}},
		{name: "relative path", req: CreateRequest{Name: "v", Bricks: []BrickSpec{{Host: "10.0.0.1", Path: "data/b"}}}, err: ErrInvalid},
		{name: "empty path", req: CreateRequest{Name: "v", Bricks: []BrickSpec{{Host: "10.0.0.1", Path: ""}}}, err: ErrInvalid},
		{name: "path with ..", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/data/../etc")}, err: ErrInvalid},
		{name: "path ending in ..", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/data/..")}, err: ErrInvalid},
		{name: "path with .", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/data/./b")}, err: ErrInvalid},
		{name: "root", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/")}, err: ErrInvalid},
		{name: "root spelt //", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1://")}, err: ErrInvalid},
		{name: "path over 1024 bytes", req: CreateRequest{Name: "v", Bricks: []BrickSpec{{Host: "10.0.0.1", Path: "/" + strings.Repeat("d/", 600)}}}, err: ErrInvalid},

		// bricks of existing volumes (old has s1:/old and s2:/old/b)
		{name: "another volume's brick", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/old")}, err: ErrInvalid},
		{name: "under another volume's brick", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/old/x")}, err: ErrInvalid},
		{name: "holding another volume's brick", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.2:/old")}, err: ErrInvalid},
		{name: "another volume's path on another server", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.3:/old")},
			bricks: []string{"s3:/old@0"}},
		{name: "beside another volume's brick", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/old2")},
			bricks: []string{"s1:/old2@0"}},

		// sets on one server
		{name: "two bricks of a replica set on one server", req: CreateRequest{Name: "v", Replica: 3, Bricks: bricks("10.0.0.1:/a", "10.0.0.2:/a", "10.0.0.1:/b")}, err: ErrInvalid},
		{name: "two bricks of a replica set on one server, forced", req: CreateRequest{Name: "v", Replica: 3, Force: true, Bricks: bricks("10.0.0.1:/a", "10.0.0.2:/a", "10.0.0.1:/b")},
			want: &shape{replica: 3, subvolumes: 1, typ: "Replicate"}},
		{name: "two bricks of a replica set on one server by two spellings", req: CreateRequest{Name: "v", Replica: 2, Bricks: bricks("10.0.0.1:/a", "10.0.0.1:24007:/b")}, err: ErrInvalid},
		{name: "two bricks of a disperse set on one server", req: CreateRequest{Name: "v", Disperse: 3, Redundancy: 1, Bricks: bricks("10.0.0.1:/a", "10.0.0.2:/a", "10.0.0.1:/b")}, err: ErrInvalid},
		{name: "one server in each of two replica sets", req: CreateRequest{Name: "v", Replica: 2, Bricks: bricks("10.0.0.1:/a", "10.0.0.2:/a", "10.0.0.1:/b", "10.0.0.2:/b")},
			want: &shape{replica: 2, subvolumes: 2, typ: "Distributed-Replicate"}, warn: "replica 3"},
		{name: "distribute bricks on one server", req: CreateRequest{Name: "v", Bricks: bricks("10.0.0.1:/a", "10.0.0.1:/b")},
			want: &shape{subvolumes: 2, typ: "Distribute"}},

		// names
		{name: "existing volume name", req: CreateRequest{Name: "old", Bricks: spread(1, "/b")}, err: ErrExists},
		{name: "bad name", req: CreateRequest{Name: "my vol", Bricks: spread(1, "/b")}, err: ErrInvalid},

		// partitions
		{name: "16 partitions", req: CreateRequest{Name: "v", Partitions: 16, Bricks: spread(2, "/b")},
			want: &shape{subvolumes: 2, typ: "Distribute"}},
		{name: "partitions not a power of two", req: CreateRequest{Name: "v", Partitions: 1000, Bricks: spread(1, "/b")}, err: ErrInvalid},
		{name: "too few partitions", req: CreateRequest{Name: "v", Partitions: 8, Bricks: spread(1, "/b")}, err: ErrInvalid},
		{name: "negative partitions", req: CreateRequest{Name: "v", Partitions: -1024, Bricks: spread(1, "/b")}, err: ErrInvalid},
		{name: "more subvolumes than partitions", req: CreateRequest{Name: "v", Partitions: 16, Force: true, Bricks: spread(17, "/b")}, err: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := planPool()
			before := s.Clone()
			v, warnings, err := PlanCreate(s, tt.req, "vol-id", 1700000001)
			if !reflect.DeepEqual(s, before) {
				t.Error("PlanCreate changed the state it was given")
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("PlanCreate: %v, want %v", err, tt.err)
			}
			if err != nil {
				if v != nil || warnings != nil {
					t.Errorf("PlanCreate failed but returned volume %v and warnings %q", v, warnings)
				}
				return
			}
			checkPlanned(t, v, tt.req)
			if tt.want != nil {
				got := shape{v.Replica, v.Disperse, v.Redundancy, v.Subvolumes(), v.Type()}
				if got != *tt.want {
					t.Errorf("shape %+v, want %+v", got, *tt.want)
				}
			}
			if tt.bricks != nil {
				if got := bricksOf(v); !reflect.DeepEqual(got, tt.bricks) {
					t.Errorf("bricks %q, want %q", got, tt.bricks)
				}
			}
			switch {
			case tt.warn == "" && len(warnings) > 0:
				t.Errorf("unexpected warnings %q", warnings)
			case tt.warn != "" && !warned(warnings, tt.warn):
				t.Errorf("warnings %q, want one mentioning %q", warnings, tt.warn)
			}
		})
	}
}

// checkPlanned checks what every planned volume must be.
func checkPlanned(t *testing.T, v *Volume, req CreateRequest) {
	t.Helper()
	if v.ID != "vol-id" || v.Name != req.Name || v.State != Created || v.Created != 1700000001 || v.Version != 1 {
		t.Errorf("volume header id=%q name=%q state=%s created=%d version=%d", v.ID, v.Name, v.State, v.Created, v.Version)
	}
	if len(v.Bricks) != len(req.Bricks) {
		t.Fatalf("%d bricks planned for %d given", len(v.Bricks), len(req.Bricks))
	}
	for i, b := range v.Bricks {
		if b.Subvolume != i/v.SetSize() {
			t.Errorf("brick %d in subvolume %d, want %d", i, b.Subvolume, i/v.SetSize())
		}
		if b.Port < FirstBrickPort {
			t.Errorf("brick %s has port %d below %d", b.Name(), b.Port, FirstBrickPort)
		}
	}
	parts := req.Partitions
	if parts == 0 {
		parts = DefaultPartitions
	}
	if len(v.Partitions) != parts {
		t.Errorf("%d partitions, want %d", len(v.Partitions), parts)
	}
	seen := make([]bool, v.Subvolumes())
	for p, sv := range v.Partitions {
		if sv < 0 || sv >= v.Subvolumes() {
			t.Fatalf("partition %d on subvolume %d of %d", p, sv, v.Subvolumes())
		}
		seen[sv] = true
	}
	for sv, ok := range seen {
		if !ok {
			t.Errorf("subvolume %d holds no partition", sv)
		}
	}
}

// Whatever the default redundancy, it must satisfy the rule PlanCreate
// enforces on a given one, and be announced.
func TestPlanCreateDefaultRedundancy(t *testing.T) {
	for n := 3; n <= maxDisperse; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			v, warnings, err := PlanCreate(planPool(), CreateRequest{Name: "v", Disperse: n, Force: true, Bricks: spread(n, "/b")}, "id", 1)
			if err != nil {
				t.Fatalf("PlanCreate disperse %d without redundancy: %v", n, err)
			}
			if m := v.Redundancy; m < 1 || 2*m >= n {
				t.Errorf("default redundancy %d for disperse %d breaks 1 <= r < n/2", m, n)
			}
			if !warned(warnings, fmt.Sprintf("using %d", v.Redundancy)) {
				t.Errorf("warnings %q do not announce redundancy %d", warnings, v.Redundancy)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"", false},
		{strings.Repeat("a", 65), false},
		{"all", false},
		{"help", false},
		{"-vol", false},
		{"my vol", false},
		{" vol", false},
		{"vol\t", false},
		{"a/b", false},
		{"../x", false},
		{"vol.1", false},
		{"vol:1", false},
		{"volé", false},
		{"卷", false},
		{"vol\x00", false},
		{"a", true},
		{"Z", true},
		{"azAZ09-_", true},
		{"gv0", true},
		{"_vol", true},
		{"vol-", true},
		{"0", true},
		{"All", true},
		{"helper", true},
		{strings.Repeat("a", 64), true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.name), func(t *testing.T) {
			err := CheckName(tt.name)
			if tt.ok && err != nil {
				t.Errorf("CheckName: %v, want ok", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalid) {
				t.Errorf("CheckName: %v, want %v", err, ErrInvalid)
			}
			_, _, err = PlanCreate(planPool(), CreateRequest{Name: tt.name, Bricks: spread(1, "/b")}, "id", 1)
			if tt.ok != (err == nil) {
				t.Errorf("PlanCreate with name %q: %v", tt.name, err)
			}
		})
	}
}

func TestVolumeType(t *testing.T) {
	tests := []struct {
		replica, disperse, bricks int
		want                      string
	}{
		{0, 0, 1, "Distribute"},
		{0, 0, 4, "Distribute"},
		{3, 0, 3, "Replicate"},
		{2, 0, 2, "Replicate"},
		{3, 0, 6, "Distributed-Replicate"},
		{0, 3, 3, "Disperse"},
		{0, 6, 6, "Disperse"},
		{0, 3, 9, "Distributed-Disperse"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			v := &Volume{Replica: tt.replica, Disperse: tt.disperse, Bricks: make([]Brick, tt.bricks)}
			if got := v.Type(); got != tt.want {
				t.Errorf("Type() of replica %d disperse %d over %d bricks = %q, want %q", tt.replica, tt.disperse, tt.bricks, got, tt.want)
			}
		})
	}
}

func TestPlanCreatePorts(t *testing.T) {
	// used: s1 has 49152 and 49154, s2 has 49152; s3 has none. Ports of
	// stopped and created volumes stay theirs.
	pool := func() *State {
		s := planPool()
		delete(s.Volumes, "old")
		s.Volumes["a"] = testVolume("a", Stopped,
			testBrick("s1", "10.0.0.1", "/a1", 49152, 0),
			testBrick("s2", "10.0.0.2", "/a2", 49152, 1))
		s.Volumes["b"] = testVolume("b", Created,
			testBrick("s1", "10.0.0.1", "/b1", 49154, 0))
		return s
	}
	tests := []struct {
		name   string
		bricks []BrickSpec
		ports  []int
	}{
		{"first free port on each server", bricks("10.0.0.1:/n", "10.0.0.2:/n", "10.0.0.3:/n"), []int{49153, 49153, 49152}},
		{"skips used ports on one server", bricks("10.0.0.1:/n1", "10.0.0.1:/n2", "10.0.0.1:/n3"), []int{49153, 49155, 49156}},
		{"same port on different servers", bricks("10.0.0.3:/n", "10.0.0.4:/n", "10.0.0.5:/n"), []int{49152, 49152, 49152}},
		// Bricks listen on their server's host, so two servers sharing a
		// host share its ports.
		{"servers sharing a host do not share ports", bricks("10.0.1.1:24007:/n", "10.0.1.1:24008:/n"), []int{49152, 49153}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _, err := PlanCreate(pool(), CreateRequest{Name: "n", Bricks: tt.bricks}, "id", 1)
			if err != nil {
				t.Fatalf("PlanCreate: %v", err)
			}
			var got []int
			for _, b := range v.Bricks {
				got = append(got, b.Port)
			}
			if !reflect.DeepEqual(got, tt.ports) {
				t.Errorf("ports %v, want %v", got, tt.ports)
			}
		})
	}
}
