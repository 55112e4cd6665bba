package actors

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/protobuf/proto"
)

// socksTimeout bounds each exchange with a SOCKS5 proxy but the wait for a
// client: dialling it, authenticating, the BIND's first reply.
const socksTimeout = 30 * time.Second

// socksListener listens through a SOCKS5 proxy (RFC 1928 BIND, as Qt's
// QSocks5SocketEngine): the proxy binds a port for us and tells us where
// (the server's address), then relays the one client that connects there
// over the same connection. One BIND carries one client, so after each
// client the next Accept binds again (the proxy picks a new port, which the
// server then reports); onRebind tells the server.
type socksListener struct {
	proxy    *messages.NetworkProxy
	onRebind func(addr *net.TCPAddr)
	ctx      context.Context // cancelled by Close: ends a BIND in progress
	cancel   context.CancelFunc

	mu       sync.Mutex
	ctrl     net.Conn     // the current BIND; nil between clients
	addr     *net.TCPAddr // where the proxy listens for the current BIND
	deadline time.Time
	closed   bool

	// reply is the current BIND's second reply as far as read; only the
	// goroutine in Accept touches it.
	reply socksReplyReader
}

// socksFail is a failed exchange with the proxy, with Qt's proxy code; as
// a *messages.SocketErr it keeps its code through messages.FromError, also
// when a later BIND fails and the accept loop reports it as AcceptError.
func socksFail(code messages.SocketError, format string, args ...any) error {
	return messages.NewError(code, format, args...).Err()
}

// bindThroughSocks makes the first BIND: the listener then listens.
func bindThroughSocks(ctx context.Context, p *messages.NetworkProxy) (*socksListener, error) {
	l := &socksListener{proxy: p}
	l.ctx, l.cancel = context.WithCancel(ctx)
	if err := l.bind(l.ctx); err != nil {
		l.cancel()
		return nil, err
	}
	return l, nil
}

// bind connects to the proxy, authenticates and asks it to BIND, up to its
// first reply. The control connection is then l.ctrl.
func (l *socksListener) bind(ctx context.Context) error {
	proxyAddr := net.JoinHostPort(l.proxy.Host, strconv.Itoa(int(l.proxy.Port)))
	d := net.Dialer{Timeout: socksTimeout}
	c, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return socksFail(messages.SocketError_SOCKET_ERROR_PROXY_CONNECTION_TIMEOUT, "Connection to proxy timed out: %v", err)
		}
		return socksFail(messages.SocketError_SOCKET_ERROR_PROXY_CONNECTION_REFUSED, "Connection to proxy refused: %v", err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	_ = c.SetDeadline(time.Now().Add(socksTimeout))
	addr, err := socksHandshake(c, l.proxy)
	if err != nil {
		c.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	_ = c.SetDeadline(time.Time{})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return net.ErrClosed
	}
	l.ctrl, l.addr = c, addr
	_ = c.SetReadDeadline(l.deadline)
	return nil
}

// socksHandshake is RFC 1928's method negotiation (no authentication, or
// RFC 1929's username and password when the proxy has a user), then BIND
// and its first reply: the address the proxy listens on.
func socksHandshake(c net.Conn, p *messages.NetworkProxy) (*net.TCPAddr, error) {
	methods := []byte{0x00}
	if p.User != "" {
		methods = []byte{0x00, 0x02}
	}
	if _, err := c.Write(append([]byte{5, byte(len(methods))}, methods...)); err != nil {
		return nil, socksClosed(err)
	}
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil {
		return nil, socksClosed(err)
	}
	switch {
	case sel[0] != 5:
		return nil, socksFail(messages.SocketError_SOCKET_ERROR_PROXY_PROTOCOL, "SOCKS version 5 protocol error: version %d", sel[0])
	case sel[1] == 0x02 && p.User != "":
		if len(p.User) > 255 || len(p.Password) > 255 {
			return nil, socksFail(messages.SocketError_SOCKET_ERROR_PROXY_AUTHENTICATION_REQUIRED, "Proxy authentication failed: user or password longer than 255 bytes")
		}
		req := append([]byte{1, byte(len(p.User))}, p.User...)
		req = append(append(req, byte(len(p.Password))), p.Password...)
		if _, err := c.Write(req); err != nil {
			return nil, socksClosed(err)
		}
		var st [2]byte
		if _, err := io.ReadFull(c, st[:]); err != nil {
			return nil, socksClosed(err)
		}
		if st[1] != 0 {
			return nil, socksFail(messages.SocketError_SOCKET_ERROR_PROXY_AUTHENTICATION_REQUIRED, "Proxy authentication failed: the proxy refused user %q", p.User)
		}
	case sel[1] == 0x00:
	case sel[1] == 0xff:
		return nil, socksFail(messages.SocketError_SOCKET_ERROR_PROXY_AUTHENTICATION_REQUIRED, "Proxy requires authentication: no method offered was acceptable")
	default:
		return nil, socksFail(messages.SocketError_SOCKET_ERROR_PROXY_PROTOCOL, "SOCKS version 5 protocol error: method %d chosen", sel[1])
	}
	// BIND for any client: DST.ADDR 0.0.0.0:0.
	if _, err := c.Write([]byte{5, 2, 0, 1, 0, 0, 0, 0, 0, 0}); err != nil {
		return nil, socksClosed(err)
	}
	return socksReply(c)
}

// socksReply reads a reply: its address, or the proxy's refusal.
func socksReply(c net.Conn) (*net.TCPAddr, error) {
	var r socksReplyReader
	return r.read(c)
}

// socksReplyReader reads one reply and can be interrupted and resumed: the
// accept goroutine's deadline (a pause, a lower limit, a Close) can fire
// between two reads of one reply, and the bytes already read then wait in
// part for the next Accept, instead of being lost and leaving the next read
// in the middle of the reply. It reads no further than the reply's end: the
// relayed client's bytes follow it on the same connection.
type socksReplyReader struct {
	part []byte
}

// read goes on with the reply; on an error the bytes read so far stay.
func (r *socksReplyReader) read(c net.Conn) (*net.TCPAddr, error) {
	for {
		need, err := socksReplyLen(r.part)
		if err != nil {
			return nil, err
		}
		if len(r.part) == need {
			break
		}
		buf := make([]byte, need-len(r.part))
		n, err := c.Read(buf)
		r.part = append(r.part, buf[:n]...)
		if err != nil && len(r.part) < need {
			return nil, socksClosed(err)
		}
	}
	b := r.part
	r.part = nil
	if b[1] != 0 {
		return nil, socksReplyError(b[1])
	}
	var ip net.IP
	switch b[3] {
	case 1:
		ip = net.IP(b[4:8])
	case 4:
		ip = net.IP(b[4:20])
	}
	port := binary.BigEndian.Uint16(b[len(b)-2:])
	return &net.TCPAddr{IP: ip, Port: int(port)}, nil
}

// socksReplyLen is how long the reply that begins with b is, as far as b
// tells: VER REP RSV ATYP, then an IPv4 or IPv6 address or a name (its
// length byte first, the name is ignored), then the port.
func socksReplyLen(b []byte) (int, error) {
	if len(b) < 4 {
		return 4, nil
	}
	if b[0] != 5 {
		return 0, socksFail(messages.SocketError_SOCKET_ERROR_PROXY_PROTOCOL, "SOCKS version 5 protocol error: reply version %d", b[0])
	}
	switch b[3] {
	case 1:
		return 4 + 4 + 2, nil
	case 4:
		return 4 + 16 + 2, nil
	case 3:
		if len(b) < 5 {
			return 5, nil
		}
		return 4 + 1 + int(b[4]) + 2, nil
	}
	return 0, socksFail(messages.SocketError_SOCKET_ERROR_PROXY_PROTOCOL, "SOCKS version 5 protocol error: address type %d", b[3])
}

// socksReplyError maps a BIND refusal as Qt's QSocks5SocketEngine does.
func socksReplyError(code byte) error {
	switch code {
	case 2:
		return socksFail(messages.SocketError_SOCKET_ERROR_SOCKET_ACCESS, "Connection not allowed by SOCKSv5 server")
	case 5:
		return socksFail(messages.SocketError_SOCKET_ERROR_CONNECTION_REFUSED, "Connection refused")
	case 7:
		return socksFail(messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION, "SOCKSv5 command not supported")
	}
	return socksFail(messages.SocketError_SOCKET_ERROR_PROXY_PROTOCOL, "SOCKS version 5 protocol error: reply %d", code)
}

func socksClosed(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return socksFail(messages.SocketError_SOCKET_ERROR_PROXY_CONNECTION_TIMEOUT, "Proxy server connection timed out")
	}
	return socksFail(messages.SocketError_SOCKET_ERROR_PROXY_CONNECTION_CLOSED, "Proxy connection closed prematurely: %v", err)
}

// Accept waits for the client of the current BIND (binding again first when
// the last one carried a client) and returns the relayed connection, whose
// peer is the client as the proxy saw it.
func (l *socksListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	ctrl, closed := l.ctrl, l.closed
	l.mu.Unlock()
	if closed {
		return nil, net.ErrClosed
	}
	if ctrl == nil {
		if err := l.bind(l.ctx); err != nil {
			if l.ctx.Err() != nil {
				return nil, net.ErrClosed
			}
			return nil, err
		}
		l.mu.Lock()
		ctrl = l.ctrl
		addr := l.addr
		l.mu.Unlock()
		if l.onRebind != nil {
			l.onRebind(addr)
		}
	}
	peer, err := l.reply.read(ctrl)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, net.ErrClosed
	}
	if err != nil {
		var se *messages.SocketErr
		if !errors.As(err, &se) || se.Code != messages.SocketError_SOCKET_ERROR_PROXY_CONNECTION_TIMEOUT || l.deadline.IsZero() {
			ctrl.Close() // this BIND is over: the next Accept binds again
			l.ctrl, l.reply = nil, socksReplyReader{}
			return nil, err
		}
		// Only the gate's deadline: the BIND waits on, still ours.
		if h, ok := ctrl.(interface{ SetReadDeadline(time.Time) error }); ok {
			_ = h.SetReadDeadline(l.deadline)
		}
		return nil, os.ErrDeadlineExceeded
	}
	_ = ctrl.SetReadDeadline(time.Time{})
	l.ctrl = nil
	return &socksConn{Conn: ctrl, local: l.addr, remote: peer}, nil
}

// SetDeadline interrupts a waiting Accept, as a listener's deadline does.
func (l *socksListener) SetDeadline(t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deadline = t
	if l.ctrl != nil {
		return l.ctrl.SetReadDeadline(t)
	}
	return nil
}

// Close ends the current BIND; Accept returns net.ErrClosed.
func (l *socksListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.cancel()
	if l.ctrl != nil {
		l.ctrl.Close()
		l.ctrl = nil
	}
	return nil
}

// Addr is where the proxy listens for the current BIND.
func (l *socksListener) Addr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addr
}

// socksConn is a client relayed by the proxy: its local address is the
// proxy's bound one, its peer the client as the proxy saw it.
type socksConn struct {
	net.Conn
	local, remote net.Addr
}

func (c *socksConn) LocalAddr() net.Addr  { return c.local }
func (c *socksConn) RemoteAddr() net.Addr { return c.remote }
func (c *socksConn) NetConn() net.Conn    { return c.Conn }

// CloseWrite half-closes the connection to the proxy, which passes it on.
func (c *socksConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// ---------------------------------------------------------------------------
// the ServerActor's side

// Local messages of a listen through a SOCKS5 proxy.
type (
	socksBound struct {
		l    *socksListener // taken from the listen's handover; nil on error
		err  error
		held uint64 // the BIND's id in the listen's handover
	}
	socksRebound struct {
		gen  uint64
		addr *net.TCPAddr
	}
)

// listenThroughSocks is listen() with a SOCKS5 proxy: the first BIND runs in
// a goroutine and the Listen is answered when it ends (ReenterAfter keeps
// the actor serving meanwhile). It returns nil: the reply comes later.
func (s *ServerActor) listenThroughSocks(ctx actor.Context, backlog, maxConns int, tlsL *tlsListen) *messages.ListenResult {
	if s.socksBinding {
		return &messages.ListenResult{Error: messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
			"a listen through the proxy %s:%d is under way", s.proxy.Host, s.proxy.Port)}
	}
	s.socksBinding, s.socksReplyTo = true, ctx.Sender()
	gen := s.socksGen
	p := proto.Clone(s.proxy).(*messages.NetworkProxy)
	hctx := s.hookCtx
	fut := actor.NewFuture(ctx.ActorSystem(), socksTimeout+5*time.Second)
	root := ctx.ActorSystem().Root
	// The BIND goes through a handover, not in the reply: a reply that
	// comes after the future timed out is dropped, the handover then
	// closes the BIND (and the server stopping closes it too).
	bound := &handover[*socksListener]{}
	go func() {
		l, err := bindThroughSocks(hctx, p)
		var held uint64
		if l != nil {
			// Whatever happens to the reply, the BIND ends with the server.
			context.AfterFunc(hctx, func() { l.Close() })
			var ok bool
			if held, ok = bound.put(l); !ok {
				return // nobody waits for it any more: put closed it
			}
		}
		root.Send(fut.PID(), &socksBound{err: err, held: held})
	}()
	ctx.ReenterAfter(fut, func(res any, err error) {
		b, _ := res.(*socksBound)
		if b != nil {
			b.l, _ = bound.take(b.held)
		}
		bound.close()          // a BIND that comes later is closed at once
		if gen != s.socksGen { // a close abandoned this BIND and answered the Listen
			if b != nil && b.l != nil {
				b.l.Close()
			}
			return
		}
		s.socksBinding, s.socksReplyTo = false, nil
		switch {
		case err != nil || b == nil:
			ctx.Respond(s.listenFailed(messages.NewError(messages.SocketError_SOCKET_ERROR_PROXY_CONNECTION_TIMEOUT, "Proxy server connection timed out")))
		case b.err != nil:
			ctx.Respond(s.listenFailed(messages.FromError(b.err)))
		case s.ln != nil: // a SetSocketDescriptor came first
			b.l.Close()
			ctx.Respond(s.alreadyListening())
		default:
			self, gen := ctx.Self(), s.gen+1
			b.l.onRebind = func(a *net.TCPAddr) { root.Send(self, &socksRebound{gen: gen, addr: a}) }
			s.tls = tlsL
			ctx.Respond(s.startListening(ctx, b.l, backlog, maxConns, false))
		}
	})
	return nil
}

// abandonSocksListen is close() (or the server stopping) while a Listen
// waits for the proxy: the Listen is answered now, and its BIND is closed
// when it ends.
func (s *ServerActor) abandonSocksListen(ctx actor.Context) {
	if !s.socksBinding {
		return
	}
	if s.socksReplyTo != nil {
		ctx.Send(s.socksReplyTo, &messages.ListenResult{Error: messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
			"the server was closed before the proxy %s:%d bound", s.proxy.Host, s.proxy.Port)})
	}
	s.socksBinding, s.socksReplyTo = false, nil
	s.socksGen++
}

// onSocksRebound records the proxy's address for the next client.
func (s *ServerActor) onSocksRebound(m *socksRebound) {
	if m.gen == s.gen && s.ln != nil {
		s.address, s.port = messages.HostPort(m.addr)
		s.protocol = messages.ProtocolOf(s.address)
	}
}
