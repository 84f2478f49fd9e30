package brick

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/dfsproject/dfs/brick/store"
	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/pkg/raftgroup"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// LeaderTrailer is the gRPC trailer in which a brick that is not its
// subvolume's leader names the leader's host:port.
const LeaderTrailer = "dfs-leader"

// fetchWait bounds how long FetchChunk waits to catch up with the asker.
const fetchWait = 2 * time.Second

// defaultReadDirLimit bounds one ReadDir page when the caller gives none.
const defaultReadDirLimit = 1024

type service struct {
	dfspb.UnimplementedBrickServiceServer
	b *Brick
}

var _ dfspb.BrickServiceServer = (*service)(nil)

// rpcError turns a Raft or transport failure into a gRPC status; not-leader
// errors carry the leader in the trailer.
func (b *Brick) rpcError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, raftgroup.ErrNotLeader):
		if _, addr := b.group.Leader(); addr != "" && addr != b.cfg.Address {
			grpc.SetTrailer(ctx, metadata.Pairs(LeaderTrailer, addr))
		}
		return status.Errorf(codes.FailedPrecondition, "brick %s is not the leader of its replica set", b.cfg.Address)
	case errors.Is(err, raftgroup.ErrUnknownOutcome):
		// Aborted is ambiguous to the client: the entry may still commit.
		if _, addr := b.group.Leader(); addr != "" && addr != b.cfg.Address {
			grpc.SetTrailer(ctx, metadata.Pairs(LeaderTrailer, addr))
		}
		return status.Errorf(codes.Aborted, "brick %s: %v", b.cfg.Address, err)
	case errors.Is(err, raftgroup.ErrNoLeader), errors.Is(err, raftgroup.ErrClosed):
		return status.Errorf(codes.Unavailable, "brick %s: %v", b.cfg.Address, err)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Errorf(codes.Internal, "brick %s: %v", b.cfg.Address, err)
}

// ready fails unless this brick leads and may serve reads.
func (s *service) ready(ctx context.Context) error {
	if err := s.b.group.LeaderReady(ctx); err != nil {
		return s.b.rpcError(ctx, err)
	}
	return nil
}

func idOf(b []byte) (layout.ID, error) {
	var id layout.ID
	if len(b) != len(id) {
		return id, status.Errorf(codes.InvalidArgument, "id of %d bytes; ids have %d", len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

func (s *service) Ping(context.Context, *dfspb.BrickPingRequest) (*dfspb.BrickPingResponse, error) {
	return &dfspb.BrickPingResponse{VolumeId: s.b.cfg.VolumeID, Path: s.b.cfg.Path}, nil
}

func (s *service) Mutate(ctx context.Context, cmd *dfspb.StoreCommand) (*dfspb.StoreResult, error) {
	if cmd.GetOp() == nil {
		return nil, status.Error(codes.InvalidArgument, "store command without an operation")
	}
	if !s.b.group.IsLeader() {
		return nil, s.b.rpcError(ctx, raftgroup.ErrNotLeader)
	}
	if needsSpace(cmd) {
		if err := s.b.writeSpace(); err != nil {
			return storeFailure(err), nil
		}
	}
	if err := checkClientWrite(cmd); err != nil {
		return nil, err
	}
	if err := s.b.txnMutate(ctx, cmd); err != nil {
		return nil, err
	}
	if sl := cmd.GetSetLock(); sl != nil {
		if c := s.b.awaitLockFree(ctx, sl); c != nil { // lockwait.go
			return &dfspb.StoreResult{Conflict: c}, nil
		}
	}
	cmd.NowNs = nowNs()
	if r := cmd.GetRename(); len(r.GetSealedTarget()) > 0 && !s.b.membersAt(ctx, versionSealedTarget) {
		// A member's binary would not check it: all must apply alike.
		r.SealedTarget = nil
	}
	if w := cmd.GetWriteExtents(); w != nil && !s.b.membersAt(ctx, versionChunkWrites) {
		// A member's binary predates WriteExtentsCmd: one entry per
		// extent, as such clients sent them.
		var res *dfspb.StoreResult
		for _, c := range splitExtents(w, cmd.NowNs) {
			var err error
			if res, err = s.b.commitCmd(ctx, c); err != nil || res.GetCode() != 0 {
				return res, err
			}
		}
		return res, nil
	}
	if wc := s.b.stageable(ctx, cmd); wc != nil && s.b.membersAt(ctx, versionChunkWrites) {
		return s.b.mutateStaged(ctx, cmd, wc) // stage.go
	}
	return s.b.commitCmd(ctx, cmd)
}

// commitCmd commits cmd through the Raft group and returns the store's
// answer.
func (b *Brick) commitCmd(ctx context.Context, cmd *dfspb.StoreCommand) (*dfspb.StoreResult, error) {
	data, err := store.EncodeCommand(cmd)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "encode command: %v", err)
	}
	// A call whose caller gave up before it got here (it sat in a socket
	// buffer, say) is not proposed: the client has retried it already.
	if err := ctx.Err(); err != nil {
		return nil, b.rpcError(ctx, err)
	}
	// The caller's cancellation (a FUSE interrupt, say) must not abandon
	// a proposal halfway: Apply waits for the outcome either way.
	resp, err := b.group.Apply(ctx, data)
	if err != nil {
		return nil, b.rpcError(ctx, err)
	}
	res, ok := resp.(*dfspb.StoreResult)
	if !ok {
		return nil, status.Errorf(codes.Internal, "store answered %T", resp)
	}
	return res, nil
}

func (s *service) GetAttr(ctx context.Context, req *dfspb.GetAttrRequest) (*dfspb.StoreResult, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	id, err := idOf(req.Id)
	if err != nil {
		return nil, err
	}
	if req.WithData {
		attr, data, ok, err := s.b.store.GetAttrData(ctx, id)
		if err != nil {
			return storeFailure(err), nil
		}
		return &dfspb.StoreResult{Attr: attr, Data: data, HasData: ok}, nil
	}
	attr, err := s.b.store.GetAttr(ctx, id)
	if err != nil {
		return storeFailure(err), nil
	}
	return &dfspb.StoreResult{Attr: attr}, nil
}

func (s *service) Lookup(ctx context.Context, req *dfspb.LookupRequest) (*dfspb.StoreResult, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	parent, err := idOf(req.Parent)
	if err != nil {
		return nil, err
	}
	d, err := s.b.store.Lookup(ctx, parent, req.Name)
	if err != nil {
		return storeFailure(err), nil
	}
	return &dfspb.StoreResult{Dirent: d, Attr: d.GetAttr()}, nil
}

func (s *service) ReadDir(ctx context.Context, req *dfspb.ReadDirRequest) (*dfspb.ReadDirResponse, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	dir, err := idOf(req.Dir)
	if err != nil {
		return nil, err
	}
	limit := int(req.Limit)
	if limit <= 0 || limit > defaultReadDirLimit {
		limit = defaultReadDirLimit
	}
	entries, eof, err := s.b.store.ReadDir(ctx, dir, req.After, limit)
	if err != nil {
		r := storeFailure(err)
		return &dfspb.ReadDirResponse{Code: r.Code, Message: r.Message}, nil
	}
	return &dfspb.ReadDirResponse{Entries: entries, Eof: eof}, nil
}

func (s *service) ReadInline(ctx context.Context, req *dfspb.ReadInlineRequest) (*dfspb.ReadResponse, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	id, err := idOf(req.Id)
	if err != nil {
		return nil, err
	}
	data, err := s.b.store.ReadInline(ctx, id, int64(req.Offset), int(req.Length))
	if err != nil {
		r := storeFailure(err)
		return &dfspb.ReadResponse{Code: r.Code, Message: r.Message}, nil
	}
	return &dfspb.ReadResponse{Data: data}, nil
}

func (s *service) ReadChunk(ctx context.Context, req *dfspb.ReadChunkRequest) (*dfspb.ReadResponse, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	file, err := idOf(req.File)
	if err != nil {
		return nil, err
	}
	if req.Length > maxMessage/2 {
		return nil, status.Errorf(codes.InvalidArgument, "read of %d bytes; at most %d per call", req.Length, maxMessage/2)
	}
	data, err := s.b.store.ReadChunk(ctx, file, req.Index, int64(req.Offset), int(req.Length))
	if errors.Is(err, store.ErrCorrupt) {
		s.b.cfg.Logger.Warn("chunk failed its checksum; repairing from another replica", "file", file, "chunk", req.Index, "err", err)
		if rerr := s.b.repairChunk(ctx, file, req.Index); rerr != nil {
			s.b.cfg.Logger.Error("chunk repair failed", "file", file, "chunk", req.Index, "err", rerr)
		} else {
			data, err = s.b.store.ReadChunk(ctx, file, req.Index, int64(req.Offset), int(req.Length))
		}
	}
	if err != nil {
		r := storeFailure(err)
		return &dfspb.ReadResponse{Code: r.Code, Message: r.Message}, nil
	}
	return &dfspb.ReadResponse{Data: data}, nil
}

// repairChunk rewrites the local copy of a chunk from the first other
// member whose copy verifies against the local index record.
func (b *Brick) repairChunk(ctx context.Context, file layout.ID, index uint64) error {
	info, err := b.store.ChunkInfo(ctx, file, index)
	if err != nil {
		return err
	}
	var last error = errors.New("no other member")
	// The Raft configuration is the current membership (replace-brick
	// changes it while the brick runs).
	members, err := b.group.Members()
	if err != nil {
		return err
	}
	for _, m := range members {
		id, addr := m.ID, m.Address
		if id == b.cfg.ID {
			continue
		}
		c, err := b.peer(addr)
		if err != nil {
			last = err
			continue
		}
		resp, err := c.FetchChunk(ctx, &dfspb.FetchChunkRequest{File: file[:], Index: index, MinApplied: info.Version})
		if err == nil && resp.Code != dfspb.StoreErrorCode_STORE_ERROR_CODE_OK {
			err = fmt.Errorf("%s: %s", resp.Code, resp.Message)
		}
		if err != nil {
			last = fmt.Errorf("member %s: %w", addr, err)
			continue
		}
		if err := b.store.RepairChunk(ctx, file, index, resp.Data); err != nil {
			last = fmt.Errorf("copy from %s: %w", addr, err)
			continue
		}
		b.cfg.Logger.Info("chunk repaired", "file", file, "chunk", index, "from", addr)
		return nil
	}
	return last
}

func (s *service) FetchChunk(ctx context.Context, req *dfspb.FetchChunkRequest) (*dfspb.FetchChunkResponse, error) {
	file, err := idOf(req.File)
	if err != nil {
		return nil, err
	}
	// A follower applies committed entries a moment after the leader.
	deadline := time.Now().Add(fetchWait)
	for s.b.store.AppliedIndex() < req.MinApplied && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	info, err := s.b.store.ChunkInfo(ctx, file, req.Index)
	if err == nil {
		var data []byte
		data, err = s.b.store.ReadChunk(ctx, file, req.Index, 0, int(info.Length))
		if err == nil {
			return &dfspb.FetchChunkResponse{Info: info, Data: data}, nil
		}
	}
	r := storeFailure(err)
	return &dfspb.FetchChunkResponse{Code: r.Code, Message: r.Message}, nil
}

func (s *service) GetXattr(ctx context.Context, req *dfspb.GetXattrRequest) (*dfspb.XattrResponse, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	id, err := idOf(req.Id)
	if err != nil {
		return nil, err
	}
	v, err := s.b.store.GetXattr(ctx, id, req.Name)
	if err != nil {
		r := storeFailure(err)
		return &dfspb.XattrResponse{Code: r.Code, Message: r.Message}, nil
	}
	return &dfspb.XattrResponse{Value: v}, nil
}

func (s *service) ListXattr(ctx context.Context, req *dfspb.GetAttrRequest) (*dfspb.XattrResponse, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	id, err := idOf(req.Id)
	if err != nil {
		return nil, err
	}
	names, err := s.b.store.ListXattr(ctx, id)
	if err != nil {
		r := storeFailure(err)
		return &dfspb.XattrResponse{Code: r.Code, Message: r.Message}, nil
	}
	return &dfspb.XattrResponse{Names: names}, nil
}

func (s *service) Statfs(ctx context.Context, _ *dfspb.StatfsRequest) (*dfspb.StatfsResponse, error) {
	u, err := s.b.DiskUsage()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &dfspb.StatfsResponse{TotalBytes: u.TotalBytes, FreeBytes: u.FreeBytes, AvailBytes: u.AvailBytes, TotalInodes: u.TotalInodes, FreeInodes: u.FreeInodes}, nil
}

func (s *service) Status(ctx context.Context, _ *dfspb.BrickStatusRequest) (*dfspb.BrickStatusResponse, error) {
	leaderID, leaderAddr := s.b.group.Leader()
	role, _ := s.b.Role()
	return &dfspb.BrickStatusResponse{
		BrickId:       s.b.cfg.ID,
		Role:          role,
		LeaderAddress: leaderAddr,
		LeaderId:      leaderID,
		AppliedIndex:  s.b.store.AppliedIndex(),
		Term:          s.b.group.Term(),
		StoreVersion:  StoreVersion,
	}, nil
}

// storeFailure turns a store error into a result with its code.
func storeFailure(err error) *dfspb.StoreResult {
	return &dfspb.StoreResult{Code: dfspb.StoreErrorCode(store.Code(err)), Message: err.Error()}
}

func (s *service) ChangeMembers(ctx context.Context, req *dfspb.ChangeMembersRequest) (*dfspb.ChangeMembersResponse, error) {
	if !s.b.group.IsLeader() {
		return nil, s.b.rpcError(ctx, raftgroup.ErrNotLeader)
	}
	if req.RemoveId == s.b.cfg.ID {
		// A leader that removes itself hands over first; the caller
		// retries on the new leader.
		if err := s.b.group.TransferLeadership(); err != nil {
			return nil, s.b.rpcError(ctx, err)
		}
		return nil, s.b.rpcError(ctx, raftgroup.ErrNotLeader)
	}
	if req.RemoveId != "" {
		if err := s.b.group.RemoveMember(req.RemoveId); err != nil {
			return nil, s.b.rpcError(ctx, err)
		}
		s.b.cfg.Logger.Info("replica set member removed", "id", req.RemoveId)
	}
	if req.AddId != "" {
		// A member that applies fewer store commands than this leader may
		// propose would diverge; one that does not answer yet is let in
		// (membersAt asks again before newer commands are proposed).
		if v := s.b.memberVersion(ctx, req.AddAddress); v != 0 && v < StoreVersion {
			return nil, status.Errorf(codes.FailedPrecondition, "brick %s runs an older dfs (store version %d, this replica set's leader %d); upgrade its server first", req.AddAddress, v, StoreVersion)
		}
		if err := s.b.group.AddMember(req.AddId, req.AddAddress, true); err != nil {
			return nil, s.b.rpcError(ctx, err)
		}
		s.b.cfg.Logger.Info("replica set member added", "id", req.AddId, "address", req.AddAddress)
	}
	return &dfspb.ChangeMembersResponse{}, nil
}

func (s *service) Scrub(ctx context.Context, _ *dfspb.ScrubRequest) (*dfspb.ScrubResponse, error) {
	return &dfspb.ScrubResponse{Status: s.b.StartScrub()}, nil
}

// needsSpace tells the commands that make a brick hold more; the others
// (removals, renames, attribute changes) must work on a full brick, so
// that space can be freed.
func needsSpace(cmd *dfspb.StoreCommand) bool {
	switch cmd.GetOp().(type) {
	case *dfspb.StoreCommand_CreateEntry, *dfspb.StoreCommand_CreateInode, *dfspb.StoreCommand_Link,
		*dfspb.StoreCommand_WriteInline, *dfspb.StoreCommand_WriteChunk, *dfspb.StoreCommand_SetXattr,
		*dfspb.StoreCommand_AppendReserve, *dfspb.StoreCommand_WriteExtents:
		return true
	}
	return false
}
