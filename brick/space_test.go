package brick

import (
	"os/exec"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// mountTmpfs mounts a small tmpfs at dir for the test.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// TestFullBrickRefusesWritesAndRecovers: a replica set on small file
// systems answers NO_SPACE once its reserve is reached, keeps everything
// it acknowledged, and writes again once space is freed.
func TestFullBrickRefusesWritesAndRecovers(t *testing.T) {
	rs := newReplicaSetOn(t, 3, func(dir string) { mountTmpfs(t, dir, "160m") })
	ctx := t.Context()
	data := make([]byte, 1<<20)
	var written []layout.ID
	for i := 0; ; i++ {
		if i > 200 {
			t.Fatal("160 MiB bricks took 200 MiB of chunks without NO_SPACE")
		}
		for j := range data {
			data[j] = byte(i + j)
		}
		f := layout.NewID()
		r, err := rs.mutate(&dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{File: f[:], Data: data}}})
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if r.Code == dfspb.StoreErrorCode_STORE_ERROR_CODE_NO_SPACE {
			t.Logf("NO_SPACE after %d MiB: %s", i, r.Message)
			break
		}
		if r.Code != 0 {
			t.Fatalf("write %d: %v", i, r)
		}
		written = append(written, f)
	}
	if len(written) == 0 {
		t.Fatal("no write succeeded before NO_SPACE")
	}
	for i, f := range written {
		_, lc := rs.leader()
		got, err := lc.ReadChunk(ctx, &dfspb.ReadChunkRequest{File: f[:], Length: 1 << 20})
		if err != nil || got.Code != 0 || len(got.Data) != 1<<20 || got.Data[1] != byte(i+1) {
			t.Fatalf("acknowledged chunk %d after NO_SPACE: %v %v", i, got.GetCode(), err)
		}
	}
	// Removing data works on a full brick and makes room again.
	for _, f := range written[:len(written)/2] {
		r, err := rs.mutate(&dfspb.StoreCommand{Op: &dfspb.StoreCommand_DeleteChunks{DeleteChunks: &dfspb.DeleteChunksCmd{File: f[:]}}})
		if err != nil || r.Code != 0 {
			t.Fatalf("delete on a full brick: %v %v", r, err)
		}
	}
	f := layout.NewID()
	eventually(t, func() error {
		r, err := rs.mutate(&dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{File: f[:], Data: data[:4096]}}})
		if err != nil {
			return err
		}
		if r.Code != 0 {
			return resultErr(r)
		}
		return nil
	})
}

// mutate sends cmd to the leader, finding it again through elections
// (the commands used here are idempotent, so a retry is harmless).
func (rs *replicaSet) mutate(cmd *dfspb.StoreCommand) (*dfspb.StoreResult, error) {
	var err error
	for range 20 {
		_, lc := rs.leader()
		var r *dfspb.StoreResult
		r, err = lc.Mutate(rs.t.Context(), cmd)
		// Aborted: leadership lost with the write in flight; these
		// commands are idempotent, so retry as the client does.
		if c := status.Code(err); c != codes.FailedPrecondition && c != codes.Unavailable && c != codes.Aborted {
			return r, err
		}
	}
	return nil, err
}

type resultError struct{ r *dfspb.StoreResult }

func (e resultError) Error() string { return e.r.Code.String() + ": " + e.r.Message }

func resultErr(r *dfspb.StoreResult) error { return resultError{r} }
