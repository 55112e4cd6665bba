package actors

import (
	"net"
	"syscall"
	"testing"

	"github.com/tcpactor/tcpactor/messages"
)

// dupFD duplicates a listener's descriptor for SetSocketDescriptor, which
// then owns the duplicate.
func dupFD(t *testing.T, ln net.Listener) int64 {
	t.Helper()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(u uintptr) { fd, derr = syscall.Dup(int(u)) }); err != nil || derr != nil {
		t.Fatal(err, derr)
	}
	return int64(fd)
}

// A descriptor bound to [::] with IPV6_V6ONLY off takes IPv4 clients too:
// as Qt, setSocketDescriptor reports it as Any (0.0.0.0, ANY_IP), the same
// as a Listen on Any, while an IPv6-only [::] stays AnyIPv6.
func TestSetSocketDescriptorReportsADualStackSocketAsAny(t *testing.T) {
	for _, c := range []struct {
		network, address string
		protocol         messages.NetworkLayerProtocol
	}{
		{"tcp", "0.0.0.0", messages.NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_ANY_IP}, // Go's dual-stack [::]
		{"tcp6", "::", messages.NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_IPV6},
	} {
		t.Run(c.network, func(t *testing.T) {
			ln, err := net.Listen(c.network, ":0")
			if err != nil {
				t.Skipf("no %s wildcard here: %v", c.network, err)
			}
			defer ln.Close()
			s := startServer(t, ServerOptions{})
			r := ask[*messages.ListenResult](s, &messages.SetSocketDescriptor{SocketDescriptor: dupFD(t, ln)})
			if !r.Ok || r.Address != c.address || r.Protocol != c.protocol {
				t.Fatalf("setSocketDescriptor of a %s [::] socket: %v, want %s %v", c.network, r, c.address, c.protocol)
			}
			if st := s.status(); st.Address != c.address || st.Protocol != c.protocol {
				t.Fatalf("status: %s %v", st.Address, st.Protocol)
			}
		})
	}
}
