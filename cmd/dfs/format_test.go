package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dfsproject/dfs/proto/dfspb"
)

func render(f func(*strings.Builder)) string {
	var b strings.Builder
	f(&b)
	return b.String()
}

func checkGolden(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n--- got\n%s--- want\n%s", what, got, want)
	}
}

// volumeBricks returns n bricks over three servers in sets subvolumes.
func volumeBricks(n, sets int) []*dfspb.Brick {
	var out []*dfspb.Brick
	for i := 0; i < n; i++ {
		out = append(out, &dfspb.Brick{
			Host:      fmt.Sprintf("server%d", 1+i%3),
			Path:      fmt.Sprintf("/data/brick%d/gv0", 1+i/3),
			Subvolume: uint32(i / (n / sets)),
		})
	}
	return out
}

func TestFormatVolumeInfo(t *testing.T) {
	distRep := &dfspb.Volume{
		Id: "6f2a6c4e-1c1b-4d4e-9a55-0d1d3c2b1a00", Name: "gv0", Type: "Distributed-Replicate",
		ReplicaCount: 3, State: dfspb.VolumeState_VOLUME_STATE_STARTED,
		Bricks:     volumeBricks(6, 2),
		Options:    map[string]string{"network.ping-timeout": "10", "auth.allow": "10.0.0.*"},
		Partitions: 1024, SubvolumeCount: 2, LayoutVersion: 3,
	}
	disperse := &dfspb.Volume{
		Id: "0b9e1f3a-2222-4333-8444-555566667777", Name: "ec", Type: "Disperse",
		DisperseCount: 6, RedundancyCount: 2, State: dfspb.VolumeState_VOLUME_STATE_CREATED,
		Partitions: 256, SubvolumeCount: 1, LayoutVersion: 1,
	}
	for i := 1; i <= 6; i++ {
		disperse.Bricks = append(disperse.Bricks, &dfspb.Brick{Host: fmt.Sprintf("10.0.0.%d:24007", i), Path: "/srv/ec"})
	}
	got := render(func(b *strings.Builder) { formatVolumeInfo(b, []*dfspb.Volume{distRep, disperse}) })
	checkGolden(t, "volume info", got, `
Volume Name: gv0
Type: Distributed-Replicate
Volume ID: 6f2a6c4e-1c1b-4d4e-9a55-0d1d3c2b1a00
Status: Started
Number of Bricks: 2 x 3 = 6
Transport-type: tcp
Partitions: 1024
Layout Version: 3
Bricks:
Brick1: server1:/data/brick1/gv0
Brick2: server2:/data/brick1/gv0
Brick3: server3:/data/brick1/gv0
Brick4: server1:/data/brick2/gv0
Brick5: server2:/data/brick2/gv0
Brick6: server3:/data/brick2/gv0
Options Reconfigured:
auth.allow: 10.0.0.*
network.ping-timeout: 10

Volume Name: ec
Type: Disperse
Volume ID: 0b9e1f3a-2222-4333-8444-555566667777
Status: Created
Number of Bricks: 1 x (4 + 2) = 6
Transport-type: tcp
Partitions: 256
Layout Version: 1
Bricks:
Brick1: 10.0.0.1:24007:/srv/ec
Brick2: 10.0.0.2:24007:/srv/ec
Brick3: 10.0.0.3:24007:/srv/ec
Brick4: 10.0.0.4:24007:/srv/ec
Brick5: 10.0.0.5:24007:/srv/ec
Brick6: 10.0.0.6:24007:/srv/ec
`)
	checkGolden(t, "no volumes", render(func(b *strings.Builder) { formatVolumeInfo(b, nil) }), "No volumes present\n")
}

func TestBrickCount(t *testing.T) {
	tests := []struct {
		v    *dfspb.Volume
		want string
	}{
		{&dfspb.Volume{Bricks: make([]*dfspb.Brick, 3)}, "3"},
		{&dfspb.Volume{ReplicaCount: 3, Bricks: make([]*dfspb.Brick, 3)}, "1 x 3 = 3"},
		{&dfspb.Volume{ReplicaCount: 2, Bricks: make([]*dfspb.Brick, 8)}, "4 x 2 = 8"},
		{&dfspb.Volume{DisperseCount: 3, RedundancyCount: 1, Bricks: make([]*dfspb.Brick, 6)}, "2 x (2 + 1) = 6"},
		{&dfspb.Volume{DisperseCount: 6, RedundancyCount: 2, SubvolumeCount: 1, Bricks: make([]*dfspb.Brick, 6)}, "1 x (4 + 2) = 6"},
	}
	for _, tt := range tests {
		if got := brickCount(tt.v); got != tt.want {
			t.Errorf("brickCount(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestFormatVolumeList(t *testing.T) {
	vols := []*dfspb.Volume{{Name: "gv0"}, {Name: "gv1"}}
	checkGolden(t, "list", render(func(b *strings.Builder) { formatVolumeList(b, vols) }), "gv0\ngv1\n")
	checkGolden(t, "empty list", render(func(b *strings.Builder) { formatVolumeList(b, nil) }), "No volumes present in cluster\n")
}

func statusEntry() *dfspb.VolumeStatusEntry {
	return &dfspb.VolumeStatusEntry{
		Name:  "gv0",
		State: dfspb.VolumeState_VOLUME_STATE_STARTED,
		Bricks: []*dfspb.BrickStatus{
			{Host: "server1", Path: "/data/brick1/gv0", Port: 49152, Online: true, Pid: 4242, FsType: "ext4", Device: "/dev/sdb1",
				TotalBytes: 10 << 30, FreeBytes: 9_900_000_000, TotalInodes: 655360, FreeInodes: 655001},
			{Host: "server2", Path: "/data/brick1/gv0", Port: 49152, Online: true, Pid: 311, FsType: "xfs", Device: "/dev/vdb",
				TotalBytes: 512 << 20, FreeBytes: 1536, TotalInodes: 1000, FreeInodes: 10},
			{Host: "server3", Path: "/data/brick1/gv0", Port: 49152, Online: false, Pid: 99, Error: "server not reachable", Subvolume: 0},
		},
		Subvolumes: []*dfspb.SubvolumeStatus{
			{Index: 0, Members: []string{"server1:/data/brick1/gv0", "server2:/data/brick1/gv0", "server3:/data/brick1/gv0"}, Leader: "server1:/data/brick1/gv0"},
			{Index: 1, Members: []string{"server1:/data/brick2/gv0"}},
		},
	}
}

func TestFormatVolumeStatus(t *testing.T) {
	got := render(func(b *strings.Builder) { formatVolumeStatus(b, statusEntry(), false) })
	checkGolden(t, "status", got, `Status of volume: gv0
Brick                     Port   Online  Pid
-----                     ----   ------  ---
server1:/data/brick1/gv0  49152  Y       4242
server2:/data/brick1/gv0  49152  Y       311
server3:/data/brick1/gv0  N/A    N       N/A

Subvolumes of volume: gv0
Subvolume  Leader                    Members
---------  ------                    -------
0          server1:/data/brick1/gv0  server1:/data/brick1/gv0, server2:/data/brick1/gv0, server3:/data/brick1/gv0
1          N/A                       server1:/data/brick2/gv0
`)
}

func TestFormatVolumeStatusDetail(t *testing.T) {
	e := statusEntry()
	e.Subvolumes = e.Subvolumes[:1]
	got := render(func(b *strings.Builder) { formatVolumeStatus(b, e, true) })
	rule := strings.Repeat("-", 78)
	checkGolden(t, "status detail", got, `Status of volume: gv0
`+rule+`
Brick                : server1:/data/brick1/gv0
Port                 : 49152
Online               : Y
Pid                  : 4242
File System          : ext4
Device               : /dev/sdb1
Disk Space Free      : 9.2GB
Total Disk Space     : 10.0GB
Inode Count          : 655360
Free Inodes          : 655001
`+rule+`
Brick                : server2:/data/brick1/gv0
Port                 : 49152
Online               : Y
Pid                  : 311
File System          : xfs
Device               : /dev/vdb
Disk Space Free      : 1.5KB
Total Disk Space     : 512.0MB
Inode Count          : 1000
Free Inodes          : 10
`+rule+`
Brick                : server3:/data/brick1/gv0
Port                 : N/A
Online               : N
Pid                  : N/A
File System          : -
Device               : -
Disk Space Free      : 0B
Total Disk Space     : 0B
Inode Count          : 0
Free Inodes          : 0
Error                : server not reachable
`+rule+`

Subvolumes of volume: gv0
Subvolume  Leader                    Members
---------  ------                    -------
0          server1:/data/brick1/gv0  server1:/data/brick1/gv0, server2:/data/brick1/gv0, server3:/data/brick1/gv0
`)
}

func TestFormatVolumeGet(t *testing.T) {
	opts := []*dfspb.VolumeOption{
		{Key: "auth.allow", Value: "10.0.0.*", Default: "*", Set: true},
		{Key: "features.read-only", Value: "off", Default: "off"},
		{Key: "network.ping-timeout", Default: "5"},
	}
	got := render(func(b *strings.Builder) { formatVolumeGet(b, opts) })
	checkGolden(t, "volume get", got, `Option                Value
------                -----
auth.allow            10.0.0.*
features.read-only    off (DEFAULT)
network.ping-timeout  5 (DEFAULT)
`)
}

func peerList() *dfspb.PeerListResponse {
	return &dfspb.PeerListResponse{
		LeaderId: "aaaa",
		Peers: []*dfspb.Peer{
			{Id: "aaaa", Address: "server1:24007", Voter: true, Connected: true},
			{Id: "bbbb", Address: "server2:24007", Voter: true, Connected: false},
			{Id: "cccc", Address: "server4:24007", Voter: false, Connected: true},
		},
	}
}

func TestFormatPeerStatus(t *testing.T) {
	got := render(func(b *strings.Builder) { formatPeerStatus(b, peerList(), "bbbb") })
	checkGolden(t, "peer status", got, `Number of Peers: 2

Hostname: server1:24007
Uuid: aaaa
State: Peer in Cluster (Connected)
Role: voter (manager leader)

Hostname: server4:24007
Uuid: cccc
State: Peer in Cluster (Connected)
Role: non-voter
`)
	all := render(func(b *strings.Builder) { formatPeerStatus(b, peerList(), "") })
	if !strings.HasPrefix(all, "Number of Peers: 3\n") {
		t.Errorf("peer status without self:\n%s", all)
	}
}

func TestFormatPoolList(t *testing.T) {
	got := render(func(b *strings.Builder) { formatPoolList(b, peerList(), "aaaa") })
	checkGolden(t, "pool list", got, `UUID  Hostname                     State         Role
aaaa  server1:24007 (this server)  Connected     voter (leader)
bbbb  server2:24007                Disconnected  voter
cccc  server4:24007                Connected     non-voter
`)
}

func TestSelfPeer(t *testing.T) {
	peers := peerList().GetPeers()
	tests := []struct{ identity, dialled, want string }{
		{"cccc", "server1:24007", "cccc"},
		{"", "server2:24007", "bbbb"},
		{"zzzz", "server2:24007", "bbbb"},
		{"", "127.0.0.1:24007", ""},
	}
	for _, tt := range tests {
		if got := selfPeer(peers, tt.identity, tt.dialled); got != tt.want {
			t.Errorf("selfPeer(%q, %q) = %q, want %q", tt.identity, tt.dialled, got, tt.want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0B"},
		{1023, "1023B"},
		{1024, "1.0KB"},
		{1536, "1.5KB"},
		{1<<20 - 1, "1.0MB"},
		{10 << 30, "10.0GB"},
		{3 << 40, "3.0TB"},
		{1 << 62, "4.0EB"},
	}
	for _, tt := range tests {
		if got := humanSize(tt.n); got != tt.want {
			t.Errorf("humanSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
