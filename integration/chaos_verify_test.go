package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/brick/store"
	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// verifyResult is what the end-of-run checks found.
type verifyResult struct {
	checked, deletedChecked int
	readBack                time.Duration
	lost                    []string
	resurrected             []string
	replicaDiffs            []string
	replicaSummary          string
}

// verify reads every acknowledged file back through a fresh mount, checks
// that deleted files stay deleted, then stops the volume and compares the
// replicas' stores.
func (r *chaosRun) verify() *verifyResult {
	t := r.t
	v := &verifyResult{}
	w := r.w
	mnt := r.mount("client-verify.log")
	start := time.Now()
	w.mu.Lock()
	recs := append([]*fileRec(nil), w.list...)
	var deleted []string
	for p := range w.deleted {
		deleted = append(deleted, p)
	}
	w.mu.Unlock()
	sort.Slice(recs, func(i, j int) bool { return recs[i].rel < recs[j].rel })
	for _, rec := range recs {
		v.checked++
		f, err := os.Open(filepath.Join(mnt, rec.rel))
		if err != nil {
			v.lost = append(v.lost, fmt.Sprintf("%s (%d bytes, acknowledged at %.1fs): %s", rec.rel, rec.size, rec.acked.Sub(r.start).Seconds(), errnoOf(err)))
			continue
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		switch {
		case err != nil:
			v.lost = append(v.lost, fmt.Sprintf("%s (%d bytes): read: %s", rec.rel, rec.size, errnoOf(err)))
		case sumOf(h) != rec.sum:
			v.lost = append(v.lost, fmt.Sprintf("%s: %d bytes read, %d acknowledged at %.1fs: content differs", rec.rel, n, rec.size, rec.acked.Sub(r.start).Seconds()))
		}
	}
	for _, p := range deleted {
		v.deletedChecked++
		if _, err := os.Lstat(filepath.Join(mnt, p)); !errors.Is(err, os.ErrNotExist) {
			v.resurrected = append(v.resurrected, fmt.Sprintf("%s: lstat says %v", p, err))
		}
	}
	v.readBack = time.Since(start)
	unmount(t, mnt)

	bricks := r.bricks()
	// Leaders also propose on their own (lock lease expiry, the purge of
	// finished transactions once a minute): let the followers apply those
	// too, so that the stores compared after the stop are at one index.
	r.awaitReplicasCaughtUp(time.Minute)
	must(t, r.c.servers[0].addr, "volume", "stop", r.vol, "--yes")
	awaitBricks(t, r.c.servers[0].addr, r.vol, 30*time.Second, nil)
	var notes []string
	// A server that has not closed a stopped brick within 30 s is stuck:
	// SIGQUIT makes it dump its goroutines into its log (and exit).
	stuck := func(host string) {
		for _, s := range r.c.servers {
			if s.host == host && s.cmd != nil && s.cmd.Process != nil {
				_ = s.cmd.Process.Signal(syscall.SIGQUIT)
			}
		}
	}
	v.replicaDiffs, v.replicaSummary, notes = compareReplicas(bricks, stuck)
	for _, n := range notes {
		r.note("%s", n)
	}
	return v
}

// replicaSet is the stores of one subvolume's bricks, opened offline.
type replicaSet struct {
	sv     int
	names  []string
	paths  []string
	stores []*store.Store
}

// compareReplicas opens every brick's store (the volume is stopped) and
// compares the replicas of each subvolume: applied index, counts, the
// namespace walked from the root (entries, attributes, inline data,
// xattrs, chunk records), the chunk files on disk, and a scrub of every
// chunk against its checksums.
func compareReplicas(bricks []brickRef, stuck func(host string)) (diffs []string, summary string, notes []string) {
	ctx := context.Background()
	sets := map[int]*replicaSet{}
	var order []int
	for _, b := range bricks {
		rs := sets[b.sv]
		if rs == nil {
			rs = &replicaSet{sv: b.sv}
			sets[b.sv] = rs
			order = append(order, b.sv)
		}
		cfg := store.DefaultConfig()
		cfg.Dir = filepath.Join(b.path, ".dfs", "store")
		// `volume stop` returns, and status shows the brick offline,
		// before the server has closed the brick's store: wait for its
		// Pebble lock.
		var s *store.Store
		var err error
		waitStart := time.Now()
		quit := time.Now().Add(30 * time.Second)
		for deadline := time.Now().Add(60 * time.Second); ; {
			s, err = store.Open(cfg)
			if err == nil || !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
				break
			}
			if !quit.IsZero() && time.Now().After(quit) {
				stuck(b.host)
				quit = time.Time{}
				diffs = append(diffs, fmt.Sprintf("server %s still held the store of %s 30 s after volume stop; SIGQUIT sent (goroutine dump in its log)", b.host, b.path))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			return []string{fmt.Sprintf("open store of %s:%s (after %.1fs): %v", b.host, b.path, time.Since(waitStart).Seconds(), err)}, "not compared", notes
		}
		if wait := time.Since(waitStart); wait > time.Second {
			notes = append(notes, fmt.Sprintf("store of %s:%s still locked by its server %.1fs after volume stop showed it offline", b.host, b.path, wait.Seconds()))
		}
		defer s.Close()
		rs.names = append(rs.names, b.host+":"+b.path)
		rs.paths = append(rs.paths, b.path)
		rs.stores = append(rs.stores, s)
	}
	sort.Ints(order)
	diff := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }

	var sums []string
	for _, sv := range order {
		rs := sets[sv]
		var applied []string
		for i, s := range rs.stores {
			st, err := s.Statfs(ctx)
			if err != nil {
				diff("subvolume %d %s: statfs: %v", sv, rs.names[i], err)
				continue
			}
			applied = append(applied, fmt.Sprint(st.AppliedIndex))
			if i > 0 {
				st0, _ := rs.stores[0].Statfs(ctx)
				if st.AppliedIndex != st0.AppliedIndex || st.Inodes != st0.Inodes || st.Chunks != st0.Chunks || st.ChunkBytes != st0.ChunkBytes {
					diff("subvolume %d: %s applied %d, %d inodes, %d chunks, %d chunk bytes; %s applied %d, %d inodes, %d chunks, %d chunk bytes",
						sv, rs.names[0], st0.AppliedIndex, st0.Inodes, st0.Chunks, st0.ChunkBytes, rs.names[i], st.AppliedIndex, st.Inodes, st.Chunks, st.ChunkBytes)
				}
			}
			if i == 0 {
				sums = append(sums, fmt.Sprintf("subvolume %d: %d inodes, %d chunks (%.1f MiB)", sv, st.Inodes, st.Chunks, float64(st.ChunkBytes)/(1<<20)))
			}
		}
		sums[len(sums)-1] += ", applied " + strings.Join(applied, "/")
		// Chunk files on disk and the scrub.
		var onDisk []map[string]bool
		for i, s := range rs.stores {
			m := map[string]bool{}
			for _, p := range chunkFiles(nil, rs.paths[i]) {
				base := filepath.Base(p)
				m[base] = true
				idHex, idxStr, _ := strings.Cut(base, ".")
				id, err := layout.ParseID(idHex)
				var idx uint64
				if _, serr := fmt.Sscan(idxStr, &idx); err != nil || serr != nil {
					diff("subvolume %d %s: stray file %s in the chunk directory", sv, rs.names[i], p)
					continue
				}
				if _, err := s.ChunkInfo(ctx, id, idx); err != nil {
					diff("subvolume %d %s: chunk file %s has no record: %v", sv, rs.names[i], base, err)
				}
			}
			onDisk = append(onDisk, m)
			stats, err := s.Scrub(ctx, func(rep store.ScrubReport) {
				diff("subvolume %d %s: chunk %s.%d corrupt: %v", sv, rs.names[i], layout.ID(rep.File), rep.Index, rep.Err)
			})
			if err != nil {
				diff("subvolume %d %s: scrub: %v", sv, rs.names[i], err)
			}
			_ = stats
		}
		for i := 1; i < len(onDisk); i++ {
			for name := range onDisk[0] {
				if !onDisk[i][name] {
					diff("subvolume %d: chunk file %s on %s, not on %s", sv, name, rs.names[0], rs.names[i])
				}
			}
			for name := range onDisk[i] {
				if !onDisk[0][name] {
					diff("subvolume %d: chunk file %s on %s, not on %s", sv, name, rs.names[i], rs.names[0])
				}
			}
		}
	}

	// The namespace, walked from the root over every subvolume.
	var all []*replicaSet
	for _, sv := range order {
		all = append(all, sets[sv])
	}
	dirs, files := walkCompare(ctx, all, diff)
	summary = fmt.Sprintf("%s; walked %d directories and %d files", strings.Join(sums, "; "), dirs, files)
	return diffs, summary, notes
}

// walkCompare walks the namespace from the root and compares every
// replica of every store that holds a directory, inode, xattr or chunk.
func walkCompare(ctx context.Context, sets []*replicaSet, diff func(string, ...any)) (ndirs, nfiles int) {
	queue := []layout.ID{layout.RootID}
	seen := map[layout.ID]bool{}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		if seen[dir] {
			continue
		}
		seen[dir] = true
		ndirs++
		found := false
		for _, rs := range sets {
			var lists [][]*dfspb.Dirent
			var errs []error
			for _, s := range rs.stores {
				ents, _, err := s.ReadDir(ctx, dir, "", 0)
				lists, errs = append(lists, ents), append(errs, err)
			}
			if errors.Is(errs[0], store.ErrNotFound) && allNotFound(errs) {
				continue
			}
			found = true
			for i := range rs.stores {
				if errs[i] != nil {
					diff("subvolume %d %s: readdir %s: %v", rs.sv, rs.names[i], dir, errs[i])
				}
			}
			for i := 1; i < len(lists); i++ {
				compareDirents(rs, dir, lists[0], lists[i], i, diff)
			}
			for _, e := range lists[0] {
				var id layout.ID
				copy(id[:], e.Id)
				if e.Type == dfspb.FileType_FILE_TYPE_DIR {
					queue = append(queue, id)
					continue
				}
				nfiles++
				compareFile(ctx, sets, id, e, diff)
			}
		}
		if !found {
			diff("directory %s is in no subvolume", dir)
		}
	}
	return ndirs, nfiles
}

func allNotFound(errs []error) bool {
	for _, e := range errs {
		if !errors.Is(e, store.ErrNotFound) {
			return false
		}
	}
	return true
}

func compareDirents(rs *replicaSet, dir layout.ID, a, b []*dfspb.Dirent, i int, diff func(string, ...any)) {
	am, bm := map[string]*dfspb.Dirent{}, map[string]*dfspb.Dirent{}
	for _, e := range a {
		am[e.Name] = e
	}
	for _, e := range b {
		bm[e.Name] = e
	}
	for name, ea := range am {
		eb, ok := bm[name]
		switch {
		case !ok:
			diff("subvolume %d: entry %q of %s on %s, not on %s", rs.sv, name, dir, rs.names[0], rs.names[i])
		case !proto.Equal(ea, eb):
			diff("subvolume %d: entry %q of %s differs: %s has %v; %s has %v", rs.sv, name, dir, rs.names[0], ea, rs.names[i], eb)
		}
	}
	for name := range bm {
		if _, ok := am[name]; !ok {
			diff("subvolume %d: entry %q of %s on %s, not on %s", rs.sv, name, dir, rs.names[i], rs.names[0])
		}
	}
}

// compareFile compares a file's inline data, xattrs and chunk records over
// the replicas of every subvolume.
func compareFile(ctx context.Context, sets []*replicaSet, id layout.ID, e *dfspb.Dirent, diff func(string, ...any)) {
	for _, rs := range sets {
		var attr *dfspb.Attr
		for i, s := range rs.stores {
			a, err := s.GetAttr(ctx, id)
			if err != nil {
				if !errors.Is(err, store.ErrNotFound) {
					diff("subvolume %d %s: getattr %s (%s): %v", rs.sv, rs.names[i], id, e.Name, err)
				}
				continue
			}
			if attr == nil {
				attr = a
			}
			xa, err := s.ListXattr(ctx, id)
			x0, _ := rs.stores[0].ListXattr(ctx, id)
			if err != nil || strings.Join(xa, "\x00") != strings.Join(x0, "\x00") {
				diff("subvolume %d: xattrs of %s (%s): %v on %s, %v on %s (%v)", rs.sv, id, e.Name, x0, rs.names[0], xa, rs.names[i], err)
			}
			if !a.Chunked && a.Type == dfspb.FileType_FILE_TYPE_FILE && a.Size > 0 {
				d, err := s.ReadInline(ctx, id, 0, int(a.Size))
				d0, err0 := rs.stores[0].ReadInline(ctx, id, 0, int(a.Size))
				if err != nil || err0 != nil || !bytes.Equal(d, d0) {
					diff("subvolume %d: inline data of %s (%s) differs between %s and %s (%v, %v)", rs.sv, id, e.Name, rs.names[0], rs.names[i], err0, err)
				}
			}
		}
		_ = attr
	}
	// Chunks: wherever they live, every replica must hold the same record.
	size := uint64(0)
	if e.Attr != nil && e.Attr.Chunked {
		size = e.Attr.Size
	}
	for idx := uint64(0); idx*store.DefaultChunkSize < size; idx++ {
		for _, rs := range sets {
			recs := make([]*dfspb.ChunkInfo, len(rs.stores))
			for i, s := range rs.stores {
				ci, err := s.ChunkInfo(ctx, id, idx)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					diff("subvolume %d %s: chunk %s.%d: %v", rs.sv, rs.names[i], id, idx, err)
				}
				recs[i] = ci
			}
			for i := 1; i < len(recs); i++ {
				if !proto.Equal(recs[0], recs[i]) {
					diff("subvolume %d: chunk %s.%d (%s) record differs: %s has %s; %s has %s", rs.sv, id, idx, e.Name,
						rs.names[0], chunkBrief(recs[0]), rs.names[i], chunkBrief(recs[i]))
				}
			}
			// The bytes themselves: every replica's chunk file must pass
			// its checksums and hold the same data.
			var sum0 [32]byte
			for i, s := range rs.stores {
				if recs[i] == nil {
					continue
				}
				data, err := s.ReadChunk(ctx, id, idx, 0, int(recs[i].Length))
				if err != nil {
					diff("subvolume %d %s: chunk %s.%d (%s) unreadable: %v", rs.sv, rs.names[i], id, idx, e.Name, err)
					continue
				}
				sum := sha256.Sum256(data)
				if i == 0 {
					sum0 = sum
				} else if sum != sum0 {
					diff("subvolume %d: chunk %s.%d (%s) bytes differ between %s and %s", rs.sv, id, idx, e.Name, rs.names[0], rs.names[i])
				}
			}
		}
	}
}

func chunkBrief(c *dfspb.ChunkInfo) string {
	if c == nil {
		return "no record"
	}
	return fmt.Sprintf("length %d version %d %d crcs bad %v", c.Length, c.Version, len(c.Crcs), c.BadBlocks)
}
