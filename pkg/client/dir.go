package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// ReadDir lists the entries of dir whose names sort after after (empty:
// from the start), at most limit of them (0: the brick's default page,
// 1024). eof reports that no entries follow the last one returned. Entries
// come in name order; a listing made of several pages sees each entry that
// exists throughout exactly once. One RPC per page.
func (v *Volume) ReadDir(ctx context.Context, dir Node, after string, limit int) ([]DirEntry, bool, error) {
	if limit < 0 {
		return nil, false, fmt.Errorf("%w: readdir limit %d", ErrInvalid, limit)
	}
	out, eof, err := v.readDir(ctx, dir, after, limit)
	for i := range out {
		if out[i].Attr != nil {
			out[i].Attr = v.overlayOpen(out[i].Attr)
		}
	}
	return out, eof, err
}

// readDir is ReadDir with the attributes as the brick answered them
// (without this Volume's buffered writes).
func (v *Volume) readDir(ctx context.Context, dir Node, after string, limit int) ([]DirEntry, bool, error) {
	var res *dfspb.ReadDirResponse
	_, err := v.call(ctx, v.subOfDir(dir.ID), "readdir", func(ctx context.Context, c dfspb.BrickServiceClient, o callOpts) error {
		r, err := c.ReadDir(ctx, &dfspb.ReadDirRequest{Dir: dir.ID[:], After: after, Limit: uint32(limit)}, o...)
		res = r
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if err := codeError(res.GetCode(), res.GetMessage()); err != nil {
		return nil, false, fmt.Errorf("readdir: %w", err)
	}
	out := make([]DirEntry, 0, len(res.Entries))
	for _, e := range res.Entries {
		n, err := nodeOf(e)
		if err != nil {
			return nil, false, err
		}
		out = append(out, DirEntry{Name: e.Name, Node: n, Type: e.Type, Attr: e.Attr})
	}
	return out, res.Eof, nil
}

// Xattr flags (setxattr(2)); the values are those of the kernel.
const (
	XattrCreate  = uint32(dfspb.XattrFlag_XATTR_FLAG_CREATE)
	XattrReplace = uint32(dfspb.XattrFlag_XATTR_FLAG_REPLACE)
)

// GetXattr returns the value of extended attribute name of n (ErrNoAttr if
// it has none).
func (v *Volume) GetXattr(ctx context.Context, n Node, name string) ([]byte, error) {
	res, err := v.xattrRead(ctx, n, "getxattr", func(ctx context.Context, c dfspb.BrickServiceClient, o callOpts) (*dfspb.XattrResponse, error) {
		return c.GetXattr(ctx, &dfspb.GetXattrRequest{Id: n.ID[:], Name: name}, o...)
	})
	if err != nil {
		return nil, err
	}
	return res.Value, nil
}

// ListXattr returns the names of the extended attributes of n.
func (v *Volume) ListXattr(ctx context.Context, n Node) ([]string, error) {
	res, err := v.xattrRead(ctx, n, "listxattr", func(ctx context.Context, c dfspb.BrickServiceClient, o callOpts) (*dfspb.XattrResponse, error) {
		return c.ListXattr(ctx, &dfspb.GetAttrRequest{Id: n.ID[:]}, o...)
	})
	if err != nil {
		return nil, err
	}
	return res.Names, nil
}

func (v *Volume) xattrRead(ctx context.Context, n Node, what string, rpc func(context.Context, dfspb.BrickServiceClient, callOpts) (*dfspb.XattrResponse, error)) (*dfspb.XattrResponse, error) {
	var res *dfspb.XattrResponse
	_, err := v.call(ctx, v.subOfDir(n.Locator), what, func(ctx context.Context, c dfspb.BrickServiceClient, o callOpts) error {
		r, err := rpc(ctx, c, o)
		res = r
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := codeError(res.GetCode(), res.GetMessage()); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return res, nil
}

// SetXattr sets extended attribute name of n; flags are XattrCreate or
// XattrReplace (or 0).
func (v *Volume) SetXattr(ctx context.Context, n Node, name string, value []byte, flags uint32) error {
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_SetXattr{SetXattr: &dfspb.SetXattrCmd{Id: n.ID[:], Name: name, Value: value, Flags: flags}}}
	_, amb, err := v.mutate(ctx, v.subOfDir(n.Locator), "setxattr", cmd)
	if amb && flags&XattrCreate != 0 && errors.Is(err, ErrExists) {
		return nil // the attempt whose answer was lost created it
	}
	return err
}

// RemoveXattr removes extended attribute name of n (ErrNoAttr if absent).
func (v *Volume) RemoveXattr(ctx context.Context, n Node, name string) error {
	cmd := &dfspb.StoreCommand{Op: &dfspb.StoreCommand_RemoveXattr{RemoveXattr: &dfspb.RemoveXattrCmd{Id: n.ID[:], Name: name}}}
	_, amb, err := v.mutate(ctx, v.subOfDir(n.Locator), "removexattr", cmd)
	if amb && errors.Is(err, ErrNoAttr) {
		return nil
	}
	return err
}
