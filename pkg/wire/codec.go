// Package wire is the gRPC codec of the data path: it carries chunk data
// (dfspb.ReadResponse, and on the write path dfspb.StoreCommand with a
// WriteChunkCmd and dfspb.StageChunkRequest: write.go) with fewer copies
// than gRPC's default proto codec, and delegates every other message to
// that codec unchanged.
//
// gRPC's default codec marshals a response into one pooled buffer (a copy
// of the data), and on the receiving side gathers the HTTP/2 frames into
// one contiguous buffer (a copy) which proto.Unmarshal copies again into
// the message's bytes field. For 1 MiB chunk reads those copies and the
// zeroing of the >1 MiB buffers were a third of the client's and of the
// serving brick's CPU time. Here:
//   - Marshal of a ReadResponse sends a few header bytes and then the
//     message's Data slice itself (no copy);
//   - Unmarshal of a ReadResponse decodes straight from the received frames,
//     copying the data once, into the message; a large Data comes from a
//     pool that the owner of the response may give it back to (Recycle).
//
// The bytes on the wire are those of the default codec (the same proto
// encoding, field order aside, and the same name, "proto"), so either side
// may use either codec. Install it with ServerOptions and DialOptions.
// The codec is stateless and safe for concurrent use.
package wire

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the default codec delegated to
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// Name is the codec's name: that of gRPC's default proto codec, whose
// encoding it keeps.
const Name = "proto"

// minDirect is the smallest Data sent or received without the default
// codec: below it the copies cost less than the extra buffers.
const minDirect = 4 << 10

// Fields of dfspb.ReadResponse.
const (
	fieldCode    protowire.Number = 1
	fieldMessage protowire.Number = 2
	fieldData    protowire.Number = 3
)

// Codec returns the codec.
func Codec() encoding.CodecV2 { return codec{base: encoding.GetCodecV2(Name)} }

type codec struct{ base encoding.CodecV2 }

var _ encoding.CodecV2 = codec{}

func (codec) Name() string { return Name }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*dfspb.ReadResponse); ok && len(r.Data) >= minDirect && len(r.ProtoReflect().GetUnknown()) == 0 {
		return marshalRead(r), nil
	}
	if data, ok := writeData(v); ok {
		return marshalWrite(v, data) // write.go
	}
	return c.base.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*dfspb.ReadResponse); ok && data.Len() >= minDirect {
		err := unmarshalRead(data, r)
		if !errors.Is(err, errFallBack) {
			return err
		}
	}
	if m, ok := v.(proto.Message); ok && data.Len() >= minDirect {
		err := unmarshalWrite(data, m) // write.go
		if !errors.Is(err, errFallBack) {
			return err
		}
	}
	return c.base.Unmarshal(data, v)
}

// marshalRead encodes r as its header (code, message, the tag and length
// of data) followed by r.Data itself, which gRPC writes out before the
// handler's response could be reused (it is not: handlers return a new
// one each call).
func marshalRead(r *dfspb.ReadResponse) mem.BufferSlice {
	hdr := make([]byte, 0, 32+len(r.Message))
	if r.Code != 0 {
		hdr = protowire.AppendTag(hdr, fieldCode, protowire.VarintType)
		hdr = protowire.AppendVarint(hdr, uint64(r.Code))
	}
	if r.Message != "" {
		hdr = protowire.AppendTag(hdr, fieldMessage, protowire.BytesType)
		hdr = protowire.AppendString(hdr, r.Message)
	}
	hdr = protowire.AppendTag(hdr, fieldData, protowire.BytesType)
	hdr = protowire.AppendVarint(hdr, uint64(len(r.Data)))
	return mem.BufferSlice{mem.SliceBuffer(hdr), mem.SliceBuffer(r.Data)}
}

// errFallBack: the message holds something unmarshalRead does not decode
// (an unknown field); the default codec decodes it instead.
var errFallBack = errors.New("wire: not a message this codec decodes itself")

// unmarshalRead decodes a ReadResponse from the received buffers, copying
// the data once into r.Data. It only reads data, so after errFallBack the
// default codec can start over.
func unmarshalRead(data mem.BufferSlice, r *dfspb.ReadResponse) error {
	r.Reset()
	rd := reader{bufs: data, left: data.Len()}
	for rd.left > 0 {
		tag, err := rd.varint()
		if err != nil {
			return err
		}
		num, typ := protowire.DecodeTag(tag)
		switch {
		case num == fieldCode && typ == protowire.VarintType:
			v, err := rd.varint()
			if err != nil {
				return err
			}
			r.Code = dfspb.StoreErrorCode(int32(v))
		case (num == fieldMessage || num == fieldData) && typ == protowire.BytesType:
			n, err := rd.varint()
			if err != nil {
				return err
			}
			if n > uint64(rd.left) {
				return fmt.Errorf("wire: read response: field %d of %d bytes, %d left", num, n, rd.left)
			}
			if num == fieldMessage {
				b := make([]byte, n)
				rd.read(b)
				r.Message = string(b)
			} else {
				r.Data = dataBuffer(int(n))
				rd.read(r.Data)
			}
		default:
			return errFallBack
		}
	}
	return nil
}

// minPooled is the smallest Data decoded into a buffer of dataPool.
const minPooled = 64 << 10

// dataPool holds the buffers that Unmarshal decodes large data fields
// into, and that Recycle takes back. It is shared by every
// connection of the process, as gRPC's own default pool is.
var dataPool = newPool()

// dataBuffer returns a buffer of n bytes with arbitrary contents.
func dataBuffer(n int) []byte {
	if n < minPooled {
		return make([]byte, n)
	}
	return *dataPool.Get(n)
}

// Recycle hands the Data of a ReadResponse, StageChunkRequest or
// WriteChunkCmd that this codec decoded back to its pool, to be reused by
// a later message: call it only as the data's sole owner, once nothing
// reads it any more (the next message may overwrite it at once). It is
// optional: data that is never recycled is collected as usual. Safe for
// concurrent use.
func Recycle(data []byte) {
	if cap(data) >= minPooled {
		b := data[:0]
		dataPool.Put(&b)
	}
}

// reader reads a BufferSlice from the front without copying it whole.
type reader struct {
	bufs mem.BufferSlice
	i    int // current buffer
	off  int // offset in it
	left int // bytes not read yet
}

func (rd *reader) byte() byte {
	for rd.off == rd.bufs[rd.i].Len() {
		rd.i, rd.off = rd.i+1, 0
	}
	b := rd.bufs[rd.i].ReadOnlyData()[rd.off]
	rd.off++
	rd.left--
	return b
}

// varint reads a protobuf varint.
func (rd *reader) varint() (uint64, error) {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if rd.left == 0 {
			return 0, errors.New("wire: truncated varint")
		}
		b := rd.byte()
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, nil
		}
	}
	return 0, errors.New("wire: varint overflows 64 bits")
}

// read fills p (len(p) <= rd.left).
func (rd *reader) read(p []byte) {
	rd.left -= len(p)
	for len(p) > 0 {
		src := rd.bufs[rd.i].ReadOnlyData()[rd.off:]
		n := copy(p, src)
		p = p[n:]
		rd.off += n
		if rd.off == rd.bufs[rd.i].Len() && len(p) > 0 {
			rd.i, rd.off = rd.i+1, 0
		}
	}
}
