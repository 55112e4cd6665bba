package messages

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzParseListenAddress feeds arbitrary Listen addresses to the parser
// every ServerActor uses. A malformed one is a SocketAddressNotAvailable
// error naming it, an IPv4-mapped one UnsupportedSocketOperation (as Qt); a good one gives a network net.Listen knows and a host
// that is an IP literal (or "" for the dual-stack wildcard) which parses to
// itself again.
func FuzzParseListenAddress(f *testing.F) {
	for _, s := range []string{"", "Any", "anyipv4", "AnyIPv6", "LocalHost", "LocalHostIPv6", "127.0.0.1",
		"::1", "::ffff:127.0.0.1", "fe80::1%lo", "1.2.3.4%eth0", "256.0.0.1", " localhost ", "[::1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, address string) {
		a, e := ParseListenAddress(address)
		if e != nil {
			if ip, err := netip.ParseAddr(strings.TrimSpace(address)); err == nil && ip.Is4In6() {
				// As Qt: an IPv4-mapped address is refused, not malformed.
				if e.Code != SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION {
					t.Fatalf("ParseListenAddress(%q) error %v, want UnsupportedSocketOperation", address, e)
				}
				return
			}
			if e.Code != SocketError_SOCKET_ERROR_SOCKET_ADDRESS_NOT_AVAILABLE || !strings.Contains(e.Message, "malformed address") {
				t.Fatalf("ParseListenAddress(%q) error %v, want SocketAddressNotAvailable \"malformed address\"", address, e)
			}
			return
		}
		switch a.Network {
		case "tcp":
			if a.Host != "" {
				t.Fatalf("ParseListenAddress(%q) = %+v: the dual-stack wildcard has no host", address, a)
			}
			return
		case "tcp4", "tcp6":
		default:
			t.Fatalf("ParseListenAddress(%q) = %+v: unknown network", address, a)
		}
		ip, err := netip.ParseAddr(a.Host)
		if err != nil {
			t.Fatalf("ParseListenAddress(%q) = %+v: host is not an IP literal: %v", address, a, err)
		}
		if ip.Is4() != (a.Network == "tcp4") {
			t.Fatalf("ParseListenAddress(%q) = %+v: network and host disagree", address, a)
		}
		again, e := ParseListenAddress(a.Host)
		if e != nil || again != a {
			t.Fatalf("ParseListenAddress(%q) = %+v, but its host parses to %+v, %v", address, a, again, e)
		}
	})
}
