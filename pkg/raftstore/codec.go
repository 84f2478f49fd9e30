package raftstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Key layout. Every key starts with a one-byte namespace prefix so that the
// log and the stable values never collide and a bounded iterator over one
// namespace never sees the other.
const (
	// prefixLog is followed by the 8-byte big-endian log index, so the
	// lexicographic key order is the numeric index order.
	prefixLog byte = 'l'
	// prefixStable is followed by the caller's stable key, verbatim.
	prefixStable byte = 's'
)

// logKeyLen is the length of a log key: prefix + big-endian uint64.
const logKeyLen = 1 + 8

var (
	// logLower is the smallest possible log key (inclusive lower bound).
	logLower = []byte{prefixLog}
	// logUpper is the exclusive upper bound of the log namespace.
	logUpper = []byte{prefixLog + 1}
)

// logKey returns the key under which the entry with the given index lives.
func logKey(index uint64) [logKeyLen]byte {
	var k [logKeyLen]byte
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

// parseLogKey extracts the index from a log key.
func parseLogKey(k []byte) (uint64, error) {
	if len(k) != logKeyLen || k[0] != prefixLog {
		return 0, fmt.Errorf("%w: malformed log key %x", ErrCorrupt, k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// stableKey returns the namespaced key for a StableStore key.
func stableKey(key []byte) []byte {
	k := make([]byte, 1+len(key))
	k[0] = prefixStable
	copy(k[1:], key)
	return k
}

// Log entry value encoding, version 1:
//
//	byte     version (= 1)
//	byte     flags (bit 0: AppendedAt present)
//	uvarint  Index
//	uvarint  Term
//	byte     Type
//	[if flags&1] varint AppendedAt Unix seconds, uvarint nanoseconds (0..999999999)
//	uvarint  len(Data),       Data bytes
//	uvarint  len(Extensions), Extensions bytes
//
// Nothing may follow the Extensions bytes. A zero-length Data or Extensions
// decodes as nil. AppendedAt decodes in the local time zone without a
// monotonic clock reading, i.e. it is equal (time.Time.Equal) to the stored
// value but not necessarily ==.
//
// With flag bit 1 (flagBlobData) the Data field is replaced by a reference
// to where the data lies in a blob segment file (blobs.go):
//
//	uvarint  segment number, uvarint offset, uvarint length,
//	4 bytes  CRC-32C of the data (big-endian)
const (
	codecV1           byte = 1
	flagHasAppendedAt byte = 1 << 0
	flagBlobData      byte = 1 << 1
)

// blobRef says where an entry's Data lies in a blob segment.
type blobRef struct {
	seg    uint64
	off    uint64
	length uint64
	crc    uint32
}

// appendLog appends the encoding of l to dst and returns the extended slice.
func appendLog(dst []byte, l *raft.Log) []byte { return appendLogRef(dst, l, nil) }

// appendLogRef is appendLog with l's Data stored at ref (nil: inline).
func appendLogRef(dst []byte, l *raft.Log, ref *blobRef) []byte {
	var flags byte
	if !l.AppendedAt.IsZero() {
		flags |= flagHasAppendedAt
	}
	if ref != nil {
		flags |= flagBlobData
	}
	dst = append(dst, codecV1, flags)
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	if flags&flagHasAppendedAt != 0 {
		dst = binary.AppendVarint(dst, l.AppendedAt.Unix())
		dst = binary.AppendUvarint(dst, uint64(l.AppendedAt.Nanosecond()))
	}
	if ref != nil {
		dst = binary.AppendUvarint(dst, ref.seg)
		dst = binary.AppendUvarint(dst, ref.off)
		dst = binary.AppendUvarint(dst, ref.length)
		dst = binary.BigEndian.AppendUint32(dst, ref.crc)
	} else {
		dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
		dst = append(dst, l.Data...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	return dst
}

// encodedLogSize returns an upper bound on len(appendLog(nil, l)).
func encodedLogSize(l *raft.Log) int {
	const fixed = 2 + 1 + 4*binary.MaxVarintLen64 + 2*binary.MaxVarintLen64
	return fixed + len(l.Data) + len(l.Extensions)
}

// decoder is a cursor over an encoded value that records the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or invalid %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) byte(what string) byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a length-prefixed field, aliasing the input.
func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// decodeLog decodes val into l. The Data and Extensions of l are copied into
// freshly allocated memory, so val may be reused or invalidated afterwards
// (Pebble values are only valid until their closer is closed). An entry
// whose Data lies in a blob segment is an error here; see decodeLogRef.
func decodeLog(val []byte, l *raft.Log) error {
	ref, err := decodeLogRef(val, l)
	if err == nil && ref != nil {
		err = fmt.Errorf("%w: entry %d keeps its data in a blob segment", ErrCorrupt, l.Index)
	}
	return err
}

// decodeLogRef is decodeLog for entries that may keep their Data in a blob
// segment: it then returns where, and leaves l.Data nil.
func decodeLogRef(val []byte, l *raft.Log) (*blobRef, error) {
	d := decoder{b: val}
	if v := d.byte("version"); d.err == nil && v != codecV1 {
		return nil, fmt.Errorf("%w: unknown log encoding version %d", ErrCorrupt, v)
	}
	flags := d.byte("flags")
	if d.err == nil && flags&^(flagHasAppendedAt|flagBlobData) != 0 {
		return nil, fmt.Errorf("%w: unknown log flags %#x", ErrCorrupt, flags)
	}
	index := d.uvarint("index")
	term := d.uvarint("term")
	typ := raft.LogType(d.byte("type"))
	var appendedAt time.Time
	if flags&flagHasAppendedAt != 0 {
		sec := d.varint("appended-at seconds")
		nsec := d.uvarint("appended-at nanoseconds")
		if d.err == nil && nsec >= uint64(time.Second) {
			d.fail("appended-at nanoseconds")
		}
		appendedAt = time.Unix(sec, int64(nsec))
	}
	var data []byte
	var ref *blobRef
	if flags&flagBlobData != 0 {
		ref = &blobRef{seg: d.uvarint("blob segment"), off: d.uvarint("blob offset"), length: d.uvarint("blob length")}
		if c := d.fixed(4, "blob crc"); c != nil {
			ref.crc = binary.BigEndian.Uint32(c)
		}
	} else {
		data = d.bytes("data")
	}
	ext := d.bytes("extensions")
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after log entry", ErrCorrupt, len(d.b))
	}

	// One allocation holds both byte fields; the three-index slices keep an
	// append to Data from clobbering Extensions.
	var owned []byte
	if n := len(data) + len(ext); n > 0 {
		owned = make([]byte, n)
		copy(owned, data)
		copy(owned[len(data):], ext)
	}
	*l = raft.Log{
		Index:      index,
		Term:       term,
		Type:       typ,
		AppendedAt: appendedAt,
	}
	if len(data) > 0 {
		l.Data = owned[:len(data):len(data)]
	}
	if len(ext) > 0 {
		l.Extensions = owned[len(data):]
	}
	return ref, nil
}

// fixed returns the next n bytes, aliasing the input.
func (d *decoder) fixed(n int, what string) []byte {
	if d.err != nil || len(d.b) < n {
		d.fail(what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
