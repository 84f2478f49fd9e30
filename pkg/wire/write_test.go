package wire

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/proto/dfspb"
)

func writeChunk(rng *rand.Rand, n int) *dfspb.WriteChunkCmd {
	return &dfspb.WriteChunkCmd{File: randData(rng, 16), Index: 3, Offset: 65536, Data: randData(rng, n)}
}

// writeCases are the write path's messages, in every shape the codec sees
// or must leave to the default codec.
func writeCases(rng *rand.Rand) map[string]proto.Message {
	unknownStage := &dfspb.StageChunkRequest{StageId: randData(rng, 16), Data: randData(rng, 70000)}
	unknownStage.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 5))
	unknownInner := writeChunk(rng, 70000)
	unknownInner.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 5))
	staged := writeChunk(rng, 0)
	staged.StageId, staged.Length, staged.DataCrc, staged.BlockCrcs = randData(rng, 16), 1<<20, 77, []uint32{1, 2, 3}
	withStage := writeChunk(rng, 1<<20)
	withStage.BlockCrcs, withStage.DataCrc = []uint32{9, 8}, 6
	return map[string]proto.Message{
		"stage chunk":             &dfspb.StageChunkRequest{StageId: randData(rng, 16), Data: randData(rng, 1<<20), Crc: 0xdeadbeef},
		"stage odd length":        &dfspb.StageChunkRequest{StageId: randData(rng, 16), Data: randData(rng, 300001), Crc: 1},
		"stage threshold":         &dfspb.StageChunkRequest{StageId: randData(rng, 16), Data: randData(rng, minDirect)},
		"stage small":             &dfspb.StageChunkRequest{StageId: randData(rng, 16), Data: randData(rng, 100), Crc: 1},
		"stage drop":              &dfspb.StageChunkRequest{StageId: randData(rng, 16), Drop: true},
		"stage unknown field":     unknownStage,
		"write chunk":             &dfspb.StoreCommand{NowNs: 12345, Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: writeChunk(rng, 1<<20)}},
		"write chunk no now":      &dfspb.StoreCommand{Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: writeChunk(rng, 200000)}},
		"write chunk small":       &dfspb.StoreCommand{NowNs: 1, Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: writeChunk(rng, 10)}},
		"write chunk stage refs":  &dfspb.StoreCommand{NowNs: 1, Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: staged}},
		"write chunk with crcs":   &dfspb.StoreCommand{NowNs: 1, Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: withStage}},
		"write chunk inner extra": &dfspb.StoreCommand{NowNs: 1, Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: unknownInner}},
		"other command": &dfspb.StoreCommand{NowNs: 2, Op: &dfspb.StoreCommand_WriteInline{WriteInline: &dfspb.WriteInlineCmd{
			Id: randData(rng, 16), Data: randData(rng, 50000)}}},
	}
}

// TestWriteCodecMatchesDefault: whichever codec each side uses, the write
// path's messages decode to what was sent, through frames of any size.
func TestWriteCodecMatchesDefault(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for name, msg := range writeCases(rng) {
		for _, dir := range directions() {
			wire := dir.encode(t, name, msg)
			if want := proto.Size(msg); len(wire) != want {
				t.Fatalf("%s, %s: %d bytes on the wire, proto.Size says %d", name, dir.name, len(wire), want)
			}
			for _, max := range []int{1, 7, 16 << 10, len(wire) + 1} {
				got := msg.ProtoReflect().New().Interface()
				if err := dir.dec.Unmarshal(frames(rng, wire, max), got); err != nil {
					t.Fatalf("%s, %s, frames <= %d: unmarshal: %v", name, dir.name, max, err)
				}
				if !proto.Equal(got, msg) {
					t.Fatalf("%s, %s, frames <= %d: decoded message differs", name, dir.name, max)
				}
			}
		}
	}
}

// TestWriteMarshalDoesNotCopyData: the data of a chunk write and of a
// staging push go out as they are, and the message is left unchanged.
func TestWriteMarshalDoesNotCopyData(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	data := randData(rng, 1<<20)
	for name, msg := range map[string]proto.Message{
		"stage": &dfspb.StageChunkRequest{StageId: randData(rng, 16), Data: data, Crc: 3},
		"write": &dfspb.StoreCommand{NowNs: 5, Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: &dfspb.WriteChunkCmd{File: randData(rng, 16), Data: data}}},
	} {
		before := proto.Clone(msg)
		bs, err := Codec().Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		last := bs[len(bs)-1].ReadOnlyData()
		if len(last) != len(data) || &last[0] != &data[0] {
			t.Fatalf("%s: the data was copied: last buffer of %d bytes", name, len(last))
		}
		if !proto.Equal(msg, before) {
			t.Fatalf("%s: marshal changed the message", name)
		}
	}
}

// TestWriteUnmarshalAlignedPooled: large data is decoded into a page
// aligned buffer (the brick writes it with O_DIRECT) that Recycle takes.
func TestWriteUnmarshalAlignedPooled(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{minPooled, 1 << 20, 1<<20 - 4096, 777777} {
		bs, err := Codec().Marshal(&dfspb.StageChunkRequest{StageId: randData(rng, 16), Data: randData(rng, n)})
		if err != nil {
			t.Fatal(err)
		}
		var req dfspb.StageChunkRequest
		if err := Codec().Unmarshal(frames(rng, bs.Materialize(), 16<<10), &req); err != nil {
			t.Fatal(err)
		}
		if uintptr(unsafe.Pointer(&req.Data[0]))%4096 != 0 {
			t.Fatalf("data of %d bytes decoded at %p, not page aligned", n, &req.Data[0])
		}
		if c := cap(req.Data); c&(c-1) != 0 {
			t.Fatalf("data of %d bytes in a buffer of capacity %d, not one of the pool's", n, c)
		}
		Recycle(req.Data)
	}
}

// TestWriteUnmarshalRejectsTruncated: a write message cut short is an
// error, whichever field the cut falls in.
func TestWriteUnmarshalRejectsTruncated(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for name, msg := range map[string]proto.Message{
		"stage": &dfspb.StageChunkRequest{StageId: randData(rng, 16), Data: randData(rng, 50000), Crc: 1 << 31},
		"write": &dfspb.StoreCommand{NowNs: 1 << 40, Op: &dfspb.StoreCommand_WriteChunk{WriteChunk: writeChunk(rng, 50000)}},
	} {
		bs, err := Codec().Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		wire := bs.Materialize()
		for _, cut := range []int{1, 2, 3, len(wire) / 2, len(wire) - 30, len(wire) - 10, len(wire) - 1} {
			got := msg.ProtoReflect().New().Interface()
			if err := Codec().Unmarshal(frames(rng, wire[:len(wire)-cut], 1000), got); err == nil {
				t.Fatalf("%s: a message %d bytes short decoded without error", name, cut)
			}
		}
	}
}
