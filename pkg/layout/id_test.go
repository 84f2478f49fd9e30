package layout

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestRootID(t *testing.T) {
	if got, want := RootID.String(), "00000000000000000000000000000001"; got != want {
		t.Fatalf("RootID = %s, want %s", got, want)
	}
	if RootID.IsZero() {
		t.Fatal("RootID.IsZero() = true")
	}
	if !(ID{}).IsZero() {
		t.Fatal("ID{}.IsZero() = false")
	}
}

func TestNewID(t *testing.T) {
	seen := make(map[ID]bool)
	for range 10000 {
		id := NewID()
		if id.IsZero() || id == RootID {
			t.Fatalf("NewID returned reserved id %s", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %s", id)
		}
		seen[id] = true
	}
}

func TestParseID(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ID
		ok   bool
	}{
		{"root", "00000000000000000000000000000001", RootID, true},
		{"zero", "00000000000000000000000000000000", ID{}, true},
		{"lower", "000102030405060708090a0b0c0d0e0f", ID{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, true},
		{"upper", "000102030405060708090A0B0C0D0E0F", ID{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, true},
		{"all ff", "ffffffffffffffffffffffffffffffff", ID{0: 0xff, 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff, 8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff}, true},
		{"empty", "", ID{}, false},
		{"short", "0000000000000000000000000000001", ID{}, false},
		{"long", "000000000000000000000000000000001", ID{}, false},
		{"odd non-hex", "0000000000000000000000000000000g", ID{}, false},
		{"0x prefix", "0x000000000000000000000000000001", ID{}, false},
		{"uuid dashes", "00000000-0000-0000-0000-000000000001", ID{}, false},
		{"spaces", " 0000000000000000000000000000001", ID{}, false},
		{"unicode", "0000000000000000000000000000000é", ID{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseID(tt.in)
			if !tt.ok {
				if !errors.Is(err, ErrInvalidID) {
					t.Fatalf("ParseID(%q) error = %v, want ErrInvalidID", tt.in, err)
				}
				if got != (ID{}) {
					t.Fatalf("ParseID(%q) returned %s with an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseID(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseID(%q) = %s, want %s", tt.in, got, tt.want)
			}
			if got.String() != strings.ToLower(tt.in) {
				t.Fatalf("String() = %s, want %s", got, strings.ToLower(tt.in))
			}
		})
	}
}

func TestIDRoundTrip(t *testing.T) {
	for range 1000 {
		id := NewID()
		s := id.String()
		if len(s) != 32 || strings.ToLower(s) != s {
			t.Fatalf("String() = %q, want 32 lowercase hex characters", s)
		}
		got, err := ParseID(s)
		if err != nil || got != id {
			t.Fatalf("ParseID(%q) = %s, %v; want %s", s, got, err, id)
		}
	}
}

func TestIDJSON(t *testing.T) {
	type rec struct {
		ID   ID        `json:"id"`
		ByID map[ID]ID `json:"by_id"`
	}
	in := rec{ID: RootID, ByID: map[ID]ID{RootID: {0: 0xab}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"00000000000000000000000000000001","by_id":{"00000000000000000000000000000001":"ab000000000000000000000000000000"}}`
	if string(b) != want {
		t.Fatalf("json = %s, want %s", b, want)
	}
	var out rec
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.ID != in.ID || out.ByID[RootID] != in.ByID[RootID] {
		t.Fatalf("round trip = %+v, want %+v", out, in)
	}
	if err := json.Unmarshal([]byte(`{"id":"xyz"}`), &out); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("bad id error = %v, want ErrInvalidID", err)
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{
		"", "00000000000000000000000000000001", "000102030405060708090A0B0C0D0E0F",
		"ffffffffffffffffffffffffffffffff", "0x000000000000000000000000000001",
		"00000000-0000-0000-0000-000000000001", "zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidID) {
				t.Fatalf("ParseID(%q) error %v does not wrap ErrInvalidID", s, err)
			}
			if id != (ID{}) {
				t.Fatalf("ParseID(%q) returned %s with an error", s, id)
			}
			return
		}
		if got := id.String(); got != strings.ToLower(s) {
			t.Fatalf("ParseID(%q).String() = %q", s, got)
		}
		again, err := ParseID(id.String())
		if err != nil || again != id {
			t.Fatalf("round trip of %s = %s, %v", id, again, err)
		}
	})
}
