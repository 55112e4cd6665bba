package actors

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/protobuf/proto"
)

// Tests of listen(), the QTcpServer getters (GetStatus), setSocketDescriptor()
// and setProxy(). Real Qt 6.4's behaviour is in docs/qt-behaviour.md; the
// finding numbers quoted below refer to it.

// ---------------------------------------------------------------------------
// listen()

func TestListenAcceptsTheClientsItsAddressCovers(t *testing.T) {
	const (
		v4   = messages.NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_IPV4
		v6   = messages.NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_IPV6
		dual = messages.NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_ANY_IP
	)
	cases := []struct {
		address  string
		want     string                        // serverAddress()
		protocol messages.NetworkLayerProtocol // serverAddress().protocol()
		v4, v6   bool                          // a 127.0.0.1 / ::1 client is accepted (else refused)
	}{
		{"127.0.0.1", "127.0.0.1", v4, true, false},
		{"::1", "::1", v6, false, true},
		{"", "0.0.0.0", dual, true, true}, // Any, dual stack; Qt reports it as 0.0.0.0, protocol AnyIP (2a)
		{"Any", "0.0.0.0", dual, true, true},
		{"any", "0.0.0.0", dual, true, true},
		{"AnyIPv4", "0.0.0.0", v4, true, false}, // the same address as Any, told apart by the protocol (2b)
		{"ANYIPV4", "0.0.0.0", v4, true, false},
		{"AnyIPv6", "::", v6, false, true}, // IPv6 only (2c)
		{"anyipv6", "::", v6, false, true},
		{"LocalHost", "127.0.0.1", v4, true, false},
		{"localhost", "127.0.0.1", v4, true, false},
		{"LocalHostIPv6", "::1", v6, false, true},
		{"LOCALHOSTIPV6", "::1", v6, false, true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%q", c.address), func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			r := ask[*messages.ListenResult](s, &messages.Listen{Address: c.address})
			if !r.Ok || r.Error.Failed() {
				t.Fatalf("listen(%q, 0): %v", c.address, r)
			}
			if r.Port == 0 || r.Address != c.want || r.Protocol != c.protocol {
				t.Fatalf("listen(%q, 0) reported %s (%v) port %d, want %s (%v) and the port picked",
					c.address, r.Address, r.Protocol, r.Port, c.want, c.protocol)
			}
			st := s.status()
			if !st.Listening || st.Address != r.Address || st.Port != r.Port || st.Protocol != r.Protocol {
				t.Fatalf("status %v does not match ListenResult %v", st, r)
			}
			accepted := 0
			for _, client := range []struct {
				ip   string
				want bool
			}{{"127.0.0.1", c.v4}, {"::1", c.v6}} {
				addr := net.JoinHostPort(client.ip, itoa(r.Port))
				if client.want {
					dial(t, addr)
					accepted++
				} else {
					mustBeRefused(t, addr)
				}
			}
			s.waitStatus(fmt.Sprintf("%d accepted and pending", accepted), func(st *messages.ServerStatus) bool {
				return st.AcceptedTotal == uint64(accepted) && st.Pending == int32(accepted)
			})
		})
	}
}

func TestListenOnAGivenPortUsesThatPort(t *testing.T) {
	port := freeLoopbackPort(t)
	s := startServer(t, ServerOptions{})
	r := ask[*messages.ListenResult](s, &messages.Listen{Address: "127.0.0.1", Port: port})
	if !r.Ok || r.Port != port || s.status().Port != port {
		t.Fatalf("listen(127.0.0.1, %d): %v, status port %d", port, r, s.status().Port)
	}
	dial(t, net.JoinHostPort("127.0.0.1", itoa(port)))
	s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
}

func TestListenFailureIsAQtSocketErrorAndLeavesTheServerWorking(t *testing.T) {
	holdPort := func(t *testing.T) uint32 { // a listening socket on 127.0.0.1
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return uint32(l.Addr().(*net.TCPAddr).Port)
	}
	bindPort := func(t *testing.T) uint32 { // bound, not listening, no SO_REUSEADDR
		fd := rawSocket(t, syscall.AF_INET, syscall.SOCK_STREAM, true, false)
		t.Cleanup(func() { syscall.Close(fd) })
		return socketPort(t, fd)
	}
	notAvailable := messages.SocketError_SOCKET_ERROR_SOCKET_ADDRESS_NOT_AVAILABLE
	unsupported := messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION
	cases := []struct {
		name    string
		address string
		port    func(*testing.T) uint32
		code    messages.SocketError
		text    string // in the error's readable text
	}{
		{"port in use", "127.0.0.1", holdPort, messages.SocketError_SOCKET_ERROR_ADDRESS_IN_USE, "The bound address is already in use"},
		{"port in use on 127.0.0.1, listen on AnyIPv4", "AnyIPv4", holdPort, messages.SocketError_SOCKET_ERROR_ADDRESS_IN_USE, "already in use"},
		{"port in use on 127.0.0.1, listen on Any", "Any", holdPort, messages.SocketError_SOCKET_ERROR_ADDRESS_IN_USE, "already in use"},
		{"port bound by a socket that does not listen", "127.0.0.1", bindPort, messages.SocketError_SOCKET_ERROR_ADDRESS_IN_USE, "already in use"},
		{"IPv4 address not on this host", nonLocalIPv4(t), nil, notAvailable, "The address is not available"},
		{"IPv6 address not on this host", "2001:db8::1", nil, notAvailable, "The address is not available"},
		{"port out of range", "127.0.0.1", func(*testing.T) uint32 { return 70000 }, notAvailable, "70000"},
		{"largest uint32 port", "127.0.0.1", func(*testing.T) uint32 { return 1<<32 - 1 }, notAvailable, "4294967295"},
		{"not an IP", "not-an-ip", nil, notAvailable, "not-an-ip"},
		{"three-part IPv4", "1.2.3", nil, notAvailable, "1.2.3"},
		{"IPv4 octet over 255", "256.0.0.1", nil, notAvailable, "256.0.0.1"},
		{"bad IPv6 digit", "::g", nil, notAvailable, "::g"},
		{"host and port", "127.0.0.1:80", nil, notAvailable, "127.0.0.1:80"},
		{"hostname", "example.com", nil, notAvailable, "example.com"},
		{"misspelt special name", "LocalHost6", nil, notAvailable, "LocalHost6"},
		// As Qt (20): an IPv4-mapped address is refused, not taken for its IPv4 address.
		{"IPv4-mapped loopback", "::ffff:127.0.0.1", nil, unsupported, "Unsupported socket operation"},
		{"IPv4-mapped wildcard", "::ffff:0.0.0.0", nil, unsupported, "IPv4-mapped"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var port uint32
			if c.port != nil {
				port = c.port(t)
			}
			s := startServer(t, ServerOptions{})
			r := ask[*messages.ListenResult](s, &messages.Listen{Address: c.address, Port: port})
			if r.Ok || r.Address != "" || r.Port != 0 {
				t.Fatalf("listen(%q, %d) = %v, want a failure", c.address, port, r)
			}
			if r.Error.GetCode() != c.code || !strings.Contains(r.Error.GetMessage(), c.text) {
				t.Fatalf("listen(%q, %d) error = %v %q, want %v mentioning %q", c.address, port, r.Error.GetCode(), r.Error.GetMessage(), c.code, c.text)
			}
			// serverError()/errorString() report it; the server is not listening.
			st := s.status()
			if st.Listening || st.Address != "" || st.Port != 0 || st.SocketDescriptor != -1 || !proto.Equal(st.Error, r.Error) {
				t.Fatalf("status after a failed listen: %v", st)
			}
			// The next listen works, and as in Qt (4b) the error stays.
			dial(t, s.listen())
			st = s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
			if !proto.Equal(st.Error, r.Error) {
				t.Fatalf("a successful listen changed serverError() from %v to %v", r.Error, st.Error)
			}
		})
	}
}

// As Qt (3, 11g): a second listen() or setSocketDescriptor() fails, leaves
// serverError() alone and keeps the first listener.
func TestListenWhileListeningFailsAndKeepsTheFirstListener(t *testing.T) {
	cases := []struct {
		name   string
		second func(t *testing.T) any
	}{
		{"same address", func(*testing.T) any { return &messages.Listen{Address: "127.0.0.1"} }},
		{"other address", func(*testing.T) any { return &messages.Listen{Address: "::1"} }},
		{"setSocketDescriptor", func(t *testing.T) any {
			fd := rawSocket(t, syscall.AF_INET, syscall.SOCK_STREAM, true, true)
			t.Cleanup(func() { syscall.Close(fd) })
			return &messages.SetSocketDescriptor{SocketDescriptor: int64(fd)}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			addr := s.listen()
			before := s.status()
			r := ask[*messages.ListenResult](s, c.second(t))
			if r.Ok || !r.Error.Failed() || !strings.Contains(r.Error.GetMessage(), "already listening") {
				t.Fatalf("second listen = %v, want an 'already listening' error", r)
			}
			st := s.status()
			if !st.Listening || st.Address != before.Address || st.Port != before.Port || st.SocketDescriptor != before.SocketDescriptor {
				t.Fatalf("status after the second listen %v, before %v", st, before)
			}
			if st.Error.Failed() {
				t.Fatalf("serverError() = %v; Qt leaves it alone when already listening", st.Error)
			}
			dial(t, addr)
			s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
		})
	}
}

// ---------------------------------------------------------------------------
// GetStatus: the QTcpServer getters

func TestGetStatusOfAServerThatNeverListenedGivesQtsDefaults(t *testing.T) {
	cases := []struct {
		name string
		opts ServerOptions
		want *messages.ServerStatus
	}{
		{"zero options", ServerOptions{}, &messages.ServerStatus{
			MaxPendingConnections: 30, SocketDescriptor: -1, Backlog: 50,
			Proxy: &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_DEFAULT},
		}},
		{"server options", ServerOptions{MaxPendingConnections: 5, Backlog: 7, MaxConnections: 9}, &messages.ServerStatus{
			MaxPendingConnections: 5, SocketDescriptor: -1, Backlog: 7, MaxConnections: 9,
			Proxy: &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_DEFAULT},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := startServer(t, c.opts)
			if st := s.status(); !proto.Equal(st, c.want) {
				t.Fatalf("status\n got %v\nwant %v", st, c.want)
			}
			if code := messages.QtCode(s.status().Error.GetCode()); code != -1 {
				t.Fatalf("serverError() = %d, want -1 (UnknownSocketError) as Qt", code)
			}
		})
	}
}

func TestGetStatusWhileListeningReportsTheListeningSocket(t *testing.T) {
	s := startServer(t, ServerOptions{})
	r := ask[*messages.ListenResult](s, &messages.Listen{Address: "::1",
		Options: &messages.ListenOptions{Backlog: 12, MaxConnections: 20}})
	if !r.Ok {
		t.Fatalf("listen: %v", r.Error)
	}
	st := s.status()
	want := &messages.ServerStatus{
		Listening: true, Address: "::1", Port: r.Port, MaxPendingConnections: 30,
		Protocol:         messages.NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_IPV6,
		SocketDescriptor: st.SocketDescriptor, Backlog: 12, MaxConnections: 20,
		Proxy: &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_DEFAULT},
	}
	if !proto.Equal(st, want) {
		t.Fatalf("status\n got %v\nwant %v", st, want)
	}
	// socketDescriptor() is the listening socket itself.
	fd := int(st.SocketDescriptor)
	if fd < 0 {
		t.Fatalf("socket descriptor %d while listening", fd)
	}
	if on, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err != nil || on != 1 {
		t.Fatalf("descriptor %d: SO_ACCEPTCONN = %d, %v; want a listening socket", fd, on, err)
	}
	if p := socketPort(t, fd); p != r.Port {
		t.Fatalf("descriptor %d is bound to port %d, the server to %d", fd, p, r.Port)
	}
}

func TestGetStatusCountsPendingActiveAndAcceptedConnections(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	for range 3 {
		dial(t, addr)
	}
	st := s.waitStatus("three pending", func(st *messages.ServerStatus) bool { return st.Pending == 3 })
	if !st.HasPendingConnections || st.Active != 3 || st.AcceptedTotal != 3 {
		t.Fatalf("status with three clients: %v", st)
	}
	owner := newProbe(t, s.sys)
	pc := ask[*messages.PendingConnection](s, &messages.NextPendingConnection{Owner: owner.pid})
	if pc.Connection == nil {
		t.Fatalf("nothing claimed: %v", pc)
	}
	st = s.status()
	if st.Pending != 2 || !st.HasPendingConnections || st.Active != 3 || st.AcceptedTotal != 3 {
		t.Fatalf("status after one claim: %v", st)
	}
	for range 2 {
		ask[*messages.PendingConnection](s, &messages.NextPendingConnection{Owner: owner.pid})
	}
	st = s.status()
	if st.Pending != 0 || st.HasPendingConnections || st.Active != 3 || st.AcceptedTotal != 3 {
		t.Fatalf("status after three claims: %v", st)
	}
	if a := ask[*messages.Ack](s, &messages.PauseAccepting{}); a.Error.Failed() {
		t.Fatal(a.Error)
	}
	if !s.status().Paused {
		t.Fatal("status does not report the pause")
	}
	// A claimed connection that ends is no longer active.
	sys := s.sys
	sys.Root.Send(pc.Connection, &messages.Abort{})
	s.waitStatus("two active", func(st *messages.ServerStatus) bool { return st.Active == 2 && st.AcceptedTotal == 3 })
}

// ---------------------------------------------------------------------------
// setSocketDescriptor()

func TestSetSocketDescriptorAdoptsAListeningTCPSocket(t *testing.T) {
	cases := []struct {
		name     string
		domain   int
		want     string
		protocol messages.NetworkLayerProtocol
	}{
		{"IPv4", syscall.AF_INET, "127.0.0.1", messages.NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_IPV4},
		{"IPv6", syscall.AF_INET6, "::1", messages.NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_IPV6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fd := rawSocket(t, c.domain, syscall.SOCK_STREAM, true, true)
			ino := fdInode(t, fd)
			port := socketPort(t, fd)
			s := startServer(t, ServerOptions{})
			r := ask[*messages.ListenResult](s, &messages.SetSocketDescriptor{SocketDescriptor: int64(fd)})
			if !r.Ok || r.Address != c.want || r.Port != port || r.Protocol != c.protocol {
				syscall.Close(fd)
				t.Fatalf("setSocketDescriptor(%d) = %v, want ok with %s port %d", fd, r, c.want, port)
			}
			st := s.status()
			if !st.Listening || st.Address != c.want || st.Port != port || st.Protocol != c.protocol || st.SocketDescriptor != int64(fd) {
				t.Fatalf("status after adopting descriptor %d: %v", fd, st)
			}
			dial(t, net.JoinHostPort(c.want, itoa(port)))
			s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })

			// The server adopted a duplicate: Close closes that one only,
			// never a descriptor number of its caller (which may name
			// another socket by then).
			ask[*messages.Closed](s, &messages.Close{})
			if err := fdGone(fd, ino); err == nil {
				t.Fatalf("Close closed the caller's descriptor %d", fd)
			}
			if st := s.status(); st.Listening || st.SocketDescriptor != -1 || st.Protocol != messages.NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_UNKNOWN {
				t.Fatalf("status after Close: %v", st)
			}
			syscall.Close(fd)
			mustBeRefused(t, net.JoinHostPort(c.want, itoa(port))) // no duplicate left listening
		})
	}
}

func TestSetSocketDescriptorRefusesWhatIsNotAListeningTCPSocket(t *testing.T) {
	unsupported := messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION
	sock := func(domain, typ int, bind, listen bool) func(t *testing.T) int {
		return func(t *testing.T) int { return rawSocket(t, domain, typ, bind, listen) }
	}
	cases := []struct {
		name string
		fd   func(t *testing.T) int // the test closes it afterwards
		code messages.SocketError
		text string
	}{
		{"a pipe", func(t *testing.T) int {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(); w.Close() })
			fd, err := syscall.Dup(int(r.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			return fd
		}, unsupported, "not a socket"},
		{"/dev/null", func(t *testing.T) int {
			fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			return fd
		}, unsupported, "not a socket"},
		{"a bound UDP socket", sock(syscall.AF_INET, syscall.SOCK_DGRAM, true, false), unsupported, "not a stream socket"},
		{"a bound TCP socket that does not listen", sock(syscall.AF_INET, syscall.SOCK_STREAM, true, false), unsupported, "not listening"},
		{"an unbound TCP socket", sock(syscall.AF_INET6, syscall.SOCK_STREAM, false, false), unsupported, "not listening"},
		{"a listening Unix socket", func(t *testing.T) int {
			fd, err := socketCloexec(syscall.AF_UNIX, syscall.SOCK_STREAM)
			if err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("@tcpactor-test-%d-%d", os.Getpid(), fd)
			if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: name}); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Listen(fd, 4); err != nil {
				t.Fatal(err)
			}
			return fd
		}, unsupported, "not a TCP socket"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fd := c.fd(t)
			defer syscall.Close(fd)
			ino := fdInode(t, fd)
			s := startServer(t, ServerOptions{})
			r := ask[*messages.ListenResult](s, &messages.SetSocketDescriptor{SocketDescriptor: int64(fd)})
			if r.Ok || r.Error.GetCode() != c.code || !strings.Contains(r.Error.GetMessage(), c.text) {
				t.Fatalf("setSocketDescriptor(%s) = %v, want %v mentioning %q", c.name, r, c.code, c.text)
			}
			// The descriptor still belongs to the caller: not closed, not taken.
			if got := fdInode(t, fd); got != ino {
				t.Fatalf("descriptor %d changed from inode %d to %d", fd, ino, got)
			}
			st := s.status()
			if st.Listening || st.SocketDescriptor != -1 || !proto.Equal(st.Error, r.Error) {
				t.Fatalf("status after a refused descriptor: %v", st)
			}
			dial(t, s.listen())
			s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
		})
	}
}

// As Qt (11e): a descriptor that is not open is UnsupportedSocketOperation,
// "Invalid socket descriptor".
func TestSetSocketDescriptorRefusesADescriptorThatIsNotOpen(t *testing.T) {
	fd := unusedFD(t)
	s := startServer(t, ServerOptions{})
	r := ask[*messages.ListenResult](s, &messages.SetSocketDescriptor{SocketDescriptor: int64(fd)})
	if r.Ok || r.Error.GetCode() != messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION ||
		!strings.Contains(r.Error.GetMessage(), "Invalid socket descriptor") {
		t.Fatalf("setSocketDescriptor(%d) = %v", fd, r)
	}
	if st := s.status(); st.Listening || st.SocketDescriptor != -1 || !proto.Equal(st.Error, r.Error) {
		t.Fatalf("status: %v", st)
	}
	dial(t, s.listen())
	s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
}

// ---------------------------------------------------------------------------
// setProxy()

func TestSetProxyKeepsAProxyThatCanListen(t *testing.T) {
	s := startServer(t, ServerOptions{})
	for _, p := range []*messages.NetworkProxy{
		{Type: messages.ProxyType_PROXY_TYPE_NO_PROXY},
		{Type: messages.ProxyType_PROXY_TYPE_DEFAULT},
		{Type: messages.ProxyType_PROXY_TYPE_NO_PROXY, Host: "ignored.example", Port: 1080},
		{Type: messages.ProxyType_PROXY_TYPE_SOCKS5, Host: "127.0.0.1", Port: 1080}, // listens through it (server_socks_test.go)
		{Type: messages.ProxyType_PROXY_TYPE_NO_PROXY},
	} {
		if a := ask[*messages.Ack](s, &messages.SetProxy{Proxy: p}); a.Error.Failed() {
			t.Fatalf("setProxy(%v): %v", p, a.Error)
		}
		if got := s.status().Proxy; !proto.Equal(got, p) {
			t.Fatalf("proxy() = %v after setProxy(%v)", got, p)
		}
	}
	dial(t, s.listen())
	s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
}

func TestSetProxyRefusesAProxyThatCannotListen(t *testing.T) {
	unsupported := messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION
	operation := messages.SocketError_SOCKET_ERROR_OPERATION
	cases := []struct {
		name  string
		proxy *messages.NetworkProxy
		code  messages.SocketError
		text  string
	}{
		{"SOCKS5 without a host", &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_SOCKS5, Port: 1080}, operation, "host and a port"},
		{"SOCKS5 without a port", &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_SOCKS5, Host: "127.0.0.1"}, operation, "host and a port"},
		{"HTTP", &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_HTTP, Host: "127.0.0.1", Port: 3128}, unsupported, "not supported"},
		{"HTTP caching", &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_HTTP_CACHING}, unsupported, "not supported"},
		{"FTP caching", &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_FTP_CACHING}, unsupported, "not supported"},
		{"no proxy given", nil, operation, "no proxy"},
		{"unknown type", &messages.NetworkProxy{Type: messages.ProxyType(99)}, operation, "99"},
		{"negative type", &messages.NetworkProxy{Type: messages.ProxyType(-1)}, operation, "-1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			kept := &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_NO_PROXY}
			ask[*messages.Ack](s, &messages.SetProxy{Proxy: kept})
			a := ask[*messages.Ack](s, &messages.SetProxy{Proxy: c.proxy})
			if a.Error.GetCode() != c.code || !strings.Contains(a.Error.GetMessage(), c.text) {
				t.Fatalf("setProxy(%v) = %v, want %v mentioning %q", c.proxy, a.Error, c.code, c.text)
			}
			if got := s.status().Proxy; !proto.Equal(got, kept) {
				t.Fatalf("proxy() = %v after a refused setProxy, want %v", got, kept)
			}
			dial(t, s.listen())
			s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
		})
	}
}

// ---------------------------------------------------------------------------
// helpers

// mustBeRefused dials addr and expects ECONNREFUSED: nothing listens there.
func mustBeRefused(t testing.TB, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, replyTimeout)
	if err == nil {
		c.Close()
		t.Fatalf("dial %s connected; want it refused", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v; want connection refused", addr, err)
	}
}

// freeLoopbackPort returns a port that was free on 127.0.0.1 a moment ago.
func freeLoopbackPort(t testing.TB) uint32 {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint32(l.Addr().(*net.TCPAddr).Port)
}

// nonLocalIPv4 returns a documentation address (RFC 5737) this host does not
// have, so binding to it fails without any traffic.
func nonLocalIPv4(t testing.TB) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	local := map[string]bool{}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			local[n.IP.String()] = true
		}
	}
	for _, ip := range []string{"192.0.2.1", "198.51.100.1", "203.0.113.1", "192.0.2.77"} {
		if !local[ip] {
			return ip
		}
	}
	t.Fatal("every documentation address is on this host")
	return ""
}

// rawSocket makes a socket with plain system calls, so that no os.File (and
// no finalizer) owns it: the test decides who closes it. bind binds it to the
// loopback address of its family with a port the kernel picks.
func rawSocket(t testing.TB, domain, typ int, bind, listen bool) int {
	t.Helper()
	fd, err := socketCloexec(domain, typ)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	if bind {
		var sa syscall.Sockaddr = &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
		if domain == syscall.AF_INET6 {
			sa = &syscall.SockaddrInet6{Addr: [16]byte{15: 1}}
		}
		if err := syscall.Bind(fd, sa); err != nil {
			syscall.Close(fd)
			t.Fatalf("bind: %v", err)
		}
	}
	if listen {
		if err := syscall.Listen(fd, 16); err != nil {
			syscall.Close(fd)
			t.Fatalf("listen: %v", err)
		}
	}
	return fd
}

// socketPort is the local port of an IP socket descriptor.
func socketPort(t testing.TB, fd int) uint32 {
	t.Helper()
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname(%d): %v", fd, err)
	}
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return uint32(a.Port)
	case *syscall.SockaddrInet6:
		return uint32(a.Port)
	}
	t.Fatalf("descriptor %d is not an IP socket: %T", fd, sa)
	return 0
}

// fdInode identifies what an open descriptor refers to.
func fdInode(t testing.TB, fd int) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		t.Fatalf("fstat(%d): %v", fd, err)
	}
	return st.Ino
}

// fdGone reports nil when descriptor fd no longer refers to inode ino: it is
// closed, or its number was reused for something else.
func fdGone(fd int, ino uint64) error {
	var st syscall.Stat_t
	err := syscall.Fstat(fd, &st)
	switch {
	case errors.Is(err, syscall.EBADF):
		return nil
	case err != nil:
		return err
	case st.Ino == ino:
		return errors.New("still open")
	}
	return nil
}

// unusedFD returns a descriptor number that is not open in this process.
func unusedFD(t testing.TB) int {
	t.Helper()
	var st syscall.Stat_t
	for fd := 9999; fd < 20000; fd++ {
		if errors.Is(syscall.Fstat(fd, &st), syscall.EBADF) {
			return fd
		}
	}
	t.Fatal("no free descriptor number")
	return -1
}
