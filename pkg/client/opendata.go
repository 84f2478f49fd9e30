package client

import (
	"context"
	"fmt"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// Open-time data of small files.
//
// Open revalidates a file's attributes (close-to-open consistency). For a
// file opened for reading it asks for the data too (GetAttr with_data): the
// leader answers an inline file's whole data read with the attributes from
// one snapshot of its store, so a cold open and read of a small file costs
// one round trip instead of two. The openInode keeps those bytes as
// fetched, tied to the attributes' version, and its reads use them in place
// of ReadInline while all of these hold:
//
//   - the version is still the newest the openInode knows (adopt drops the
//     data on any newer attributes: a commit of this client, an append, a
//     punched hole, another Open or a GetAttr that saw another client's
//     change, including a move to chunks);
//   - nothing was written or truncated here since (write, dropAfter and
//     flushLocked drop it: every local change of the data passes there
//     first, so even a change whose answer was lost cannot leave it behind);
//   - the file is inline;
//   - no read has reached the end of the data yet: the first read to the
//     end lets it go (the kernel's page cache holds the file then), so a
//     file held open does not hold its data here too.
//
// The bytes are never modified once fetched: a reader copies them without
// the openInode's mutex.

// fetchedData is an inline file's committed data at one attribute version.
type fetchedData struct {
	version uint64
	data    []byte // the whole file: attr.Size bytes
}

// getAttrData fetches the attributes of n and, when it is an inline file,
// its data from the same store view. data is nil when the leader sent none
// (a chunked file, or a server that predates with_data).
func (v *Volume) getAttrData(ctx context.Context, n Node) (*dfspb.Attr, *fetchedData, error) {
	res, err := v.getAttrRPC(ctx, n, true)
	if err != nil {
		return nil, nil, err
	}
	a := res.GetAttr()
	if !res.GetHasData() || a.Chunked || a.Type != dfspb.FileType_FILE_TYPE_FILE {
		return a, nil, nil
	}
	if uint64(len(res.GetData())) != a.Size {
		return nil, nil, fmt.Errorf("%w: getattr sent %d bytes of data for a file of %d", ErrIO, len(res.GetData()), a.Size)
	}
	return a, &fetchedData{version: a.Version, data: res.GetData()}, nil
}

// keepFetched keeps d for reads if it is the data of the attributes the
// openInode holds and nothing local lies over them. Callers hold mu.
func (st *openInode) keepFetched(d *fetchedData) {
	if d == nil || d.version != st.version || !st.idle() || st.chunked || st.remoteChunked ||
		uint64(len(d.data)) != st.remoteSize || st.size != st.remoteSize {
		return
	}
	st.fetched = d
}

// dropFetched forgets the data fetched by Open. Callers hold mu.
func (st *openInode) dropFetched() { st.fetched = nil }

// releaseFetched forgets d, if it is still the data kept, once a read has
// used it to its end. Callers do not hold mu.
func (st *openInode) releaseFetched(d *fetchedData) {
	st.mu.Lock()
	if st.fetched == d {
		st.fetched = nil
	}
	st.mu.Unlock()
}

// fetchedFor returns the fetched data if reads of the file, of size bytes,
// may be served from it; nil otherwise. Callers hold mu.
func (st *openInode) fetchedFor(size uint64) *fetchedData {
	d := st.fetched
	if d == nil || d.version != st.version || st.chunked || uint64(len(d.data)) != size {
		return nil
	}
	return d
}

// readAt fills p with d's data at off, zeros past its end.
func (d *fetchedData) readAt(p []byte, off uint64) {
	n := 0
	if off < uint64(len(d.data)) {
		n = copy(p, d.data[off:])
	}
	clear(p[n:])
}
