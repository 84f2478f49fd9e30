package layout

// The functions in this file decide where data lives. They are part of the
// on-disk format and must never change; see the package documentation and
// the golden tests.

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// fnvID runs FNV-1a 64 over the 16 bytes of id.
func fnvID(id ID) uint64 {
	h := uint64(fnvOffset64)
	for _, b := range id {
		h ^= uint64(b)
		h *= fnvPrime64
	}
	return h
}

// mix64 is the splitmix64 finalizer: a bijection with full avalanche.
func mix64(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// hashDir is the placement hash of the directory dir.
func hashDir(dir ID) uint64 { return mix64(fnvID(dir)) }

// hashChunk is the placement hash of chunk number chunk of file: FNV-1a
// continued over the chunk index, least significant byte first.
func hashChunk(file ID, chunk uint64) uint64 {
	h := fnvID(file)
	for i := 0; i < 8; i++ {
		h ^= chunk & 0xff
		h *= fnvPrime64
		chunk >>= 8
	}
	return mix64(h)
}
