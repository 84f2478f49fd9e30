package brick

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"go.uber.org/goleak"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Bricks of this package's tests listen on 127.0.5.x.
func freeAddr(t testing.TB, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type replicaSet struct {
	t      testing.TB
	cfgs   []Config
	bricks []*Brick
	conns  map[string]*grpc.ClientConn
}

func newReplicaSet(t testing.TB, n int) *replicaSet {
	t.Helper()
	return newReplicaSetOn(t, n, nil)
}

// newReplicaSetOn is newReplicaSet with a hook that prepares each brick's
// parent directory (a small file system, say) before the brick is made.
func newReplicaSetOn(t testing.TB, n int, prepare func(dir string)) *replicaSet {
	t.Helper()
	rs := &replicaSet{t: t, conns: map[string]*grpc.ClientConn{}}
	members := map[string]string{}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("b%d", i)
		members[id] = freeAddr(t, fmt.Sprintf("127.0.5.%d", i+1))
	}
	for i := 0; i < n; i++ {
		parent := t.TempDir()
		if prepare != nil {
			prepare(parent)
		}
		dir := filepath.Join(parent, "brick")
		if _, err := Prepare(dir, "vol-1"); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("b%d", i)
		rs.cfgs = append(rs.cfgs, Config{VolumeID: "vol-1", Path: dir, Address: members[id], ID: id, Members: members, NoSync: os.Getenv("BRICK_NOSYNC") != ""})
		rs.bricks = append(rs.bricks, nil)
		rs.start(i)
	}
	t.Cleanup(func() {
		for i := range rs.bricks {
			rs.stop(i)
		}
		for _, c := range rs.conns {
			c.Close()
		}
	})
	return rs
}

func (rs *replicaSet) start(i int) {
	rs.t.Helper()
	b, err := Start(rs.cfgs[i])
	if err != nil {
		rs.t.Fatalf("start brick %d: %v", i, err)
	}
	rs.bricks[i] = b
}

func (rs *replicaSet) stop(i int) {
	if rs.bricks[i] != nil {
		rs.bricks[i].Close()
		rs.bricks[i] = nil
	}
}

func (rs *replicaSet) client(addr string) dfspb.BrickServiceClient {
	c, ok := rs.conns[addr]
	if !ok {
		var err error
		c, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			rs.t.Fatal(err)
		}
		rs.conns[addr] = c
	}
	return dfspb.NewBrickServiceClient(c)
}

// leader finds the running brick that leads, following "dfs-leader"
// trailers from any running brick.
func (rs *replicaSet) leader() (int, dfspb.BrickServiceClient) {
	rs.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, b := range rs.bricks {
			if b == nil {
				continue
			}
			c := rs.client(rs.cfgs[i].Address)
			var trailer metadata.MD
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := c.GetAttr(ctx, &dfspb.GetAttrRequest{Id: layout.RootID[:]}, grpc.Trailer(&trailer))
			cancel()
			if err == nil {
				return i, c
			}
			if status.Code(err) == codes.FailedPrecondition && len(trailer.Get(LeaderTrailer)) > 0 {
				for j, cfg := range rs.cfgs {
					if cfg.Address == trailer.Get(LeaderTrailer)[0] && rs.bricks[j] != nil {
						if _, err := rs.client(cfg.Address).GetAttr(context.Background(), &dfspb.GetAttrRequest{Id: layout.RootID[:]}); err == nil {
							return j, rs.client(cfg.Address)
						}
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	rs.t.Fatal("no leader within 10 s")
	return -1, nil
}

// makeRoot creates the root directory, as a client does on a new volume.
func makeRoot(t testing.TB, c dfspb.BrickServiceClient) {
	t.Helper()
	r, err := c.Mutate(t.Context(), &dfspb.StoreCommand{Op: &dfspb.StoreCommand_CreateInode{CreateInode: &dfspb.CreateInodeCmd{
		Attr: &dfspb.Attr{Id: layout.RootID[:], Type: dfspb.FileType_FILE_TYPE_DIR, Mode: 0o755},
	}}})
	if err != nil || r.Code != 0 {
		t.Fatalf("create root: %v %v", r, err)
	}
}

func create(ctx context.Context, c dfspb.BrickServiceClient, name string) (*dfspb.StoreResult, error) {
	id := layout.NewID()
	return c.Mutate(ctx, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_CreateEntry{CreateEntry: &dfspb.CreateEntryCmd{
		Parent: layout.RootID[:], Name: name, Attr: &dfspb.Attr{Id: id[:], Type: dfspb.FileType_FILE_TYPE_FILE, Mode: 0o644},
	}}})
}

func TestReplicaSetSurvivesLeaderLoss(t *testing.T) {
	rs := newReplicaSet(t, 3)
	ctx := t.Context()
	li, lc := rs.leader()
	makeRoot(t, lc)
	for i := 0; i < 20; i++ {
		r, err := create(ctx, lc, fmt.Sprintf("f%d", i))
		if err != nil || r.Code != dfspb.StoreErrorCode_STORE_ERROR_CODE_OK {
			t.Fatalf("create f%d: %v %v", i, r, err)
		}
	}
	// A follower refuses and names the leader.
	fi := (li + 1) % 3
	var trailer metadata.MD
	_, err := rs.client(rs.cfgs[fi].Address).Lookup(ctx, &dfspb.LookupRequest{Parent: layout.RootID[:], Name: "f0"}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.FailedPrecondition || len(trailer.Get(LeaderTrailer)) == 0 || trailer.Get(LeaderTrailer)[0] != rs.cfgs[li].Address {
		t.Fatalf("follower answered %v with trailer %v; want FailedPrecondition naming %s", err, trailer, rs.cfgs[li].Address)
	}

	rs.stop(li)
	ni, nc := rs.leader()
	if ni == li {
		t.Fatal("stopped brick still leads")
	}
	for i := 0; i < 20; i++ {
		r, err := nc.Lookup(ctx, &dfspb.LookupRequest{Parent: layout.RootID[:], Name: fmt.Sprintf("f%d", i)})
		if err != nil || r.Code != dfspb.StoreErrorCode_STORE_ERROR_CODE_OK {
			t.Fatalf("lookup f%d on the new leader: %v %v", i, r, err)
		}
	}
	if r, err := create(ctx, nc, "after"); err != nil || r.Code != 0 {
		t.Fatalf("create on the new leader: %v %v", r, err)
	}
	// The old leader comes back and catches up from the log.
	rs.start(li)
	eventually(t, func() error {
		if got, want := rs.bricks[li].store.AppliedIndex(), rs.bricks[ni].store.AppliedIndex(); got < want {
			return fmt.Errorf("applied %d < %d", got, want)
		}
		return nil
	})
	d, err := rs.bricks[li].store.Lookup(ctx, layout.RootID, "after")
	if err != nil || d == nil {
		t.Fatalf("returned brick lacks the entry made while it was down: %v", err)
	}
}

func TestCorruptChunkIsRepairedFromAReplica(t *testing.T) {
	rs := newReplicaSet(t, 3)
	ctx := t.Context()
	li, lc := rs.leader()
	file := layout.NewID()
	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	r, err := lc.Mutate(ctx, &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{File: file[:], Index: 2, Data: data}}})
	if err != nil || r.Code != 0 {
		t.Fatalf("write chunk: %v %v", r, err)
	}
	// Corrupt the leader's copy through the store's own chunk path.
	path := rs.bricks[li].store.ChunkPath(file, 2)
	corrupt(t, path, 100<<10)
	got, err := lc.ReadChunk(ctx, &dfspb.ReadChunkRequest{File: file[:], Index: 2, Offset: 0, Length: uint32(len(data))})
	if err != nil || got.Code != 0 {
		t.Fatalf("read of a corrupt chunk: %v %v", got, err)
	}
	if string(got.Data) != string(data) {
		t.Fatal("read returned wrong bytes after corruption")
	}
	if _, err := rs.bricks[li].store.ReadChunk(ctx, file, 2, 0, len(data)); err != nil {
		t.Fatalf("local copy not repaired: %v", err)
	}
}

func eventually(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// corrupt flips one byte of a file in place.
func corrupt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
