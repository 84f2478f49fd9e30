package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dfsproject/dfs/proto/dfspb"
)

func healInfo(t *testing.T, addr, vol string) (*dfspb.VolumeHealResponse, error) {
	var h dfspb.VolumeHealResponse
	err := jsonInto(t, addr, &h, "volume", "heal", vol, "info")
	return &h, err
}

// awaitHealed waits until every brick of vol is online with nothing
// pending.
func awaitHealed(t *testing.T, addr, vol string, limit time.Duration) {
	t.Helper()
	eventually(t, limit, "all bricks healed", func() error {
		h, err := healInfo(t, addr, vol)
		if err != nil {
			return err
		}
		for _, b := range h.Bricks {
			if !b.Online || b.Pending != 0 {
				return fmt.Errorf("brick %s:%s online=%v pending=%d", b.Host, b.Path, b.Online, b.Pending)
			}
		}
		return nil
	})
}

// TestReturningBrickHeals: a server down while files are written catches
// up by itself when it returns, and heal info shows it.
func TestReturningBrickHeals(t *testing.T) {
	c := pool(t, 3)
	c.volume(t, "gv0", 1)
	a := c.servers[0].addr
	mnt := mountVolume(t, c, "gv0")
	down := c.servers[2]
	down.kill()
	want := map[string][32]byte{}
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("f%02d", i)
		want[name] = writeRandom(t, filepath.Join(mnt, name), int64(i*50000), int64(i))
	}
	eventually(t, 10*time.Second, "heal info shows the killed server's brick not connected", func() error {
		h, err := healInfo(t, a, "gv0")
		if err != nil {
			return err
		}
		for _, b := range h.Bricks {
			if b.Host == down.host && b.Online {
				return fmt.Errorf("brick of the killed server shown online: %v", b)
			}
		}
		return nil
	})
	down.start()
	down.awaitUp()
	start := time.Now()
	awaitHealed(t, a, "gv0", 30*time.Second)
	t.Logf("returning brick healed %.1f s after its server was up", time.Since(start).Seconds())

	// With another server gone, the set still has a majority that includes
	// the healed brick: everything reads back.
	c.servers[0].kill()
	mnt2 := mountVolumeVia(t, c.servers[1], "gv0")
	for name, h := range want {
		if got := sha(t, filepath.Join(mnt2, name)); got != h {
			t.Errorf("%s differs after heal", name)
		}
	}
}

// TestReplaceDeadBrick replaces the brick of a dead server by a new one on
// a fourth server; the data reaches it.
func TestReplaceDeadBrick(t *testing.T) {
	c := pool(t, 4)
	root := t.TempDir()
	bricks := c.bricks(root, "gv0")[:3]
	a := c.servers[0].addr
	must(t, a, append([]string{"volume", "create", "gv0", "replica", "3"}, bricks...)...)
	must(t, a, "volume", "start", "gv0")
	mnt := mountVolume(t, c, "gv0")
	want := map[string][32]byte{}
	for i := 0; i < 30; i++ {
		name := fmt.Sprintf("f%02d", i)
		want[name] = writeRandom(t, filepath.Join(mnt, name), int64(i*100000), int64(i))
	}
	dead := c.servers[2]
	dead.kill()
	for i := 30; i < 40; i++ {
		name := fmt.Sprintf("f%02d", i)
		want[name] = writeRandom(t, filepath.Join(mnt, name), int64(i*1000), int64(i))
	}
	newBrick := c.servers[3].host + ":" + filepath.Join(root, "new", "gv0")
	out := must(t, a, "volume", "replace-brick", "gv0", bricks[2], newBrick, "commit", "force")
	if !strings.Contains(out, "success") {
		t.Fatalf("replace-brick: %q", out)
	}
	var info dfspb.VolumeInfoResponse
	if err := jsonInto(t, a, &info, "volume", "info", "gv0"); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range info.Volumes[0].Bricks {
		names = append(names, b.Host+":"+b.Path)
	}
	if strings.Join(names, " ") != strings.Join(append(bricks[:2:2], newBrick), " ") {
		t.Fatalf("bricks after replace: %v", names)
	}
	start := time.Now()
	awaitHealed(t, a, "gv0", 60*time.Second)
	t.Logf("new brick healed in %.1f s", time.Since(start).Seconds())

	// Lose one of the original bricks: the set is now the other original
	// and the new brick, which must hold everything.
	c.servers[0].kill()
	mnt2 := mountVolumeVia(t, c.servers[1], "gv0")
	for name, h := range want {
		if got := sha(t, filepath.Join(mnt2, name)); got != h {
			t.Errorf("%s differs when read from the new brick's replica set", name)
		}
	}
	if err := os.WriteFile(filepath.Join(mnt2, "after"), []byte("x"), 0o644); err != nil {
		t.Errorf("write with the new brick in the majority: %v", err)
	}
}

// TestHealFullRepairsFollower: a chunk corrupted on a follower (which
// reads never touch) is found and repaired by heal full's scrub.
func TestHealFullRepairsFollower(t *testing.T) {
	c := pool(t, 3)
	c.volume(t, "gv0", 1)
	a := c.servers[0].addr
	mnt := mountVolume(t, c, "gv0")
	writeRandom(t, filepath.Join(mnt, "data"), 2<<20, 9)
	awaitHealed(t, a, "gv0", 10*time.Second)
	var follower, leader string
	eventually(t, 10*time.Second, "status shows the leader and a follower", func() error {
		st, err := volumeStatus(t, a, "gv0")
		if err != nil {
			return err
		}
		follower, leader = "", ""
		for _, b := range st.Bricks {
			switch b.Role {
			case "Follower":
				follower = b.Path
			case "Leader":
				leader = b.Path
			}
		}
		if follower == "" || leader == "" {
			return fmt.Errorf("no leader and follower in status %v", st)
		}
		return nil
	})
	files := chunkFiles(t, follower)
	if len(files) == 0 {
		t.Fatalf("no chunks on follower %s", follower)
	}
	// The follower may still be fetching a chunk whose staged bytes it
	// missed (its push came after the entry): start from the bytes the
	// leader holds, once the follower holds them too.
	rel, err := filepath.Rel(follower, files[0])
	if err != nil {
		t.Fatal(err)
	}
	var orig []byte
	eventually(t, 10*time.Second, "the follower's chunk matches the leader's", func() error {
		want, err := os.ReadFile(filepath.Join(leader, rel))
		if err != nil {
			return err
		}
		got, err := os.ReadFile(files[0])
		if err != nil || string(got) != string(want) {
			return fmt.Errorf("%s differs from the leader's (%v)", files[0], err)
		}
		orig = want
		return nil
	})
	bad := append([]byte(nil), orig...)
	bad[len(bad)/3] ^= 0x55
	if err := os.WriteFile(files[0], bad, 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, a, "volume", "heal", "gv0", "full")
	eventually(t, 20*time.Second, "scrub repaired the follower's chunk", func() error {
		h, err := healInfo(t, a, "gv0")
		if err != nil {
			return err
		}
		for _, b := range h.Bricks {
			if b.Path == follower {
				// At least the chunk corrupted here; a follower that applied
				// a staged write before its push arrived has had blocks
				// marked bad for a fetch as well, which the scrub may
				// count and repair too.
				if s := b.Scrub; s == nil || s.Running || s.Corrupt < 1 || s.Repaired != s.Corrupt {
					return fmt.Errorf("scrub of %s: %v", follower, s)
				}
			}
		}
		now, _ := os.ReadFile(files[0])
		if string(now) != string(orig) {
			return fmt.Errorf("chunk file still differs")
		}
		return nil
	})
}

// mountVolumeVia mounts vol fetching the layout from server s.
func mountVolumeVia(t *testing.T, s *server, vol string) string {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(t.TempDir(), "client.log")
	r := dfs(t, s.addr, "mount", "-o", "log-file="+log, s.host+":/"+vol, dir)
	if r.code != 0 {
		b, _ := os.ReadFile(log)
		t.Fatalf("dfs mount via %s: exit %d: %s\n%s", s.host, r.code, r.stderr, tail(string(b), 40))
	}
	t.Cleanup(func() { unmount(t, dir) })
	return dir
}
