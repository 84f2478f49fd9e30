package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// pool makes a cluster of n servers and probes them all from the first.
func pool(t *testing.T, n int) *cluster {
	t.Helper()
	c := newCluster(t, n)
	first := c.servers[0].addr
	for _, s := range c.servers[1:] {
		out := must(t, first, "peer", "probe", s.host)
		if !strings.Contains(out, "success") {
			t.Fatalf("peer probe %s: %q", s.host, out)
		}
	}
	var pl dfspb.PeerListResponse
	eventually(t, 10*time.Second, "all peers connected", func() error {
		if err := jsonInto(t, first, &pl, "pool", "list"); err != nil {
			return err
		}
		if len(pl.Peers) != n {
			return fmt.Errorf("%d peers, want %d", len(pl.Peers), n)
		}
		for _, p := range pl.Peers {
			if !p.Connected {
				return fmt.Errorf("peer %s disconnected", p.Address)
			}
		}
		return nil
	})
	return c
}

// bricks returns one brick argument per server, under root.
func (c *cluster) bricks(root, name string) []string {
	var out []string
	for _, s := range c.servers {
		out = append(out, s.host+":"+filepath.Join(root, s.host, name))
	}
	return out
}

func volumeStatus(t *testing.T, addr, vol string) (*dfspb.VolumeStatusEntry, error) {
	var st dfspb.VolumeStatusResponse
	if err := jsonInto(t, addr, &st, "volume", "status", vol); err != nil {
		return nil, err
	}
	if len(st.Volumes) != 1 {
		return nil, fmt.Errorf("status has %d volumes", len(st.Volumes))
	}
	return st.Volumes[0], nil
}

// awaitBricks waits until the bricks on the listed hosts are online and
// all others offline.
func awaitBricks(t *testing.T, addr, vol string, limit time.Duration, online map[string]bool) {
	t.Helper()
	eventually(t, limit, "brick states of "+vol, func() error {
		st, err := volumeStatus(t, addr, vol)
		if err != nil {
			return err
		}
		for _, b := range st.Bricks {
			if b.Online != online[b.Host] {
				return fmt.Errorf("brick %s:%s online=%v, want %v", b.Host, b.Path, b.Online, online[b.Host])
			}
			if b.Online && (b.Port == 0 || b.Pid == 0) {
				return fmt.Errorf("brick %s:%s online without port or pid", b.Host, b.Path)
			}
		}
		return nil
	})
}

func (c *cluster) hosts(except ...string) map[string]bool {
	m := map[string]bool{}
	for _, s := range c.servers {
		m[s.host] = true
	}
	for _, e := range except {
		delete(m, e)
	}
	return m
}

func TestReplica3Lifecycle(t *testing.T) {
	c := pool(t, 3)
	a := c.servers[1].addr // any server answers
	root := t.TempDir()
	must(t, a, append([]string{"volume", "create", "gv0", "replica", "3"}, c.bricks(root, "gv0")...)...)

	var info dfspb.VolumeInfoResponse
	if err := jsonInto(t, c.servers[2].addr, &info, "volume", "info", "gv0"); err != nil {
		t.Fatal(err)
	}
	v := info.Volumes[0]
	if v.Type != "Replicate" || v.ReplicaCount != 3 || len(v.Bricks) != 3 || v.State != dfspb.VolumeState_VOLUME_STATE_CREATED {
		t.Fatalf("volume info after create: %v", v)
	}
	for i := 0; i < 2; i++ {
		must(t, a, "volume", "start", "gv0")
		awaitBricks(t, a, "gv0", 10*time.Second, c.hosts())
		must(t, a, "volume", "stop", "gv0")
		awaitBricks(t, a, "gv0", 10*time.Second, nil)
	}
	if r := dfs(t, a, "volume", "stop", "gv0"); r.code == 0 || !strings.Contains(r.stderr, "not started") {
		t.Errorf("stopping a stopped volume: exit %d, stderr %q", r.code, r.stderr)
	}
	must(t, a, "volume", "delete", "gv0")
	out := must(t, a, "volume", "list")
	if strings.Contains(out, "gv0") {
		t.Fatalf("volume list after delete: %q", out)
	}
	for _, s := range c.servers {
		if _, err := os.Stat(filepath.Join(root, s.host, "gv0", ".dfs")); !os.IsNotExist(err) {
			t.Errorf("brick on %s keeps dfs metadata after delete: %v", s.host, err)
		}
	}
	// The same directories can make a new volume.
	must(t, a, append([]string{"volume", "create", "gv1", "replica", "3"}, c.bricks(root, "gv0")...)...)
}

// leaderOf returns the server that leads the manager group.
func leaderOf(t *testing.T, c *cluster, ask string) *server {
	t.Helper()
	var found *server
	eventually(t, 10*time.Second, "a manager leader", func() error {
		var pl dfspb.PeerListResponse
		if err := jsonInto(t, ask, &pl, "pool", "list"); err != nil {
			return err
		}
		for _, p := range pl.Peers {
			if p.Leader {
				for _, s := range c.servers {
					if s.addr == p.Address {
						found = s
						return nil
					}
				}
			}
		}
		return fmt.Errorf("no leader in %v", pl.Peers)
	})
	return found
}

func TestManagerLeaderKilled(t *testing.T) {
	c := pool(t, 3)
	root := t.TempDir()
	a := c.servers[0].addr
	must(t, a, append([]string{"volume", "create", "gv0", "replica", "3"}, c.bricks(root, "gv0")...)...)
	must(t, a, "volume", "set", "gv0", "network.ping-timeout", "7")
	must(t, a, "volume", "start", "gv0")
	awaitBricks(t, a, "gv0", 10*time.Second, c.hosts())
	var before dfspb.VolumeInfoResponse
	if err := jsonInto(t, a, &before, "volume", "info", "all"); err != nil {
		t.Fatal(err)
	}

	leader := leaderOf(t, c, a)
	var other *server
	for _, s := range c.servers {
		if s != leader {
			other = s
			break
		}
	}
	killed := time.Now()
	leader.kill()
	// Within 10 s the CLI works through the others and shows the dead
	// server's bricks offline.
	awaitBricks(t, other.addr, "gv0", 10*time.Second, c.hosts(leader.host))
	t.Logf("bricks of the killed leader shown offline %.1f s after kill -9", time.Since(killed).Seconds())
	must(t, other.addr, "volume", "set", "gv0", "performance.cache-size", "64MB")

	leader.start()
	leader.awaitUp()
	awaitBricks(t, leader.addr, "gv0", 20*time.Second, c.hosts())
	var after dfspb.VolumeInfoResponse
	eventually(t, 10*time.Second, "restarted server sees the change made while it was down", func() error {
		if err := jsonInto(t, leader.addr, &after, "volume", "info", "all"); err != nil {
			return err
		}
		if after.Volumes[0].Options["performance.cache-size"] != "64MB" {
			return fmt.Errorf("options %v", after.Volumes[0].Options)
		}
		return nil
	})
	delete(after.Volumes[0].Options, "performance.cache-size")
	after.Volumes[0].LayoutVersion = before.Volumes[0].LayoutVersion
	if !proto.Equal(&before, &after) {
		t.Errorf("volume info changed across the leader's death:\nbefore %v\nafter  %v", &before, &after)
	}
}

func TestAllServersRestarted(t *testing.T) {
	c := pool(t, 3)
	root := t.TempDir()
	a := c.servers[0].addr
	must(t, a, append([]string{"volume", "create", "gv0", "replica", "3"}, c.bricks(root, "gv0")...)...)
	must(t, a, "volume", "start", "gv0")
	must(t, a, append([]string{"volume", "create", "gv1", "replica", "3"}, c.bricks(root, "gv1")...)...)
	var pools, vols [2]proto.Message
	pools[0], vols[0] = &dfspb.PeerListResponse{}, &dfspb.VolumeInfoResponse{}
	pools[1], vols[1] = &dfspb.PeerListResponse{}, &dfspb.VolumeInfoResponse{}
	if err := jsonInto(t, a, vols[0], "volume", "info"); err != nil {
		t.Fatal(err)
	}
	if err := jsonInto(t, a, pools[0], "pool", "list"); err != nil {
		t.Fatal(err)
	}
	for _, s := range c.servers {
		s.stop()
	}
	for _, s := range c.servers {
		s.start()
	}
	for _, s := range c.servers {
		s.awaitUp()
	}
	awaitBricks(t, a, "gv0", 20*time.Second, c.hosts())
	if err := jsonInto(t, c.servers[2].addr, vols[1], "volume", "info"); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(vols[0], vols[1]) {
		t.Errorf("volumes changed across a restart of every server:\nbefore %v\nafter  %v", vols[0], vols[1])
	}
	eventually(t, 10*time.Second, "pool intact", func() error {
		if err := jsonInto(t, a, pools[1], "pool", "list"); err != nil {
			return err
		}
		p0, p1 := pools[0].(*dfspb.PeerListResponse), pools[1].(*dfspb.PeerListResponse)
		if p0.PoolId != p1.PoolId || len(p0.Peers) != len(p1.Peers) {
			return fmt.Errorf("pool before %v, after %v", p0, p1)
		}
		for i := range p0.Peers {
			if p0.Peers[i].Id != p1.Peers[i].Id || p0.Peers[i].Address != p1.Peers[i].Address || !p1.Peers[i].Connected {
				return fmt.Errorf("peer %d before %v, after %v", i, p0.Peers[i], p1.Peers[i])
			}
		}
		return nil
	})
}
