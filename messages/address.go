package messages

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// The special host addresses of Qt's QHostAddress::SpecialAddress that a
// Listen may name instead of an IP literal.
const (
	AddressAny           = "Any"           // dual stack: IPv6 "::" accepting IPv4 too
	AddressAnyIPv4       = "AnyIPv4"       // 0.0.0.0
	AddressAnyIPv6       = "AnyIPv6"       // :: (IPv6 only)
	AddressLocalHost     = "LocalHost"     // 127.0.0.1
	AddressLocalHostIPv6 = "LocalHostIPv6" // ::1
)

// ListenAddr is a parsed Listen address: what to pass to net.ListenConfig.
type ListenAddr struct {
	Network string // "tcp" (dual stack), "tcp4" or "tcp6"
	Host    string // IP literal, "" for the dual-stack wildcard
}

// ParseListenAddress turns a Listen address (IP literal or special name,
// case-insensitive; "" means Any) into a network and host for net.Listen.
// A malformed address returns a SocketAddressNotAvailable error, an
// IPv4-mapped IPv6 one (::ffff:127.0.0.1) UnsupportedSocketOperation, as Qt.
//
// White space around the address is ignored, as QHostAddress does (it parses
// the address simplified()): " 127.0.0.1 " is 127.0.0.1.
func ParseListenAddress(address string) (ListenAddr, *Error) {
	trimmed := strings.TrimSpace(address)
	switch strings.ToLower(trimmed) {
	case "", "any":
		return ListenAddr{Network: "tcp", Host: ""}, nil
	case "anyipv4":
		return ListenAddr{Network: "tcp4", Host: "0.0.0.0"}, nil
	case "anyipv6":
		return ListenAddr{Network: "tcp6", Host: "::"}, nil
	case "localhost":
		return ListenAddr{Network: "tcp4", Host: "127.0.0.1"}, nil
	case "localhostipv6":
		return ListenAddr{Network: "tcp6", Host: "::1"}, nil
	}
	ip, err := netip.ParseAddr(trimmed)
	if err != nil {
		return ListenAddr{}, NewError(SocketError_SOCKET_ERROR_SOCKET_ADDRESS_NOT_AVAILABLE,
			"malformed address %q: want an IP literal or one of Any, AnyIPv4, AnyIPv6, LocalHost, LocalHostIPv6", address)
	}
	if ip.Zone() != "" && !ip.Is6() {
		return ListenAddr{}, NewError(SocketError_SOCKET_ERROR_SOCKET_ADDRESS_NOT_AVAILABLE, "malformed address %q", address)
	}
	if ip.Is4In6() {
		// As Qt: an IPv4-mapped address is neither an IPv4 listener nor
		// an IPv6 one.
		return ListenAddr{}, NewError(SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION,
			"Unsupported socket operation: %s is an IPv4-mapped IPv6 address; listen on %s (or Any, which takes both)",
			trimmed, ip.Unmap())
	}
	if ip.Is4() {
		return ListenAddr{Network: "tcp4", Host: ip.String()}, nil
	}
	return ListenAddr{Network: "tcp6", Host: ip.String()}, nil
}

// HostPort splits a net.Addr of a TCP socket into Qt's address string and
// port. IPv4-mapped IPv6 addresses are reported as IPv4, as Qt does.
func HostPort(a net.Addr) (string, uint32) {
	if a == nil {
		return "", 0
	}
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return ap.Addr().Unmap().WithZone(ap.Addr().Zone()).String(), uint32(ap.Port())
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String(), 0
	}
	return ap.Addr().Unmap().String(), uint32(ap.Port())
}

// ProtocolOf is QHostAddress::protocol() of an address as HostPort reports
// it: IPv4, IPv6, or UNKNOWN for "" (the null address). Only the listener
// knows whether 0.0.0.0 stands for the dual-stack Any (ANY_IP).
func ProtocolOf(address string) NetworkLayerProtocol {
	ip, err := netip.ParseAddr(address)
	switch {
	case err != nil:
		return NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_UNKNOWN
	case ip.Is4():
		return NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_IPV4
	}
	return NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_IPV6
}

// CheckListenPort checks a Listen port (Qt's ports are 16-bit) and returns
// it as net.Listen takes it, or a SocketAddressNotAvailable error.
func CheckListenPort(port uint32) (string, *Error) {
	if port > 65535 {
		return "", NewError(SocketError_SOCKET_ERROR_SOCKET_ADDRESS_NOT_AVAILABLE, "port %d out of range 0-65535", port)
	}
	return fmt.Sprint(port), nil
}

// SplitHostPort splits "HOST:PORT" (an IPv6 HOST in brackets) into its host
// and its port, 0 to 65535. The host is not checked: it may be a name, an
// IP literal or one of the special addresses of a Listen. The error quotes
// s and says what was wanted.
func SplitHostPort(s string) (host string, port uint16, err error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%q: want HOST:PORT", s)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q: port must be a number from 0 to 65535", s)
	}
	return host, uint16(n), nil
}

// ParseListen parses "HOST:PORT" into a Listen request (HOST as in Listen:
// an IP literal or a special address such as Any or LocalHost, checked by
// the server when it listens).
func ParseListen(hostPort string) (*Listen, error) {
	host, port, err := SplitHostPort(hostPort)
	if err != nil {
		return nil, err
	}
	return &Listen{Address: host, Port: uint32(port)}, nil
}
