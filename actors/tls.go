package actors

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// DefaultHandshakeTimeout is QSslServer::handshakeTimeout()'s default: a
// client that has not finished its TLS handshake by then is dropped.
const DefaultHandshakeTimeout = 5 * time.Second

// tlsListen is how a listen serves TLS (QSslServer); nil serves plain TCP.
type tlsListen struct {
	cfg     *tls.Config
	timeout time.Duration
}

// handshakeFailed is the error of a TLS handshake that failed or timed out;
// the server turns it into a HandshakeFailed event.
type handshakeFailed struct {
	e     *messages.Error
	peer  net.Addr
	proxy bool // a PROXY protocol header, not TLS
}

func (h *handshakeFailed) Error() string { return h.e.Message }

// listenTLS is the TLS of a listen: Listen.options.tls when given, else the
// server's ServerOptions.TLS, else none.
func (s *ServerActor) listenTLS(o *messages.ListenOptions) (*tlsListen, *messages.Error) {
	t := o.GetTls()
	if t == nil {
		if s.opts.TLS == nil {
			return nil, nil
		}
		if s.opts.HandshakeTimeout < 0 {
			return nil, invalid("handshake time-out %v is negative", s.opts.HandshakeTimeout)
		}
		return &tlsListen{cfg: s.opts.TLS, timeout: orDefault(s.opts.HandshakeTimeout)}, nil
	}
	if t.HandshakeTimeoutMs < 0 {
		return nil, invalid("tls.handshake_timeout_ms %d is negative", t.HandshakeTimeoutMs)
	}
	cfg, err := TLSServerConfig(t.CertificatePem, t.PrivateKeyPem, t.ClientCaPem)
	if err != nil {
		return nil, messages.NewError(messages.SocketError_SOCKET_ERROR_SSL_INVALID_USER_DATA, "%v", err)
	}
	return &tlsListen{cfg: cfg, timeout: orDefault(time.Duration(t.HandshakeTimeoutMs) * time.Millisecond)}, nil
}

func orDefault(d time.Duration) time.Duration {
	if d == 0 {
		return DefaultHandshakeTimeout
	}
	return d
}

// TLSServerConfig makes the tls.Config of a TLS server from PEM text: the
// certificate (then its chain) and private key, and, when clientCAPEM is not
// empty, the authorities a client's certificate must be signed by (mutual
// TLS: a client without such a certificate fails the handshake).
func TLSServerConfig(certPEM, keyPEM, clientCAPEM []byte) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if len(clientCAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(clientCAPEM) {
			return nil, errors.New("tls: no certificate in the client CA PEM")
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// incoming is the incomingConnection step of the current listen: the PROXY
// protocol header, the TLS handshake (QSslServer's own incomingConnection),
// then the user's hook, on the encrypted connection. nil when there is none.
func (s *ServerActor) incoming() IncomingConnectionFunc {
	user, t, pp := s.opts.IncomingConnection, s.tls, s.opts.ProxyProtocol
	if t == nil && pp == nil {
		return user
	}
	return func(ctx context.Context, conn net.Conn) (net.Conn, error) {
		var err error
		if pp != nil { // the balancer's header comes before anything the client sent
			if conn, err = readProxyHeader(ctx, conn, pp); err != nil {
				return nil, err
			}
		}
		if t != nil {
			if conn, err = handshake(ctx, conn, t); err != nil {
				return nil, err
			}
		}
		if user == nil {
			return conn, nil
		}
		return user(ctx, conn)
	}
}

// handshake shakes hands as a TLS server within t.timeout. It runs in the
// hook's goroutine, never in the accept loop or the actor, so a slow or
// silent client holds nothing but its own connection (and its place under
// MaxConnections).
func handshake(ctx context.Context, conn net.Conn, t *tlsListen) (net.Conn, error) {
	hctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	tc := tls.Server(conn, t.cfg)
	err := tc.HandshakeContext(hctx)
	switch {
	case err == nil:
		return tc, nil
	case ctx.Err() != nil: // the server stopped: not the client's failure
		return nil, err
	case hctx.Err() != nil:
		return nil, &handshakeFailed{peer: conn.RemoteAddr(), e: messages.NewError(messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT,
			"TLS handshake with %s did not finish within %v", conn.RemoteAddr(), t.timeout)}
	default:
		return nil, &handshakeFailed{peer: conn.RemoteAddr(), e: messages.NewError(messages.SocketError_SOCKET_ERROR_SSL_HANDSHAKE_FAILED,
			"TLS handshake with %s failed: %v", conn.RemoteAddr(), err)}
	}
}

// onHandshakeFailed counts a failed handshake and publishes HandshakeFailed;
// other hook errors are the hook's own business.
func (s *ServerActor) onHandshakeFailed(ctx actor.Context, err error) {
	var h *handshakeFailed
	if !errors.As(err, &h) {
		return
	}
	if h.proxy {
		s.proxyFails++
	} else {
		s.handshakeFails++
	}
	host, port := messages.HostPort(h.peer)
	ev := &messages.HandshakeFailed{Server: ctx.Self(), Error: h.e, PeerAddress: host, PeerPort: port}
	for _, sub := range s.subscribers {
		ctx.Send(sub.pid, ev)
	}
}

// addTLSInfo fills in the TLS fields of a connection's info, when conn is
// (or wraps, through NetConn) a TLS connection.
func addTLSInfo(info *messages.ConnectionInfo, conn net.Conn) {
	for range 8 {
		switch v := conn.(type) {
		case interface{ ConnectionState() tls.ConnectionState }:
			st := v.ConnectionState()
			if !st.HandshakeComplete {
				return
			}
			info.TlsVersion = tls.VersionName(st.Version)
			info.TlsCipher = tls.CipherSuiteName(st.CipherSuite)
			if len(st.PeerCertificates) > 0 {
				info.PeerCertificateSubject = st.PeerCertificates[0].Subject.String()
			}
			return
		case interface{ NetConn() net.Conn }:
			conn = v.NetConn()
		default:
			return
		}
	}
}
