package store

import (
	"context"
	"testing"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// TestAppend: appending WriteInline and AppendReserve place data at the
// current size, once per op id.
func TestAppend(t *testing.T) {
	h := newHarness(t, smallConfig).withRoot()
	id := h.create(root, "f")
	inlineAppend := func(data string, op layout.ID) *dfspb.StoreCommand {
		return cmd(&dfspb.WriteInlineCmd{Id: b(id), Data: []byte(data), Append: true, OpId: op[:], Offset: 999})
	}
	reserve := func(n uint64, op layout.ID) *dfspb.StoreCommand {
		return cmd(&dfspb.AppendReserveCmd{Id: b(id), Length: n, OpId: op[:]})
	}
	op1, op2, op3, op4 := layout.NewID(), layout.NewID(), layout.NewID(), layout.NewID()
	for _, tc := range []struct {
		name     string
		cmd      *dfspb.StoreCommand
		code     ErrorCode
		offset   uint64
		size     uint64
		repeated bool
	}{
		{"first", inlineAppend("abc", op1), CodeOK, 0, 3, false},
		{"second", inlineAppend("defg", op2), CodeOK, 3, 7, false},
		{"retry of the first", inlineAppend("abc", op1), CodeOK, 0, 7, true},
		{"no op id", cmd(&dfspb.WriteInlineCmd{Id: b(id), Data: []byte("x"), Append: true}), CodeInvalid, 0, 7, false},
		{"past inline max", inlineAppend(string(make([]byte, 4<<10)), op3), CodeTooBig, 0, 7, false},
		{"reserve on inline", reserve(10, op3), CodeTooBig, 0, 7, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.apply(tc.cmd)
			wantCode(t, r, tc.code)
			if tc.code == CodeOK && (r.Offset != tc.offset || r.Repeated != tc.repeated) {
				t.Fatalf("offset %d repeated %v, want %d %v", r.Offset, r.Repeated, tc.offset, tc.repeated)
			}
			if a := h.attr(id); a.Size != tc.size {
				t.Fatalf("size %d, want %d", a.Size, tc.size)
			}
		})
	}
	got, err := h.s.ReadInline(context.Background(), id, 0, 100)
	if err != nil || string(got) != "abcdefg" {
		t.Fatalf("inline data %q, %v", got, err)
	}

	// A stale move to chunks is refused; a current one goes through.
	v := h.attr(id).Version
	mustOK(t, h.apply(inlineAppend("h", op4)))
	wantCode(t, h.apply(cmd(&dfspb.CommitSizeCmd{Id: b(id), Size: 7, Chunked: true, ExpectVersion: v})), CodeStale)
	a := h.attr(id)
	mustOK(t, h.apply(writeChunkCmd(id, 0, 0, []byte("abcdefgh"))))
	mustOK(t, h.apply(cmd(&dfspb.CommitSizeCmd{Id: b(id), Size: a.Size, Chunked: true, ExpectVersion: a.Version})))

	r := mustOK(t, h.apply(reserve(100, op1))) // op ids are per inode and remembered: op1 was an inline append
	if !r.Repeated || r.Offset != 0 {
		t.Fatalf("reserve with a used op id: %+v", r)
	}
	op5, op6 := layout.NewID(), layout.NewID()
	r = mustOK(t, h.apply(reserve(100, op5)))
	if r.Offset != 8 || r.Attr.Size != 108 || r.Repeated {
		t.Fatalf("reserve: offset %d size %d", r.Offset, r.Attr.Size)
	}
	r = mustOK(t, h.apply(reserve(100, op5)))
	if r.Offset != 8 || r.Attr.Size != 108 || !r.Repeated {
		t.Fatalf("retried reserve: offset %d size %d", r.Offset, r.Attr.Size)
	}
	wantCode(t, h.apply(reserve(1<<50, op6)), CodeTooBig)
	wantCode(t, h.apply(cmd(&dfspb.AppendReserveCmd{Id: b(id), Length: 1})), CodeInvalid)
}
