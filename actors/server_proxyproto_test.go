package actors

import (
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/tcpactor/tcpactor/messages"
)

// ServerOptions.ProxyProtocol: the header a load balancer writes before the
// client's bytes (here written by go-proxyproto's own encoder on a real
// socket; cmd/tcpactor tests it behind a real HAProxy).

func proxyServer(t *testing.T, trusted string, timeout time.Duration) (*testServer, string, *probe) {
	t.Helper()
	s := startServer(t, ServerOptions{
		ProxyProtocol: &ProxyProtocol{Trusted: []netip.Prefix{netip.MustParsePrefix(trusted)}, HeaderTimeout: timeout},
		Connection:    ConnectionConfig{Handler: EchoHandler()},
	})
	addr := s.listen()
	sub := newProbe(t, s.sys)
	subscribe(s, sub.pid)
	return s, addr, sub
}

// dialFrom connects from a given loopback source address.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: replyTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(4 * replyTimeout))
	return c
}

func TestProxyProtocolHeaderMakesTheClientsAddressThePeerAddress(t *testing.T) {
	for _, version := range []byte{1, 2} {
		t.Run("v"+strconv.Itoa(int(version)), func(t *testing.T) {
			s, addr, sub := proxyServer(t, "127.0.0.1/32", 0)
			c := dialFrom(t, "127.0.0.1", addr)
			hdr := &proxyproto.Header{
				Version: version, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
				SourceAddr:      &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 40001},
				DestinationAddr: &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 443},
			}
			raw, err := hdr.Format()
			if err != nil {
				t.Fatal(err)
			}
			// The header and the client's first bytes in one segment, as a
			// balancer may send them: nothing after the header is lost.
			if _, err := c.Write(append(raw, "first bytes\n"...)); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len("first bytes\n"))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "first bytes\n" {
				t.Fatalf("echo after the header: %q (%v)", got, err)
			}
			tlsEcho(t, c, randomBytes(200_000))

			ev := next[*messages.NewConnection](t, sub)
			if i := ev.Info; i.PeerAddress != "203.0.113.7" || i.PeerPort != 40001 || i.LocalAddress != "198.51.100.1" || i.LocalPort != 443 {
				t.Errorf("NewConnection info %s:%d → %s:%d, want the header's 203.0.113.7:40001 → 198.51.100.1:443",
					i.PeerAddress, i.PeerPort, i.LocalAddress, i.LocalPort)
			}
			st := ask[*messages.ServerStatus](s, &messages.GetStatus{Connections: true})
			if len(st.Connections) != 1 || st.Connections[0].PeerAddress != "203.0.113.7" || st.Connections[0].PeerPort != 40001 {
				t.Errorf("GetStatus{connections}: %v, want the one connection from 203.0.113.7:40001", st.Connections)
			}
			if plain := s.status(); len(plain.Connections) != 0 {
				t.Errorf("GetStatus without connections listed %d", len(plain.Connections))
			}
		})
	}
}

func TestProxyProtocolRefusesUntrustedLateAndBadHeaders(t *testing.T) {
	s, addr, sub := proxyServer(t, "127.0.0.1/32", 300*time.Millisecond)
	good := &proxyproto.Header{Version: 1, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
		SourceAddr: &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 1}, DestinationAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 2}}
	raw, _ := good.Format()
	for i, tc := range []struct {
		name string
		src  string
		send []byte
		want messages.SocketError
	}{
		{"a valid header from an untrusted source", "127.0.0.2", raw, messages.SocketError_SOCKET_ERROR_PROXY_PROTOCOL},
		{"no header", "127.0.0.1", []byte("GET / HTTP/1.0\r\n\r\n"), messages.SocketError_SOCKET_ERROR_PROXY_PROTOCOL},
		{"a malformed v1 header", "127.0.0.1", []byte("PROXY TCP4 not-an-ip 1.2.3.4 1 2\r\n"), messages.SocketError_SOCKET_ERROR_PROXY_PROTOCOL},
		{"silence", "127.0.0.1", nil, messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT},
	} {
		c := dialFrom(t, tc.src, addr)
		if tc.send != nil {
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
		}
		ev := next[*messages.HandshakeFailed](t, sub)
		if ev.Error.GetCode() != tc.want || ev.PeerAddress != tc.src || ev.PeerPort != dialedPort(c) {
			t.Errorf("%s: HandshakeFailed %v, want %v from %s:%d", tc.name, ev, tc.want, tc.src, dialedPort(c))
		}
		expectClosedByServer(t, c)
		if st := s.status(); st.ProxyHeaderFailures != uint64(i+1) || st.HandshakeFailures != 0 || st.Active != 0 {
			t.Errorf("%s: proxy header failures %d, handshake failures %d, active %d; want %d, 0, 0",
				tc.name, st.ProxyHeaderFailures, st.HandshakeFailures, st.Active, i+1)
		}
	}
	c := dialFrom(t, "127.0.0.1", addr)
	if _, err := c.Write(append(raw, "served\n"...)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 7)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "served\n" {
		t.Fatalf("after the refusals: %q (%v)", got, err)
	}
}
