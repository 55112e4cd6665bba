package actors

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// QSslServer: ServerOptions.TLS and Listen.options.tls. Each accepted
// connection shakes hands in a goroutine of its own under the handshake
// time-out; a failure is a HandshakeFailed event, never a stalled server.

// tlsEchoServer is a TLS echo server requiring client certificates signed by
// certs' CA, with a hook that records what it was handed.
func tlsEchoServer(t *testing.T, certs *testkit.Certs, timeout time.Duration, hooked chan<- net.Conn) (*testServer, string) {
	t.Helper()
	cfg, err := TLSServerConfig(certs.ServerCertPEM, certs.ServerKeyPEM, certs.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	opts := ServerOptions{TLS: cfg, HandshakeTimeout: timeout, Connection: ConnectionConfig{Handler: EchoHandler()}}
	if hooked != nil {
		opts.IncomingConnection = func(_ context.Context, c net.Conn) (net.Conn, error) {
			hooked <- c
			return c, nil
		}
	}
	s := startServer(t, opts)
	return s, s.listen()
}

// dialTLS connects a crypto/tls client and finishes its handshake.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: replyTimeout}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(4 * replyTimeout))
	return c
}

// tlsEcho sends data through c and reads back as many bytes, which must be
// the same.
func tlsEcho(t *testing.T, c net.Conn, data []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { _, err := c.Write(data); errc <- err }()
	got := make([]byte, len(data))
	_, rerr := io.ReadFull(c, got)
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if rerr != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo of %d bytes came back different (%v)", len(data), rerr)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(b)
	return b
}

func TestTLSServerEchoesByteExactAndReportsTheSession(t *testing.T) {
	certs := testkit.NewCerts(t)
	hooked := make(chan net.Conn, 1)
	s, addr := tlsEchoServer(t, certs, 0, hooked)
	sub := newProbe(t, s.sys)
	subscribe(s, sub.pid)

	c := dialTLS(t, addr, certs.ClientConfig(t, true))
	tlsEcho(t, c, randomBytes(1<<20+17))
	tlsEcho(t, c, []byte("and a short one\n"))

	if h, ok := (<-hooked).(*tls.Conn); !ok || !h.ConnectionState().HandshakeComplete {
		t.Errorf("the incomingConnection hook got %T, want a *tls.Conn with its handshake done", h)
	}
	ev := next[*messages.NewConnection](t, sub)
	cs := c.ConnectionState()
	if info := ev.Info; info.TlsVersion != tls.VersionName(cs.Version) || info.TlsCipher != tls.CipherSuiteName(cs.CipherSuite) ||
		info.TlsVersion == "" || info.PeerCertificateSubject != certs.ClientSubject {
		t.Errorf("NewConnection info: version %q cipher %q subject %q; want %q %q %q", info.TlsVersion, info.TlsCipher,
			info.PeerCertificateSubject, tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), certs.ClientSubject)
	}
	if got := info(t, s.sys, ev.Connection); got.TlsVersion != ev.Info.TlsVersion || got.PeerCertificateSubject != certs.ClientSubject {
		t.Errorf("GetInfo: version %q subject %q", got.TlsVersion, got.PeerCertificateSubject)
	}
	if st := s.status(); !st.Tls || st.HandshakeFailures != 0 {
		t.Errorf("status: tls %v, handshake failures %d; want true, 0", st.Tls, st.HandshakeFailures)
	}
}

// readToEnd reads what the server sends (a TLS alert, perhaps) until it
// closes; a time-out means the connection stayed open.
func readToEnd(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(4 * replyTimeout))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the server did not close a connection whose handshake failed")
			}
			return
		}
	}
}

func TestFailedTLSHandshakeIsPublishedCountedAndTheServerGoesOn(t *testing.T) {
	certs := testkit.NewCerts(t)
	s, addr := tlsEchoServer(t, certs, 0, nil)
	sub := newProbe(t, s.sys)
	subscribe(s, sub.pid)

	for i, client := range []struct {
		name string
		talk func() (port uint32)
	}{
		{"plain text", func() uint32 {
			c := dial(t, addr)
			io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
			readToEnd(t, c)
			return dialedPort(c)
		}},
		{"no client certificate", func() uint32 {
			raw := dial(t, addr)
			c := tls.Client(raw, certs.ClientConfig(t, false))
			c.SetDeadline(time.Now().Add(4 * replyTimeout))
			// TLS 1.3: the client learns of the refusal on its first read.
			_ = c.Handshake()
			_, err := c.Read(make([]byte, 1))
			if err == nil {
				t.Error("a client without a certificate read data")
			}
			return dialedPort(raw)
		}},
	} {
		port := client.talk()
		ev := next[*messages.HandshakeFailed](t, sub)
		if ev.Error.GetCode() != messages.SocketError_SOCKET_ERROR_SSL_HANDSHAKE_FAILED || ev.PeerAddress != "127.0.0.1" ||
			ev.PeerPort != port || !ev.Server.Equal(s.pid) {
			t.Errorf("%s: HandshakeFailed %v, want SSL_HANDSHAKE_FAILED from 127.0.0.1:%d", client.name, ev, port)
		}
		if st := s.status(); st.HandshakeFailures != uint64(i+1) || st.Active != 0 || st.Error != nil {
			t.Errorf("%s: status handshake failures %d, active %d, error %v; want %d, 0, none",
				client.name, st.HandshakeFailures, st.Active, st.Error, i+1)
		}
	}
	tlsEcho(t, dialTLS(t, addr, certs.ClientConfig(t, true)), []byte("still serving\n"))
}

func TestTLSHandshakeTimeOutDropsASilentClientWithoutHoldingTheServer(t *testing.T) {
	certs := testkit.NewCerts(t)
	const timeout = 300 * time.Millisecond
	s, addr := tlsEchoServer(t, certs, timeout, nil)
	sub := newProbe(t, s.sys)
	subscribe(s, sub.pid)

	silent := dial(t, addr)
	s.waitStatus("the silent client in its handshake", func(st *messages.ServerStatus) bool { return st.Active == 1 })
	// While the silent client holds its handshake, others are served.
	tlsEcho(t, dialTLS(t, addr, certs.ClientConfig(t, true)), []byte("served meanwhile\n"))

	ev := next[*messages.HandshakeFailed](t, sub)
	if ev.Error.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT || ev.PeerPort != dialedPort(silent) {
		t.Errorf("HandshakeFailed %v, want SOCKET_TIMEOUT for port %d", ev, dialedPort(silent))
	}
	expectClosedByServer(t, silent)
	if st := s.status(); st.HandshakeFailures != 1 {
		t.Errorf("handshake failures %d, want 1", st.HandshakeFailures)
	}
}

func TestListenOptionsTLSServesTLSAndRefusesBadKeys(t *testing.T) {
	certs := testkit.NewCerts(t)
	s := startServer(t, ServerOptions{Connection: ConnectionConfig{Handler: EchoHandler()}})
	for _, tc := range []struct {
		name string
		tls  *messages.TlsServerOptions
		want messages.SocketError
	}{
		{"no key", &messages.TlsServerOptions{CertificatePem: certs.ServerCertPEM}, messages.SocketError_SOCKET_ERROR_SSL_INVALID_USER_DATA},
		{"the wrong key", &messages.TlsServerOptions{CertificatePem: certs.ServerCertPEM, PrivateKeyPem: certs.ClientKeyPEM}, messages.SocketError_SOCKET_ERROR_SSL_INVALID_USER_DATA},
		{"a client CA that is no PEM", &messages.TlsServerOptions{CertificatePem: certs.ServerCertPEM, PrivateKeyPem: certs.ServerKeyPEM, ClientCaPem: []byte("nope")}, messages.SocketError_SOCKET_ERROR_SSL_INVALID_USER_DATA},
		{"a negative time-out", &messages.TlsServerOptions{CertificatePem: certs.ServerCertPEM, PrivateKeyPem: certs.ServerKeyPEM, HandshakeTimeoutMs: -1}, messages.SocketError_SOCKET_ERROR_OPERATION},
	} {
		r := ask[*messages.ListenResult](s, &messages.Listen{Address: "127.0.0.1", Options: &messages.ListenOptions{Tls: tc.tls}})
		if r.Ok || r.Error.GetCode() != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, r, tc.want)
		}
	}
	r := ask[*messages.ListenResult](s, &messages.Listen{Address: "127.0.0.1", Options: &messages.ListenOptions{Tls: &messages.TlsServerOptions{
		CertificatePem: certs.ServerCertPEM, PrivateKeyPem: certs.ServerKeyPEM}}})
	if !r.Ok {
		t.Fatalf("listen with TLS: %v", r.Error)
	}
	addr := net.JoinHostPort(r.Address, itoa(r.Port))
	tlsEcho(t, dialTLS(t, addr, certs.ClientConfig(t, false)), []byte("TLS from Listen.options\n"))
	if !s.status().Tls {
		t.Error("status.tls false while serving TLS")
	}
	// The next listen without options is plain TCP again.
	ask[*messages.Closed](s, &messages.Close{})
	c := dial(t, s.listen())
	tlsEcho(t, c, []byte("plain again\n"))
	if s.status().Tls {
		t.Error("status.tls true on a plain listen")
	}
}

// A TLS connection is a wrapped net.Conn, served by the ConnectionActor's
// goroutine paths: CloseWrite sends TLS close_notify after the queued
// writes (the client reads them, then EOF) and reading goes on; Abort
// resets the TCP socket under the TLS layer.
func TestCloseWriteAndAbortWorkOnATLSConnection(t *testing.T) {
	certs := testkit.NewCerts(t)
	s := startServer(t, ServerOptions{TLS: certs.ServerConfig(t)})
	addr := s.listen()
	c := dialTLS(t, addr, certs.ClientConfig(t, false))
	s.waitStatus("the TLS connection queued", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
	owner := newInbox(t, s.sys)
	pc := ask[*messages.PendingConnection](s, &messages.NextPendingConnection{Owner: owner.pid})
	conn := pc.Connection

	s.sys.Root.Send(conn, &messages.Write{Data: []byte("last words")})
	if a := call[*messages.Ack](t, s.sys, conn, &messages.CloseWrite{}); a.Error.Failed() {
		t.Fatalf("CloseWrite on a TLS connection: %v", a.Error)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "last words" {
		t.Fatalf("client read %q (%v), want the queued write then EOF (close_notify)", got, err)
	}
	if _, err := c.Write([]byte("still reading")); err != nil {
		t.Fatal(err)
	}
	if r := expectNext[*messages.Received](t, owner); string(r.Data) != "still reading" {
		t.Fatalf("after CloseWrite the connection read %q", r.Data)
	}

	// Abort is a reset, as QSslSocket::abort(): no close_notify, which
	// would tell the client the stream ended cleanly.
	c2 := dialTLS(t, addr, certs.ClientConfig(t, false))
	s.waitStatus("the second TLS connection queued", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
	conn = ask[*messages.PendingConnection](s, &messages.NextPendingConnection{Owner: owner.pid}).Connection
	ended := watchEnd(t, s.sys, conn)
	if a := call[*messages.Ack](t, s.sys, conn, &messages.Abort{}); a.Error.Failed() {
		t.Fatalf("Abort: %v", a.Error)
	}
	waitClosed(t, ended, "the aborted TLS connection")
	if _, err := c2.Read(make([]byte, 1)); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("after Abort the client read error %v, want a reset", err)
	}
}
