package integration

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStartForceRestartsDeadBrick: a brick that could not start (its
// directory was missing when its server came back) stays offline while the
// rest of the volume serves; once the directory is back, `volume start VOL
// force` starts it, and it catches up.
func TestStartForceRestartsDeadBrick(t *testing.T) {
	c := pool(t, 3)
	c.volume(t, "gv0", 1)
	a := c.servers[0].addr
	mnt := mountVolume(t, c, "gv0")
	before := writeRandom(t, filepath.Join(mnt, "before"), 200<<10, 1)

	down := c.servers[2]
	st, err := volumeStatus(t, a, "gv0")
	if err != nil {
		t.Fatal(err)
	}
	var path string
	for _, b := range st.Bricks {
		if b.Host == down.host {
			path = b.Path
		}
	}
	if path == "" {
		t.Fatalf("no brick of %s in %v", down.host, st.Bricks)
	}
	down.kill()
	if err := os.Rename(path, path+".away"); err != nil {
		t.Fatal(err)
	}
	down.start()
	down.awaitUp()
	awaitBricks(t, a, "gv0", 20*time.Second, c.hosts(down.host))
	during := writeRandom(t, filepath.Join(mnt, "during"), 300<<10, 2)

	if err := os.Rename(path+".away", path); err != nil {
		t.Fatal(err)
	}
	if out := must(t, a, "volume", "start", "gv0", "force"); out != "volume start: gv0: success\n" {
		t.Fatalf("volume start force: %q", out)
	}
	awaitBricks(t, a, "gv0", 20*time.Second, c.hosts())
	awaitHealed(t, a, "gv0", 30*time.Second)

	// The restarted brick holds everything: with another server gone, the
	// majority that serves includes it.
	c.servers[0].kill()
	mnt2 := mountVolumeVia(t, c.servers[1], "gv0")
	for name, want := range map[string][32]byte{"before": before, "during": during} {
		if got := sha(t, filepath.Join(mnt2, name)); got != want {
			t.Errorf("%s differs after the brick was restarted by start force", name)
		}
	}
}
