package actors

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/tcpactor/tcpactor/messages"
)

// DefaultProxyHeaderTimeout is how long a connection has to send its PROXY
// protocol header when ProxyProtocol.HeaderTimeout is 0.
const DefaultProxyHeaderTimeout = 5 * time.Second

// ProxyProtocol makes a server read the PROXY protocol header (v1 text or
// v2 binary, as HAProxy's send-proxy and send-proxy-v2 write it) that a load
// balancer puts in front of each connection, so the connection's peer
// address is the real client's rather than the balancer's.
//
// Only the balancers may connect: a connection from a source outside Trusted
// is closed at once, header or not (a client that could reach the port
// directly could otherwise claim any address); a trusted connection must
// begin with a header within HeaderTimeout. Either failure closes the
// connection and is published as HandshakeFailed (PROXY_PROTOCOL, or
// SOCKET_TIMEOUT for the time-out). A header with the LOCAL command (the
// balancer's own health check) keeps the socket's addresses.
type ProxyProtocol struct {
	// Trusted are the networks the balancers connect from; empty trusts
	// nothing, so every connection is refused.
	Trusted []netip.Prefix
	// HeaderTimeout bounds the wait for the header; 0 means 5 s.
	HeaderTimeout time.Duration
}

// trusts reports whether addr is in one of the trusted networks.
func (p *ProxyProtocol) trusts(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, n := range p.Trusted {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// readProxyHeader is the first incomingConnection step of a server with
// ProxyProtocol: it runs in the connection's hook goroutine, reads the
// header under the time-out and returns the connection with the header's
// addresses.
func readProxyHeader(_ context.Context, conn net.Conn, p *ProxyProtocol) (net.Conn, error) {
	fail := func(code messages.SocketError, format string, args ...any) (net.Conn, error) {
		return nil, &handshakeFailed{peer: conn.RemoteAddr(), proxy: true, e: messages.NewError(code, format, args...)}
	}
	if !p.trusts(conn.RemoteAddr()) {
		return fail(messages.SocketError_SOCKET_ERROR_PROXY_PROTOCOL,
			"PROXY protocol: %s is not a trusted proxy; connection refused", conn.RemoteAddr())
	}
	timeout := p.HeaderTimeout
	if timeout == 0 {
		timeout = DefaultProxyHeaderTimeout
	}
	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	br := bufio.NewReader(conn)
	hdr, err := proxyproto.Read(br)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fail(messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT,
			"PROXY protocol: no header from %s within %v", conn.RemoteAddr(), timeout)
	case errors.Is(err, proxyproto.ErrNoProxyProtocol) || errors.Is(err, io.EOF):
		return fail(messages.SocketError_SOCKET_ERROR_PROXY_PROTOCOL,
			"PROXY protocol: %s did not begin with a PROXY header", conn.RemoteAddr())
	case err != nil:
		return fail(messages.SocketError_SOCKET_ERROR_PROXY_PROTOCOL,
			"PROXY protocol: bad header from %s: %v", conn.RemoteAddr(), err)
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return nil, err
	}
	pc := &proxiedConn{Conn: conn, r: br, remote: conn.RemoteAddr(), local: conn.LocalAddr()}
	if src, dst, ok := hdr.TCPAddrs(); ok && !hdr.Command.IsLocal() {
		pc.remote, pc.local = src, dst
	}
	if pc.r.Buffered() == 0 {
		pc.r = nil
	}
	return pc, nil
}

// proxiedConn is a connection that came through a PROXY-protocol balancer:
// its addresses are the header's, and the bytes read together with the
// header are read first.
type proxiedConn struct {
	net.Conn
	r             *bufio.Reader // bytes that came with the header; nil once drained
	remote, local net.Addr
}

func (c *proxiedConn) Read(p []byte) (int, error) {
	if c.r != nil {
		n, err := c.r.Read(p)
		if c.r.Buffered() == 0 {
			c.r = nil
		}
		return n, err
	}
	return c.Conn.Read(p)
}

// RemoteAddr is the real client's address, from the header.
func (c *proxiedConn) RemoteAddr() net.Addr { return c.remote }

// LocalAddr is the address the client connected to, from the header.
func (c *proxiedConn) LocalAddr() net.Addr { return c.local }

// NetConn is the socket under the header, for socket options and resets.
func (c *proxiedConn) NetConn() net.Conn { return c.Conn }

// CloseWrite half-closes the socket.
func (c *proxiedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
