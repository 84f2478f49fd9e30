package store

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// GetAttrData answers the attributes and, for an inline file, exactly the
// data of those attributes; nothing for chunked files and directories.
func TestGetAttrData(t *testing.T) {
	h := newHarness(t, smallConfig).withRoot()
	ctx := context.Background()
	id := h.create(root, "f")

	a, data, ok, err := h.s.GetAttrData(ctx, id)
	if err != nil || !ok || len(data) != 0 || a.Size != 0 {
		t.Fatalf("empty file: attr %v, data %q, has %v, err %v", a, data, ok, err)
	}

	mustOK(t, h.apply(writeInlineCmd(id, 0, []byte("hello"))))
	mustOK(t, h.apply(setSizeCmd(id, 8))) // sparse tail reads as zeros
	a, data, ok, err = h.s.GetAttrData(ctx, id)
	if err != nil || !ok || !bytes.Equal(data, []byte("hello\x00\x00\x00")) {
		t.Fatalf("inline file: data %q, has %v, err %v", data, ok, err)
	}
	if a.Size != 8 || a.Version != h.idx {
		t.Fatalf("inline file: attr %v, want size 8 version %d", a, h.idx)
	}

	// Chunked: attributes only.
	mustOK(t, h.apply(cmd(&dfspb.CommitSizeCmd{Id: b(id), Size: 100000, Exact: true, Chunked: true})))
	a, data, ok, err = h.s.GetAttrData(ctx, id)
	if err != nil || ok || data != nil || !a.Chunked || a.Size != 100000 {
		t.Fatalf("chunked file: attr %v, data %d bytes, has %v, err %v", a, len(data), ok, err)
	}

	// A directory: attributes only.
	a, _, ok, err = h.s.GetAttrData(ctx, root)
	if err != nil || ok || a.Type != dfspb.FileType_FILE_TYPE_DIR {
		t.Fatalf("directory: attr %v, has %v, err %v", a, ok, err)
	}

	if _, _, _, err := h.s.GetAttrData(ctx, layout.NewID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing inode: err %v, want ErrNotFound", err)
	}
}
