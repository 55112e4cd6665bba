package messages

import (
	"strings"
	"testing"
)

// ParseListen is the one parser of HOST:PORT for a Listen: the cluster
// kind's identities, the examples' --listen and the CLI's flags
// (SplitHostPort) all go through it, so they accept and refuse the same.
func TestParseListenSplitsHostAndPortAndRefusesWhatIsNotHostPort(t *testing.T) {
	for in, want := range map[string]*Listen{
		"127.0.0.1:7070": {Address: "127.0.0.1", Port: 7070},
		"[::1]:0":        {Address: "::1", Port: 0},
		"Any:65535":      {Address: "Any", Port: 65535},
		":8080":          {Address: "", Port: 8080},
		"localhost:1":    {Address: "localhost", Port: 1},
	} {
		got, err := ParseListen(in)
		if err != nil || got.Address != want.Address || got.Port != want.Port {
			t.Errorf("ParseListen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"127.0.0.1":       "want HOST:PORT",
		"::1:80":          "want HOST:PORT",
		"":                "want HOST:PORT",
		"127.0.0.1:65536": "port must be a number from 0 to 65535",
		"127.0.0.1:-1":    "port must be a number from 0 to 65535",
		"127.0.0.1:http":  "port must be a number from 0 to 65535",
	} {
		l, err := ParseListen(in)
		if err == nil || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), `"`+in+`"`) {
			t.Errorf("ParseListen(%q) = %v, %v; want an error quoting it that says %q", in, l, err, why)
		}
	}
}

// QHostAddress parses an address simplified(): white space around an IP
// literal is ignored (PyQt6 on Qt 6.4: QHostAddress("127.0.0.1 ") is
// 127.0.0.1, QHostAddress("::ffff:0.0.0.0 ") the IPv4-mapped ::ffff:0.0.0.0),
// as it already was around the special names.
func TestParseListenAddressIgnoresWhiteSpaceAroundAnIPLiteralAsQHostAddress(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ListenAddr
	}{
		{"127.0.0.1 ", ListenAddr{"tcp4", "127.0.0.1"}},
		{" ::1", ListenAddr{"tcp6", "::1"}},
		{"1.2.3.4\t", ListenAddr{"tcp4", "1.2.3.4"}},
		{" localhost ", ListenAddr{"tcp4", "127.0.0.1"}},
	} {
		if got, e := ParseListenAddress(tc.in); e != nil || got != tc.want {
			t.Errorf("ParseListenAddress(%q) = %+v, %v; want %+v", tc.in, got, e, tc.want)
		}
	}
	if _, e := ParseListenAddress("::ffff:0.0.0.0 "); e.GetCode() != SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION {
		t.Errorf("ParseListenAddress(%q) error %v, want UnsupportedSocketOperation as for the address without the space", "::ffff:0.0.0.0 ", e)
	}
	if _, e := ParseListenAddress("127.0.0 .1"); e.GetCode() != SocketError_SOCKET_ERROR_SOCKET_ADDRESS_NOT_AVAILABLE {
		t.Errorf("white space inside an address: error %v, want SocketAddressNotAvailable", e)
	}
}
