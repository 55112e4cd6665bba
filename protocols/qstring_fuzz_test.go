package protocols_test

import (
	"encoding/binary"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tcpactor/tcpactor/protocols"
)

// readQString reads one QString as Qt's `QDataStream >> QString` does
// (stream version Qt_4_0 and later): a big-endian quint32 byte length
// (0xFFFFFFFF: a null string), then that many bytes of UTF-16 code units,
// big-endian. It is written from Qt's documentation, independently of
// protocols.QString, and returns the bytes left after the string.
func readQString(b []byte) (s string, null bool, rest []byte, ok bool) {
	if len(b) < 4 {
		return "", false, nil, false
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if n == 0xFFFFFFFF {
		return "", true, b, true
	}
	if n%2 != 0 || uint64(n) > uint64(len(b)) {
		return "", false, nil, false
	}
	units := make([]uint16, n/2)
	for i := range units {
		units[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(units)), false, b[n:], true
}

// FuzzQStringRoundTrip checks protocols.QString, the Fortune Server's
// `QDataStream << QString`, against a reader written from Qt's format: the
// length prefix is the exact byte count of the UTF-16 that follows, never
// the null marker, and reading it back gives the string (invalid UTF-8
// becomes U+FFFD, as Go's []rune conversion makes it).
// Two strings written back to back read back as two.
func FuzzQStringRoundTrip(f *testing.F) {
	f.Fuzz(func(t *testing.T, s, s2 string) {
		want := string([]rune(s))
		b := protocols.QString(s)
		if n := binary.BigEndian.Uint32(b); int(n) != len(b)-4 || n == 0xFFFFFFFF {
			t.Fatalf("QString(%q): length prefix %d for %d bytes of UTF-16", s, n, len(b)-4)
		}
		got, null, rest, ok := readQString(append(b, protocols.QString(s2)...))
		if !ok || null || got != want {
			t.Fatalf("QString(%q) reads back as %q (null %t, ok %t), want %q", s, got, null, ok, want)
		}
		got2, _, rest, ok := readQString(rest)
		if !ok || got2 != string([]rune(s2)) || len(rest) != 0 {
			t.Fatalf("the second of two QStrings (%q) reads back as %q, %d bytes left", s2, got2, len(rest))
		}
		if !utf8.ValidString(got) {
			t.Fatalf("QString(%q) reads back as invalid UTF-8 %q", s, got)
		}
	})
}
