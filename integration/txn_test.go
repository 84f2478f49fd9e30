package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// TestTxnAcrossSubvolumesLeaderKilled: on a 2 x 3 volume, workers move
// files between directories (renames across subvolumes), give them second
// names in other directories (links), and make and remove directories
// whose inodes land on the other subvolume (rmdir), while the server that
// leads subvolume 0 (the coordinator of many of these transactions) is
// killed with kill -9 and restarted, then the leader of subvolume 1, then
// of subvolume 0 again (the workers run from before the first kill to
// after the last restart). Afterwards every file is
// reachable under exactly one of its two names, its link count is exactly
// the number of names it has, and fsck finds nothing.
func TestTxnAcrossSubvolumesLeaderKilled(t *testing.T) {
	// Four servers: the bricks on the last three, the mount through the
	// first, which is never killed. (A mount whose layout watch reconnects
	// to a server restarted a moment ago may be told the volume does not
	// exist, before that server has replayed the pool's log, and then
	// fails every call: a control-plane bug outside this test's subject.)
	c := pool(t, 4)
	root := t.TempDir()
	args := []string{"volume", "create", "gv0", "replica", "3"}
	for set := range 2 {
		for _, s := range c.servers[1:] {
			args = append(args, s.host+":"+filepath.Join(root, s.host, fmt.Sprintf("gv0-%d", set)))
		}
	}
	must(t, c.servers[0].addr, args...)
	must(t, c.servers[0].addr, "volume", "start", "gv0")
	awaitBricks(t, c.servers[0].addr, "gv0", 20*time.Second, c.hosts())
	mnt := mountVolume(t, c, "gv0")
	const dirs, files = 6, 24
	dir := func(i int) string { return filepath.Join(mnt, fmt.Sprintf("d%d", i%dirs)) }
	for i := range dirs {
		if err := os.Mkdir(dir(i), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range files {
		if err := os.WriteFile(filepath.Join(dir(i), fmt.Sprintf("f%d", i)), []byte(fmt.Sprintf("file %d", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The two names file i moves between, and the directory its second
	// name goes in.
	names := func(i int) [2]string {
		return [2]string{filepath.Join(dir(i), fmt.Sprintf("f%d", i)), filepath.Join(dir(i+1), fmt.Sprintf("f%d", i))}
	}
	linkName := func(i int) string { return filepath.Join(dir(i+3), fmt.Sprintf("l%d", i)) }

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []string
		opsRun int
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	stop := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for r := 0; ; r++ {
				select {
				case <-stop:
					return
				default:
				}
				for i := w; i < files; i += 4 {
					n := names(i)
					from, to := n[0], n[1]
					if _, err := os.Lstat(from); err != nil {
						from, to = to, from
					}
					switch rng.IntN(3) {
					case 0:
						if err := os.Rename(from, to); err != nil {
							fail("rename %s -> %s: %v", from, to, err)
						}
					case 1:
						l := linkName(i)
						if _, err := os.Lstat(l); err == nil {
							if err := os.Remove(l); err != nil {
								fail("unlink %s: %v", l, err)
							}
						} else if err := os.Link(from, l); err != nil {
							fail("link %s -> %s: %v", from, l, err)
						}
					case 2:
						sub := filepath.Join(dir(i+2), fmt.Sprintf("sub%d-%d", i, r))
						if err := os.Mkdir(sub, 0o755); err != nil {
							fail("mkdir %s: %v", sub, err)
						} else if err := os.Remove(sub); err != nil {
							fail("rmdir %s: %v", sub, err)
						}
					}
					mu.Lock()
					opsRun++
					mu.Unlock()
				}
			}
		})
	}

	// Kill the leader of subvolume 0 (which coordinates the operations
	// whose source or parent is there), then of subvolume 1, then of 0
	// again, while the workers run.
	for k, sv := range []int{0, 1, 0} {
		time.Sleep(time.Second)
		leader := subvolumeLeaderOf(t, c, c.servers[0].addr, "gv0", sv, nil)
		ask := c.servers[0].addr
		leader.kill()
		t.Logf("kill %d: killed %s, which led subvolume %d", k+1, leader.host, sv)
		next := subvolumeLeaderOf(t, c, ask, "gv0", sv, leader)
		t.Logf("%s leads subvolume %d now", next.host, sv)
		time.Sleep(2 * time.Second)
		leader.start()
		leader.awaitUp()
	}
	time.Sleep(time.Second)
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("workers did not stop within 2 minutes")
	}
	recovered := 0
	for _, s := range c.servers {
		b, _ := os.ReadFile(s.logPath)
		recovered += strings.Count(string(b), "recovering a transaction across subvolumes")
	}
	t.Logf("transactions finished by a new leader: %d", recovered)
	mu.Lock()
	t.Logf("%d operations, %d failed", opsRun, len(errs))
	for _, e := range errs {
		t.Errorf("operation failed: %s", e)
	}
	mu.Unlock()

	// Every file under exactly one of its two names, with exact nlink.
	for i := range files {
		var found []string
		var inos []uint64
		n := names(i)
		for _, p := range []string{n[0], n[1], linkName(i)} {
			fi, err := os.Lstat(p)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				t.Fatalf("stat %s: %v", p, err)
			}
			found = append(found, p)
			st := fi.Sys().(*syscall.Stat_t)
			inos = append(inos, st.Ino)
			if p != linkName(i) {
				data, err := os.ReadFile(p)
				if err != nil || string(data) != fmt.Sprintf("file %d", i) {
					t.Errorf("%s reads %q, %v", p, data, err)
				}
			}
		}
		_, err0 := os.Lstat(names(i)[0])
		_, err1 := os.Lstat(names(i)[1])
		if (err0 == nil) == (err1 == nil) {
			t.Errorf("file %d: names %v; want exactly one of %v", i, found, names(i))
			continue
		}
		for _, ino := range inos[1:] {
			if ino != inos[0] {
				t.Errorf("file %d: names %v lead to different inodes %v", i, found, inos)
			}
		}
		fi, _ := os.Lstat(found[0])
		if nl := fi.Sys().(*syscall.Stat_t).Nlink; int(nl) != len(found) {
			t.Errorf("file %d: nlink %d, names %v", i, nl, found)
		}
	}

	// fsck: clean once the transactions the kills interrupted are done.
	var last []string
	eventually(t, 60*time.Second, "fsck reports no problem", func() error {
		resp, r := fsckRun(t, c.servers[0].addr, "gv0")
		if r.code == 0 && len(resp.Problems) == 0 {
			return nil
		}
		last = findings(resp.Problems)
		return fmt.Errorf("fsck exit %d: %v", r.code, last)
	})
	resp, _ := fsckRun(t, c.servers[0].addr, "gv0")
	for _, n := range resp.Notes {
		if n.Kind == "transaction" {
			t.Errorf("transaction still in progress after the run: %s", n.Detail)
		}
	}
}

// subvolumeLeaderOf returns the server hosting the online leader brick of
// subvolume sv of vol, asking server ask, other than server not.
func subvolumeLeaderOf(t *testing.T, c *cluster, ask, vol string, sv int, not *server) *server {
	t.Helper()
	var leader *server
	eventually(t, 20*time.Second, fmt.Sprintf("a leader of subvolume %d", sv), func() error {
		st, err := volumeStatus(t, ask, vol)
		if err != nil {
			return err
		}
		for _, b := range st.Bricks {
			if int(b.Subvolume) == sv && b.Online && strings.EqualFold(b.Role, "leader") {
				for _, s := range c.servers {
					if s.host == b.Host && s != not {
						leader = s
						return nil
					}
				}
			}
		}
		return fmt.Errorf("no brick of subvolume %d reports the leader role: %v", sv, st.Bricks)
	})
	return leader
}

// TestTxnFsckShowsUnfinished: a transaction whose other subvolume cannot
// be reached (its step names a brick address nobody listens on) stays
// unfinished; `dfs volume fsck` lists it as a note (a problem once older
// than a minute, which brick/store's tests cover), and nothing else is
// wrong: the entry it holds is untouched.
func TestTxnFsckShowsUnfinished(t *testing.T) {
	c := pool(t, 3)
	c.volume(t, "gv0", 2)
	mnt := mountVolume(t, c, "gv0")
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := volumeLayout(t, c.servers[0].addr, "gv0")
	sv := l.SubvolumeOfDir(layout.RootID)
	// The file's id, from the coordinator's store.
	lk := leaderCall(t, c, "gv0", sv, func(ctx context.Context, b dfspb.BrickServiceClient) error {
		_, err := b.Lookup(ctx, &dfspb.LookupRequest{Parent: layout.RootID[:], Name: "f"})
		return err
	})
	r, err := lk.Lookup(context.Background(), &dfspb.LookupRequest{Parent: layout.RootID[:], Name: "f"})
	if err != nil || r.Code != 0 {
		t.Fatalf("lookup f: %v %v", r, err)
	}
	id, other := layout.NewID(), layout.NewID()
	in := &dfspb.TxnIntent{
		TxnId: id[:], Op: dfspb.TxnOp_TXN_OP_RENAME, Subvolume: uint32(sv), Summary: "rename to an unreachable subvolume",
		Locks: []*dfspb.TxnEntryLock{{Parent: layout.RootID[:], Name: "f", ExpectChild: r.Dirent.Id}},
		Prepare: []*dfspb.TxnStep{{Subvolume: uint32(1 - sv), Bricks: []string{*loopNet + ".250:9"}, Cmd: &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Link{Link: &dfspb.LinkCmd{
			Parent: other[:], Name: "f", Child: r.Dirent.Id, ChildType: dfspb.FileType_FILE_TYPE_FILE, Locator: layout.RootID[:],
		}}}}},
		Commit: &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Unlink{Unlink: &dfspb.UnlinkCmd{
			Parent: layout.RootID[:], Name: "f", KeepInode: true, ExpectChild: r.Dirent.Id,
		}}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err = lk.RunTxn(ctx, &dfspb.RunTxnRequest{Intent: in})
	cancel()
	if err == nil {
		t.Fatal("a transaction with an unreachable step finished")
	}
	resp, res := fsckRun(t, c.servers[0].addr, "gv0")
	if res.code != 0 || len(resp.Problems) != 0 {
		t.Fatalf("fsck: exit %d, problems %v", res.code, findings(resp.Problems))
	}
	var notes []string
	for _, n := range resp.Notes {
		notes = append(notes, n.Kind+": "+n.Detail)
	}
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "transaction: ") || !strings.Contains(notes[0], "unreachable subvolume") {
		t.Fatalf("fsck notes %v, want the unfinished transaction", notes)
	}
	if out := must(t, c.servers[0].addr, "volume", "fsck", "gv0"); !strings.Contains(out, "transaction") {
		t.Fatalf("fsck text output does not show the transaction:\n%s", out)
	}
	if data, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || string(data) != "data" {
		t.Fatalf("held file reads %q, %v", data, err)
	}
}

// leaderCall returns a BrickService client of the leader of subvolume sv
// of vol: the first brick on which probe succeeds.
func leaderCall(t *testing.T, c *cluster, vol string, sv int, probe func(context.Context, dfspb.BrickServiceClient) error) dfspb.BrickServiceClient {
	t.Helper()
	var found dfspb.BrickServiceClient
	eventually(t, 20*time.Second, fmt.Sprintf("the leader of subvolume %d", sv), func() error {
		st, err := volumeStatus(t, c.servers[0].addr, vol)
		if err != nil {
			return err
		}
		for _, b := range st.Bricks {
			if int(b.Subvolume) != sv || !b.Online {
				continue
			}
			conn, err := grpc.NewClient(fmt.Sprintf("%s:%d", b.Host, b.Port), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			cl := dfspb.NewBrickServiceClient(conn)
			err = probe(ctx, cl)
			cancel()
			if err == nil {
				found = cl
				t.Cleanup(func() { conn.Close() })
				return nil
			}
			conn.Close()
		}
		return fmt.Errorf("no brick of subvolume %d answers as leader", sv)
	})
	return found
}
