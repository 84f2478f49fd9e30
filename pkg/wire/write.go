package wire

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// The write path's messages: a chunk write from a client to its leader
// (dfspb.StoreCommand holding a WriteChunkCmd) and the leader's push of
// the bytes to the other members (dfspb.StageChunkRequest). As for reads,
// the default codec would copy the 1 MiB of data into a marshal buffer on
// the sender, and on the receiver gather the frames into one buffer and
// copy that again into the message. Here:
//   - Marshal sends the message without its data (the default codec's
//     encoding of the other fields), then the data field's tag and length,
//     then the Data slice itself (no copy);
//   - Unmarshal copies a large data field once, from the received frames
//     into a buffer of the pool Recycle gives back to (page aligned, so
//     that the brick can write it with O_DIRECT), and decodes the rest with
//     the default codec.
// A message with unknown fields, or fields this does not expect (a data
// field twice, groups), goes through the default codec.

// Field numbers, from the descriptors.
var (
	numStageData = fieldNum(&dfspb.StageChunkRequest{}, "data")
	numCmdWrite  = fieldNum(&dfspb.StoreCommand{}, "write_chunk")
	numWriteData = fieldNum(&dfspb.WriteChunkCmd{}, "data")
)

func fieldNum(m proto.Message, name protoreflect.Name) protowire.Number {
	fd := m.ProtoReflect().Descriptor().Fields().ByName(name)
	if fd == nil || fd.Kind() != protoreflect.BytesKind && fd.Kind() != protoreflect.MessageKind {
		panic(fmt.Sprintf("wire: %T has no field %s of bytes or message kind", m, name))
	}
	return fd.Number()
}

// writeData returns the data the write codec sends without copying, and
// whether it applies to v.
func writeData(v any) ([]byte, bool) {
	switch m := v.(type) {
	case *dfspb.StageChunkRequest:
		return m.Data, len(m.Data) >= minDirect && len(m.ProtoReflect().GetUnknown()) == 0
	case *dfspb.StoreCommand:
		wc := m.GetWriteChunk()
		return wc.GetData(), len(wc.GetData()) >= minDirect && len(m.ProtoReflect().GetUnknown()) == 0 && len(wc.ProtoReflect().GetUnknown()) == 0
	}
	return nil, false
}

// marshalWrite encodes a message writeData accepted as its other fields,
// then its data.
func marshalWrite(v any, data []byte) (mem.BufferSlice, error) {
	var hdr []byte
	var err error
	switch m := v.(type) {
	case *dfspb.StageChunkRequest:
		if hdr, err = marshalWithout(m.ProtoReflect(), numStageData); err != nil {
			return nil, err
		}
		hdr = protowire.AppendTag(hdr, numStageData, protowire.BytesType)
		hdr = protowire.AppendVarint(hdr, uint64(len(data)))
	case *dfspb.StoreCommand:
		inner, err := marshalWithout(m.GetWriteChunk().ProtoReflect(), numWriteData)
		if err != nil {
			return nil, err
		}
		inner = protowire.AppendTag(inner, numWriteData, protowire.BytesType)
		inner = protowire.AppendVarint(inner, uint64(len(data)))
		if hdr, err = marshalWithout(m.ProtoReflect(), numCmdWrite); err != nil {
			return nil, err
		}
		hdr = protowire.AppendTag(hdr, numCmdWrite, protowire.BytesType)
		hdr = protowire.AppendVarint(hdr, uint64(len(inner)+len(data)))
		hdr = append(hdr, inner...)
	default:
		return nil, fmt.Errorf("wire: no write encoding for %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(hdr), mem.SliceBuffer(data)}, nil
}

// marshalWithout is the default encoding of m without field skip (a
// shallow copy of the other fields; m is not changed).
func marshalWithout(m protoreflect.Message, skip protowire.Number) ([]byte, error) {
	c := m.New()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Number() != skip {
			c.Set(fd, v)
		}
		return true
	})
	return proto.Marshal(c.Interface())
}

// unmarshalWrite decodes a StageChunkRequest or a StoreCommand from the
// received buffers: a large data field is copied once into a pooled
// buffer, the other fields are gathered and decoded by proto.Unmarshal.
// It only reads data, so after errFallBack the default codec can start
// over.
func unmarshalWrite(data mem.BufferSlice, v proto.Message) error {
	rd := reader{bufs: data, left: data.Len()}
	var path []protowire.Number
	switch v.(type) {
	case *dfspb.StageChunkRequest:
		path = []protowire.Number{numStageData}
	case *dfspb.StoreCommand:
		path = []protowire.Number{numCmdWrite, numWriteData}
	default:
		return errFallBack
	}
	var big []byte
	small, err := splitFields(&rd, rd.left, path, &big, nil)
	if err == nil && big == nil {
		err = errFallBack // nothing large: the default codec does as well
	}
	if err != nil {
		if big != nil {
			Recycle(big)
		}
		return err
	}
	if err := proto.Unmarshal(small, v); err != nil {
		Recycle(big)
		return err
	}
	switch m := v.(type) {
	case *dfspb.StageChunkRequest:
		m.Data = big
	case *dfspb.StoreCommand:
		wc := m.GetWriteChunk()
		if wc == nil {
			// The write_chunk field was not the oneof's last word.
			Recycle(big)
			return errFallBack
		}
		wc.Data = big
	}
	return nil
}

// splitFields reads n bytes of message fields from rd and appends them to
// out, except field path[0]: with one element left in path, a bytes field
// of at least minDirect bytes is read into *big (once; a second one falls
// back); with more, it is a submessage split the same way and appended
// with its new length.
func splitFields(rd *reader, n int, path []protowire.Number, big *[]byte, out []byte) ([]byte, error) {
	end := rd.left - n
	for rd.left > end {
		tag, err := rd.varint()
		if err != nil {
			return nil, err
		}
		num, typ := protowire.DecodeTag(tag)
		if typ == protowire.BytesType {
			l, err := rd.varint()
			if err != nil {
				return nil, err
			}
			if l > uint64(rd.left-end) {
				return nil, fmt.Errorf("wire: field %d of %d bytes, %d left", num, l, rd.left-end)
			}
			switch {
			case num == path[0] && len(path) > 1:
				sub, err := splitFields(rd, int(l), path[1:], big, nil)
				if err != nil {
					return nil, err
				}
				out = protowire.AppendTag(out, num, typ)
				out = protowire.AppendBytes(out, sub)
				continue
			case num == path[0] && l >= minDirect:
				if *big != nil {
					return nil, errFallBack
				}
				*big = dataBuffer(int(l))
				rd.read(*big)
				continue
			case l >= minDirect:
				// Another large field (a WriteExtentsCmd, inline data):
				// not a message this decodes; stop before copying it.
				return nil, errFallBack
			}
			out = protowire.AppendTag(out, num, typ)
			out = protowire.AppendVarint(out, l)
			out = rd.appendN(out, int(l))
			continue
		}
		out = protowire.AppendTag(out, num, typ)
		switch typ {
		case protowire.VarintType:
			v, err := rd.varint()
			if err != nil {
				return nil, err
			}
			out = protowire.AppendVarint(out, v)
		case protowire.Fixed32Type, protowire.Fixed64Type:
			size := 4
			if typ == protowire.Fixed64Type {
				size = 8
			}
			if rd.left-end < size {
				return nil, errors.New("wire: truncated fixed-size field")
			}
			out = rd.appendN(out, size)
		default:
			return nil, errFallBack // groups: not in these messages
		}
	}
	if rd.left != end {
		return nil, errors.New("wire: field runs past its message")
	}
	return out, nil
}

// appendN appends the next n bytes (n <= rd.left) to out.
func (rd *reader) appendN(out []byte, n int) []byte {
	l := len(out)
	out = append(out, make([]byte, n)...)
	rd.read(out[l:])
	return out
}
