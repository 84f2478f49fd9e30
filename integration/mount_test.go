package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// volume creates and starts a replica 3 volume over the cluster's servers
// (one brick per server per set), with sets subvolumes.
func (c *cluster) volume(t *testing.T, name string, sets int) {
	t.Helper()
	root := t.TempDir()
	args := []string{"volume", "create", name, "replica", "3"}
	for i := 0; i < sets; i++ {
		args = append(args, c.bricks(root, fmt.Sprintf("%s-%d", name, i))...)
	}
	must(t, c.servers[0].addr, args...)
	must(t, c.servers[0].addr, "volume", "start", name)
	awaitBricks(t, c.servers[0].addr, name, 20*time.Second, c.hosts())
}

// mountVolume mounts vol at a new directory with `dfs mount` and
// unmounts it when the test ends.
func mountVolume(t *testing.T, c *cluster, vol string) string {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(t.TempDir(), "client.log")
	r := dfs(t, c.servers[0].addr, "mount", "-o", "log-file="+log, c.servers[0].host+":/"+vol, dir)
	if r.code != 0 {
		b, _ := os.ReadFile(log)
		t.Fatalf("dfs mount: exit %d: %s\nclient log:\n%s", r.code, r.stderr, b)
	}
	if !isMounted(t, dir) {
		t.Fatalf("dfs mount returned but %s is not mounted", dir)
	}
	t.Cleanup(func() {
		unmount(t, dir)
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("---- client log of %s ----\n%s", dir, tail(string(b), 60))
		}
	})
	return dir
}

func unmount(t *testing.T, dir string) {
	t.Helper()
	if !isMounted(t, dir) {
		return
	}
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		t.Errorf("umount %s: %v: %s", dir, err, out)
		exec.Command("umount", "-l", dir).Run()
	}
}

func isMounted(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && fields[1] == dir {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func sha(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// writeRandom writes size random bytes (from seed) to path and returns
// their hash.
func writeRandom(t *testing.T, path string, size int64, seed int64) [32]byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	w := io.MultiWriter(f, h)
	if _, err := io.CopyN(w, rand.New(rand.NewSource(seed)), size); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", path, err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// dropCaches makes the next reads go to the bricks, not the page cache.
func dropCaches(t *testing.T) {
	t.Helper()
	exec.Command("sync").Run()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200); err != nil {
		t.Logf("cannot drop caches: %v", err)
	}
}

func TestMountRoundTrip(t *testing.T) {
	c := pool(t, 3)
	c.volume(t, "gv0", 1)
	mnt := mountVolume(t, c, "gv0")

	want := map[string][32]byte{}
	want["big"] = writeRandom(t, filepath.Join(mnt, "big"), 200<<20, 1)
	for d := 0; d < 20; d++ {
		dir := filepath.Join(mnt, fmt.Sprintf("d%02d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			name := filepath.Join(fmt.Sprintf("d%02d", d), fmt.Sprintf("f%03d", i))
			want[name] = writeRandom(t, filepath.Join(mnt, name), int64(1+(d*100+i)*37%20000), int64(d*100+i))
		}
	}
	unmount(t, mnt)

	mnt2 := mountVolume(t, c, "gv0")
	for name, h := range want {
		if got := sha(t, filepath.Join(mnt2, name)); got != h {
			t.Errorf("%s: content differs after remount", name)
		}
	}
	entries, err := os.ReadDir(mnt2)
	if err != nil || len(entries) != 21 {
		t.Errorf("root lists %d entries (%v), want 21", len(entries), err)
	}
}

func TestTwoMounts(t *testing.T) {
	c := pool(t, 3)
	c.volume(t, "gv0", 1)
	a, b := mountVolume(t, c, "gv0"), mountVolume(t, c, "gv0")
	for i, size := range []int64{0, 1, 4096, 65536, 65537, 3<<20 + 5} {
		name := fmt.Sprintf("file%d", i)
		h := writeRandom(t, filepath.Join(a, name), size, int64(i))
		if got := sha(t, filepath.Join(b, name)); got != h {
			t.Errorf("%s (%d bytes) written on one mount reads differently on the other", name, size)
		}
	}
	// Changes made on one mount show on the other after the cache timeout.
	if err := os.Rename(filepath.Join(a, "file1"), filepath.Join(a, "renamed")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "rename visible on the other mount", func() error {
		_, err := os.Stat(filepath.Join(b, "renamed"))
		return err
	})
}

func TestSourceTreeCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("copies 11k files; skipped with -short")
	}
	c := pool(t, 3)
	c.volume(t, "gv0", 1)
	mnt := mountVolume(t, c, "gv0")
	src := "/usr/local/go/src"
	start := time.Now()
	if out, err := exec.Command("cp", "-a", src, filepath.Join(mnt, "src")).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, tail(string(out), 20))
	}
	t.Logf("copied %s in %.1f s", src, time.Since(start).Seconds())
	dropCaches(t)
	if out, err := exec.Command("diff", "-r", "--no-dereference", src, filepath.Join(mnt, "src")).CombinedOutput(); err != nil {
		t.Fatalf("diff -r: %v: %s", err, tail(string(out), 30))
	}
}

func TestDistributeReplicate(t *testing.T) {
	c := pool(t, 3)
	c.volume(t, "gv0", 2)
	mnt := mountVolume(t, c, "gv0")
	var names []string
	for d := 0; d < 16; d++ {
		dir := fmt.Sprintf("dir%02d", d)
		if err := os.Mkdir(filepath.Join(mnt, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 50; i++ {
			name := filepath.Join(dir, fmt.Sprintf("f%02d", i))
			names = append(names, name)
			if err := os.WriteFile(filepath.Join(mnt, name), []byte(name), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	big := writeRandom(t, filepath.Join(mnt, "big"), 16<<20, 7)
	for d := 0; d < 16; d++ {
		entries, err := os.ReadDir(filepath.Join(mnt, fmt.Sprintf("dir%02d", d)))
		if err != nil || len(entries) != 50 {
			t.Errorf("dir%02d lists %d entries (%v), want 50", d, len(entries), err)
		}
	}
	dropCaches(t)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || string(b) != name {
			t.Errorf("%s: %q %v", name, b, err)
		}
	}
	if sha(t, filepath.Join(mnt, "big")) != big {
		t.Errorf("big file differs")
	}
	// Both subvolumes hold data (chunks of the striped big file) and
	// metadata (their stores grew past an empty one).
	for sv := 0; sv < 2; sv++ {
		for _, s := range c.servers {
			brick := brickDir(t, c, "gv0", s.host, sv)
			chunks := len(chunkFiles(t, brick))
			if chunks == 0 {
				t.Errorf("brick %s of subvolume %d holds no chunk", brick, sv)
			}
		}
	}
}

// brickDir finds the directory of the brick of vol on host in subvolume sv.
func brickDir(t *testing.T, c *cluster, vol, host string, sv int) string {
	t.Helper()
	st, err := volumeStatus(t, c.servers[0].addr, vol)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range st.Bricks {
		if b.Host == host && int(b.Subvolume) == sv {
			return b.Path
		}
	}
	t.Fatalf("no brick of %s on %s in subvolume %d", vol, host, sv)
	return ""
}

// chunkFiles lists the chunk files of a brick: the files in the store's
// chunks directory (BRICK/.dfs/store/gen-N/chunks/xx/FILE.INDEX).
func chunkFiles(t *testing.T, brick string) []string {
	var out []string
	filepath.Walk(filepath.Join(brick, ".dfs", "store"), func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && filepath.Base(filepath.Dir(filepath.Dir(p))) == "chunks" {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestCorruptChunkRepaired flips a byte of a chunk file on the brick that
// serves reads (the replica set's leader): the read must still return the
// right bytes, from another replica, and the chunk is repaired on disk.
func TestCorruptChunkRepaired(t *testing.T) {
	c := pool(t, 3)
	c.volume(t, "gv0", 1)
	mnt := mountVolume(t, c, "gv0")
	h := writeRandom(t, filepath.Join(mnt, "data"), 3<<20, 3)

	var leader string
	eventually(t, 10*time.Second, "status names the replica set's leader", func() error {
		st, err := volumeStatus(t, c.servers[0].addr, "gv0")
		if err != nil {
			return err
		}
		if leader = st.Subvolumes[0].Leader; leader == "" {
			return fmt.Errorf("no leader in status %v", st)
		}
		return nil
	})
	_, path, _ := strings.Cut(leader, ":")
	var victim string
	for _, p := range chunkFiles(t, path) {
		if info, err := os.Stat(p); err == nil && info.Size() > 1000 {
			victim = p
			break
		}
	}
	if victim == "" {
		t.Fatalf("no chunk file in brick %s", path)
	}
	orig, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(orig)
	bad[len(bad)/2] ^= 0xff
	if err := os.WriteFile(victim, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	dropCaches(t)
	if got := sha(t, filepath.Join(mnt, "data")); got != h {
		t.Fatalf("read after corrupting %s returned wrong bytes", victim)
	}
	eventually(t, 5*time.Second, "chunk repaired on disk", func() error {
		now, err := os.ReadFile(victim)
		if err != nil {
			// Repair may write a new file under the same name.
			return err
		}
		if !bytes.Equal(now, orig) {
			return fmt.Errorf("chunk file %s still differs from the original", victim)
		}
		return nil
	})
}

func TestMountHelper(t *testing.T) {
	const helper = "/sbin/mount.dfs"
	if _, err := os.Lstat(helper); os.IsNotExist(err) {
		if err := os.Symlink(*dfsBinary, helper); err != nil {
			t.Skipf("cannot install %s for the test: %v", helper, err)
		}
		t.Cleanup(func() { os.Remove(helper) })
	}
	c := pool(t, 3)
	c.volume(t, "gv0", 1)
	dir := t.TempDir()
	log := filepath.Join(t.TempDir(), "client.log")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mount", "-t", "dfs", c.servers[1].host+":/gv0", dir, "-o", "_netdev,log-file="+log).CombinedOutput()
	if err != nil {
		b, _ := os.ReadFile(log)
		t.Fatalf("mount -t dfs: %v: %s\n%s", err, out, b)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	if isMounted(t, dir) {
		t.Fatal("still mounted after umount")
	}

	for _, tc := range []struct{ source, want string }{
		{c.servers[0].host + ":/nosuchvol", "nosuchvol"},
		{"127.0.0.99:/gv0", "127.0.0.99"},
	} {
		out, err := exec.CommandContext(ctx, "mount", "-t", "dfs", tc.source, dir).CombinedOutput()
		if err == nil {
			t.Errorf("mount -t dfs %s succeeded", tc.source)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("mount -t dfs %s said %q; want it to name %q", tc.source, out, tc.want)
		}
		if isMounted(t, dir) {
			t.Errorf("mount -t dfs %s left a mount behind", tc.source)
			unmount(t, dir)
		}
	}
}
