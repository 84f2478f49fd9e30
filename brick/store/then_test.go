package store

import (
	"testing"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// A write or size commit can carry an attribute change (then): one command
// for cp -a's data, times, owner and mode.
func TestCommitCarriesAttributeChange(t *testing.T) {
	h := newHarness(t).withRoot()
	id := h.create(layout.RootID, "f")
	then := &dfspb.SetAttrCmd{
		Id:      id[:],
		Mask:    uint32(dfspb.SetAttrMask_SET_ATTR_MASK_MODE | dfspb.SetAttrMask_SET_ATTR_MASK_UID | dfspb.SetAttrMask_SET_ATTR_MASK_MTIME),
		Mode:    0o600,
		Uid:     1234,
		MtimeNs: 1_000_000_007,
	}
	r := mustOK(t, h.apply(cmd(&dfspb.WriteInlineCmd{Id: id[:], Data: []byte("hello"), Then: then})))
	a := r.GetAttr()
	if a.Size != 5 || a.Mode != 0o600 || a.Uid != 1234 || a.MtimeNs != 1_000_000_007 {
		t.Fatalf("attr after write+then: size %d mode %o uid %d mtime %d", a.Size, a.Mode, a.Uid, a.MtimeNs)
	}
	if got := h.attr(id); got.Mode != 0o600 || got.MtimeNs != 1_000_000_007 {
		t.Fatalf("stored attr: mode %o mtime %d", got.Mode, got.MtimeNs)
	}

	then.Mode, then.MtimeNs = 0o640, 2_000_000_009
	r = mustOK(t, h.apply(cmd(&dfspb.CommitSizeCmd{Id: id[:], Size: 5, Then: then})))
	if a := r.GetAttr(); a.Mode != 0o640 || a.MtimeNs != 2_000_000_009 {
		t.Fatalf("attr after commit+then: mode %o mtime %d", a.Mode, a.MtimeNs)
	}

	// A failed write applies no attribute change.
	missing := layout.NewID()
	then.Id = missing[:]
	wantCode(t, h.apply(cmd(&dfspb.WriteInlineCmd{Id: missing[:], Data: []byte("x"), Then: then})), CodeNotFound)
}
