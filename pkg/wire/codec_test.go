package wire

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// frames cuts b into buffers of random sizes (1..max), as HTTP/2 DATA
// frames arrive.
func frames(rng *rand.Rand, b []byte, max int) mem.BufferSlice {
	var out mem.BufferSlice
	for len(b) > 0 {
		n := min(len(b), 1+rng.IntN(max))
		out = append(out, mem.SliceBuffer(b[:n]))
		b = b[n:]
	}
	return out
}

func randData(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// codecDirection is one pairing of an encoder and a decoder.
type codecDirection struct {
	name     string
	enc, dec encoding.CodecV2
}

// directions pairs this codec with gRPC's default one, both ways, and with
// itself.
func directions() []codecDirection {
	ours, std := Codec(), encoding.GetCodecV2(Name)
	return []codecDirection{{"ours to default", ours, std}, {"default to ours", std, ours}, {"ours to ours", ours, ours}}
}

// encode marshals msg with the direction's encoder and returns the bytes
// on the wire.
func (dir codecDirection) encode(t *testing.T, name string, msg any) []byte {
	t.Helper()
	bs, err := dir.enc.Marshal(msg)
	if err != nil {
		t.Fatalf("%s, %s: marshal: %v", name, dir.name, err)
	}
	wire := bs.Materialize()
	bs.Free()
	return wire
}

// TestCodecMatchesDefault: whatever one side uses, the other decodes the
// same message, through frames of any size, for every shape of response.
func TestCodecMatchesDefault(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	withUnknown := &dfspb.ReadResponse{Data: randData(rng, 10000)}
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 7))
	cases := map[string]*dfspb.ReadResponse{
		"empty":           {},
		"small data":      {Data: randData(rng, 100)},
		"threshold":       {Data: randData(rng, minDirect)},
		"chunk":           {Data: randData(rng, 1<<20)},
		"error":           {Code: dfspb.StoreErrorCode_STORE_ERROR_CODE_NOT_FOUND, Message: "chunk f.3: not found"},
		"error with data": {Code: dfspb.StoreErrorCode_STORE_ERROR_CODE_NOT_FOUND, Message: "odd", Data: randData(rng, 70000)},
		"unknown field":   withUnknown,
	}
	for name, msg := range cases {
		for _, dir := range directions() {
			wire := dir.encode(t, name, msg)
			for _, max := range []int{1, 7, 16 << 10, len(wire) + 1} {
				got := &dfspb.ReadResponse{Data: []byte("stale"), Message: "stale"}
				if err := dir.dec.Unmarshal(frames(rng, wire, max), got); err != nil {
					t.Fatalf("%s, %s, frames <= %d: unmarshal: %v", name, dir.name, max, err)
				}
				if !proto.Equal(got, msg) {
					t.Fatalf("%s, %s, frames <= %d: decoded %v bytes code %v %q, want %v bytes code %v %q", name, dir.name, max,
						len(got.Data), got.Code, got.Message, len(msg.Data), msg.Code, msg.Message)
				}
			}
		}
	}
}

// TestMarshalDoesNotCopyData: the chunk's bytes go out as they are.
func TestMarshalDoesNotCopyData(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 1<<20)
	bs, err := Codec().Marshal(&dfspb.ReadResponse{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	last := bs[len(bs)-1].ReadOnlyData()
	if len(last) != len(data) || &last[0] != &data[0] {
		t.Fatalf("the data was copied: last buffer of %d bytes", len(last))
	}
}

// TestUnmarshalRejectsTruncated: a message cut short is an error, not a
// short read.
func TestUnmarshalRejectsTruncated(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	bs, err := Codec().Marshal(&dfspb.ReadResponse{Data: randData(rng, 50000)})
	if err != nil {
		t.Fatal(err)
	}
	wire := bs.Materialize()
	for _, cut := range []int{1, 2, 3, 4, len(wire) / 2, len(wire) - 1} {
		if err := Codec().Unmarshal(frames(rng, wire[:len(wire)-cut], 1000), &dfspb.ReadResponse{}); err == nil {
			t.Fatalf("a message %d bytes short decoded without error", cut)
		}
	}
}

// TestPool: buffers of every size come back with the length asked for
// and go back to the tier they came from.
func TestPool(t *testing.T) {
	p := newPool()
	for _, size := range []int{0, 1, 255, 256, 257, 16 << 10, 1<<20 + 5, 2 << 20, 2<<20 + 1, 5 << 20} {
		b := p.Get(size)
		if len(*b) != size || cap(*b) < size {
			t.Fatalf("Get(%d): len %d cap %d", size, len(*b), cap(*b))
		}
		(*b)[:cap(*b)][cap(*b)-1] = 1 // the whole capacity is usable
		p.Put(b)
		again := p.Get(size)
		if len(*again) != size {
			t.Fatalf("Get(%d) after Put: len %d", size, len(*again))
		}
	}
	odd := make([]byte, 1000) // not a power of two: dropped, not pooled
	p.Put(&odd)
	if b := p.Get(1000); cap(*b) != 1024 {
		t.Fatalf("Get(1000): cap %d, want 1024", cap(*b))
	}
}

// TestRecycle: a recycled chunk buffer is reused by the next response of
// its size, which holds the new bytes, not the old.
func TestRecycle(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	c := Codec()
	decode := func(data []byte) []byte {
		t.Helper()
		bs, err := c.Marshal(&dfspb.ReadResponse{Data: data})
		if err != nil {
			t.Fatal(err)
		}
		var r dfspb.ReadResponse
		if err := c.Unmarshal(frames(rng, bs.Materialize(), 16<<10), &r); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Data, data) {
			t.Fatal("decoded data differs")
		}
		return r.Data
	}
	a, b := randData(rng, 1<<20), randData(rng, 1<<20)
	first := decode(a)
	Recycle(first)
	second := decode(b)
	if &second[0] != &first[0] {
		t.Log("the pool did not hand the buffer back (sync.Pool may drop it)")
	}
	Recycle(make([]byte, 100)) // small or foreign buffers are ignored or adopted
	Recycle(make([]byte, 3000, 1<<16))
}
