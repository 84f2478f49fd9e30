package layout

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// ID is the 128-bit identifier of an inode.
type ID [16]byte

// RootID is the fixed id of the root directory of every volume: all zero
// bytes except the last, which is 1.
var RootID = ID{15: 1}

// NewID returns a new random id from crypto/rand. It never returns the zero
// id or RootID.
func NewID() ID {
	for {
		var id ID
		// crypto/rand.Read never returns an error (it crashes the
		// program if the system random source fails).
		_, _ = rand.Read(id[:])
		if !id.IsZero() && id != RootID {
			return id
		}
	}
}

// IsZero reports whether id is the zero id, which is never a valid inode.
func (id ID) IsZero() bool { return id == ID{} }

// String returns id as 32 lowercase hex characters.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses the 32 hex characters (either case) of an id. Errors wrap
// ErrInvalidID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return ID{}, fmt.Errorf("%w: %q has length %d, want %d hex characters", ErrInvalidID, s, len(s), 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return ID{}, fmt.Errorf("%w: %q is not hex", ErrInvalidID, s)
	}
	return id, nil
}

// MarshalText encodes id as its String form, so ids appear as hex strings
// in JSON and can be used as JSON map keys.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes the String form of an id.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
