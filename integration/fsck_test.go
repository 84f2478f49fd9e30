package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// fsckRun runs `dfs volume fsck VOL --json` and returns the report and
// the exit status.
func fsckRun(t *testing.T, addr, vol string) (*dfspb.VolumeFsckResponse, result) {
	t.Helper()
	r := dfs(t, addr, "--json", "volume", "fsck", vol)
	if r.code != 0 && r.code != 1 {
		t.Fatalf("fsck: exit %d: %s", r.code, r.stderr)
	}
	var resp dfspb.VolumeFsckResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &resp); err != nil {
		t.Fatalf("fsck output %q: %v (stderr %s)", r.stdout, err, r.stderr)
	}
	return &resp, r
}

func findings(ps []*dfspb.FsckProblem) []string {
	var out []string
	for _, p := range ps {
		var id layout.ID
		copy(id[:], p.Id)
		out = append(out, p.Kind+" "+id.String())
	}
	sort.Strings(out)
	return out
}

// volumeLayout fetches vol's layout from a server.
func volumeLayout(t *testing.T, addr, vol string) *layout.Layout {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vl, err := dfspb.NewManagerClient(conn).GetLayout(ctx, &dfspb.GetLayoutRequest{Volume: vol})
	if err != nil {
		t.Fatal(err)
	}
	l := &layout.Layout{VolumeID: vl.VolumeId, Version: vl.Version, Subvolumes: len(vl.Subvolumes)}
	for _, p := range vl.Partitions {
		l.Partitions = append(l.Partitions, int(p))
	}
	return l
}

// leaderMutate applies cmd on the leader of subvolume sv of vol, straight
// through the brick API: what a client that crashed half-way through a
// cross-subvolume operation leaves behind is made of such commands.
func leaderMutate(t *testing.T, c *cluster, vol string, sv int, cmd *dfspb.StoreCommand) *dfspb.StoreResult {
	t.Helper()
	st, err := volumeStatus(t, c.servers[0].addr, vol)
	if err != nil {
		t.Fatal(err)
	}
	var last error
	for _, b := range st.Bricks {
		if int(b.Subvolume) != sv {
			continue
		}
		conn, err := grpc.NewClient(fmt.Sprintf("%s:%d", b.Host, b.Port), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := dfspb.NewBrickServiceClient(conn).Mutate(ctx, cmd)
		cancel()
		conn.Close()
		if err != nil {
			last = err
			continue
		}
		if r.Code != dfspb.StoreErrorCode_STORE_ERROR_CODE_OK {
			t.Fatalf("mutate on subvolume %d: %v %s", sv, r.Code, r.Message)
		}
		return r
	}
	t.Fatalf("no leader of subvolume %d took the command: %v", sv, last)
	return nil
}

// TestFsck: a volume with two subvolumes, filled through a mount with
// every legitimate shape (directories on both subvolumes, large files,
// hard links across directories, a directory moved to another parent, a
// file unlinked while open), is reported clean; then the leftovers of
// interrupted cross-subvolume operations are injected through the brick
// API, and fsck reports each one and exits 1.
func TestFsck(t *testing.T) {
	c := pool(t, 3)
	c.volume(t, "gv0", 2)
	a := c.servers[0].addr
	mnt := mountVolume(t, c, "gv0")
	p := func(parts ...string) string { return filepath.Join(append([]string{mnt}, parts...)...) }
	for i := range 8 {
		d := fmt.Sprintf("d%d", i)
		if err := os.MkdirAll(p(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		for j := range 4 {
			if err := os.WriteFile(p(d, fmt.Sprintf("f%d", j)), []byte(d), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeRandom(t, p("d0", "big"), 5<<20, 1)
	for i := 1; i < 8; i++ {
		if err := os.Link(p("d0", "f0"), p(fmt.Sprintf("d%d", i), "link")); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(p("d0", "big"), p("d5", "big-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p("d1", "sub"), p("d2", "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p("d3", "f1")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("d0/f0", p("sym")); err != nil {
		t.Fatal(err)
	}
	open, err := os.OpenFile(p("d4", "open"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if _, err := open.WriteString("still here"); err != nil {
		t.Fatal(err)
	}
	if err := open.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p("d4", "open")); err != nil {
		t.Fatal(err)
	}

	clean, r := fsckRun(t, a, "gv0")
	if r.code != 0 || len(clean.Problems) != 0 {
		t.Fatalf("fsck of a clean volume: exit %d, problems %v\n%s", r.code, clean.Problems, r.stderr)
	}
	if clean.Subvolumes != 2 || clean.Inodes < 8*2+8*4+3 || clean.Chunks < 5 {
		t.Fatalf("fsck checked too little: %v", clean)
	}
	if got := findings(clean.Notes); len(got) != 1 || !strings.HasPrefix(got[0], "open-orphan ") {
		t.Fatalf("notes of the clean volume: %v, want the file unlinked while open", got)
	}
	if out := must(t, a, "volume", "fsck", "gv0"); !strings.Contains(out, "No problems found.") || !strings.Contains(out, "open-orphan") {
		t.Fatalf("fsck text output:\n%s", out)
	}

	// The leftovers of interrupted operations, each on the subvolume the
	// layout gives it.
	l := volumeLayout(t, a, "gv0")
	root := layout.RootID
	subOf := l.SubvolumeOfDir
	cmd := func(op any) *dfspb.StoreCommand {
		switch o := op.(type) {
		case *dfspb.LinkCmd:
			return &dfspb.StoreCommand{Op: &dfspb.StoreCommand_Link{Link: o}}
		case *dfspb.CreateInodeCmd:
			return &dfspb.StoreCommand{Op: &dfspb.StoreCommand_CreateInode{CreateInode: o}}
		case *dfspb.CreateEntryCmd:
			return &dfspb.StoreCommand{Op: &dfspb.StoreCommand_CreateEntry{CreateEntry: o}}
		case *dfspb.AdjustLinkCmd:
			return &dfspb.StoreCommand{Op: &dfspb.StoreCommand_AdjustLink{AdjustLink: o}}
		case *dfspb.WriteChunkCmd:
			return &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: o}}
		case *dfspb.SealDirCmd:
			return &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SealDir{SealDir: o}}
		}
		t.Fatalf("no command for %T", op)
		return nil
	}
	fileT, dirT := dfspb.FileType_FILE_TYPE_FILE, dfspb.FileType_FILE_TYPE_DIR
	want := map[string]bool{}

	// Dangling entry: a cross-subvolume link whose inode never existed.
	ghost := layout.NewID()
	leaderMutate(t, c, "gv0", subOf(root), cmd(&dfspb.LinkCmd{Parent: root[:], Name: "ghost", Child: ghost[:], ChildType: fileT, Locator: root[:], Exclusive: true}))
	want["dangling-entry "+ghost.String()] = true

	// Orphan inode: a mkdir whose inode was made but whose entry never was.
	lost := layout.NewID()
	leaderMutate(t, c, "gv0", subOf(lost), cmd(&dfspb.CreateInodeCmd{Attr: &dfspb.Attr{Id: lost[:], Type: dirT, Mode: 0o755}}))
	want["orphan-inode "+lost.String()] = true

	// Wrong nlink: a cross-subvolume link that raised the count, then died.
	known := layout.NewID()
	leaderMutate(t, c, "gv0", subOf(root), cmd(&dfspb.CreateEntryCmd{Parent: root[:], Name: "known", Exclusive: true, Attr: &dfspb.Attr{Id: known[:], Type: fileT, Mode: 0o644}}))
	leaderMutate(t, c, "gv0", subOf(root), cmd(&dfspb.AdjustLinkCmd{Id: known[:], Delta: 1}))
	want["wrong-nlink "+known.String()] = true

	// Orphan chunk: the chunks of a removed file were never deleted.
	gone := layout.NewID()
	leaderMutate(t, c, "gv0", l.SubvolumeOfChunk(gone, 0), cmd(&dfspb.WriteChunkCmd{File: gone[:], Index: 0, Data: []byte("left behind")}))
	want["orphan-chunk "+gone.String()] = true

	// Sealed directory: an rmdir that sealed it and stopped.
	sealed := layout.NewID()
	leaderMutate(t, c, "gv0", subOf(sealed), cmd(&dfspb.CreateInodeCmd{Attr: &dfspb.Attr{Id: sealed[:], Type: dirT, Mode: 0o755}}))
	leaderMutate(t, c, "gv0", subOf(root), cmd(&dfspb.LinkCmd{Parent: root[:], Name: "sealed", Child: sealed[:], ChildType: dirT, Locator: sealed[:], Exclusive: true}))
	leaderMutate(t, c, "gv0", subOf(sealed), cmd(&dfspb.SealDirCmd{Dir: sealed[:]}))
	want["sealed-dir "+sealed.String()] = true

	dirty, r := fsckRun(t, a, "gv0")
	got := findings(dirty.Problems)
	var wantList []string
	for k := range want {
		wantList = append(wantList, k)
	}
	sort.Strings(wantList)
	if strings.Join(got, "\n") != strings.Join(wantList, "\n") {
		for _, p := range dirty.Problems {
			t.Logf("%s: %s", p.Kind, p.Detail)
		}
		t.Fatalf("fsck found\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(wantList, "\n  "))
	}
	if r.code != 1 || !strings.Contains(r.stderr, "5 problems found") {
		t.Fatalf("fsck with problems: exit %d, stderr %q", r.code, r.stderr)
	}

	// The file unlinked while open goes at its last close.
	open.Close()
	eventually(t, 10*time.Second, "the open orphan dropped at close", func() error {
		resp, _ := fsckRun(t, a, "gv0")
		if len(resp.Notes) != 0 {
			return fmt.Errorf("notes: %v", findings(resp.Notes))
		}
		return nil
	})
}
