package actors

// What a connection tells and what can be set on it: GetInfo
// (ConnectionInfo), SetSocketOption, and the idle time-out.

import (
	"net"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

func (c *connection) touch() {
	if m := c.more; m != nil && m.idle != nil {
		m.lastActive = monoNow()
	}
}

// monoEpoch and monoNow keep the idle clock in 8 bytes per connection
// instead of a time.Time's 24, on the monotonic clock all the same.
var monoEpoch = time.Now()

func monoNow() time.Duration { return time.Since(monoEpoch) }

// onIdleTick ends a connection that read and wrote nothing for IdleTimeout;
// a lingering one has its own clock.
func (c *connection) onIdleTick(ctx actor.Context) {
	m := c.more
	if c.phase >= lingering || m == nil || m.idle == nil {
		return
	}
	d := c.cfg.IdleTimeout
	if left := d - (monoNow() - m.lastActive); left > 0 {
		m.idle.Reset(left)
		return
	}
	c.failWith(messages.NewError(messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT,
		"idle time-out: nothing read or written for %v", d), closePlain)
}

func (c *connection) info() *messages.ConnectionInfo {
	c.foldLease()
	info := ConnectionInfoOf(c.conn, c.id)
	if c.phase >= closing {
		info.State = messages.SocketState_SOCKET_STATE_CLOSING
	}
	if c.announced {
		info.State = messages.SocketState_SOCKET_STATE_UNCONNECTED // as Qt after disconnected()
	}
	info.BytesReceived = c.bytesReceived
	info.BytesSent = c.bytesSent
	info.BytesToWrite = uint64(c.r().wq.bytes)
	info.Owner = c.owner
	info.Server = c.server
	info.Error = c.r().lastErr
	return info
}

// tcpSocket is a plain TCP socket: a *net.TCPConn, or a raw socket that
// Go's poller does not know (rawSock, event-loop mode on Linux).
type tcpSocket interface {
	net.Conn
	CloseWrite() error
	SetNoDelay(bool) error
	SetKeepAlive(bool) error
	SetKeepAlivePeriod(time.Duration) error
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
	SetLinger(int) error
	SyscallConn() (syscall.RawConn, error)
}

// tcpConnOf finds the TCP socket under conn, through wrappers that expose it
// with NetConn (crypto/tls does).
func tcpConnOf(conn net.Conn) tcpSocket {
	for range 8 {
		switch v := conn.(type) {
		case *net.TCPConn:
			return v
		case interface{ NetConn() net.Conn }:
			conn = v.NetConn()
		default:
			if isRawSock(conn) {
				return conn.(tcpSocket)
			}
			return nil
		}
	}
	return nil
}

// plainTCP tells a plain TCP socket, not wrapped: its addresses can be
// asked whenever needed.
func plainTCP(conn net.Conn) bool {
	_, ok := conn.(*net.TCPConn)
	return ok || isRawSock(conn)
}

// setSocketOption is setSocketOption(): every field is checked before any
// is applied.
func (c *connection) setSocketOption(o *messages.SetSocketOption) *messages.Error {
	invalidOpt := func(format string, args ...any) *messages.Error {
		return messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION, format, args...)
	}
	switch {
	case o == nil:
		return invalidOpt("SetSocketOption is empty")
	case o.KeepAlivePeriodMs != nil && *o.KeepAlivePeriodMs <= 0:
		return invalidOpt("keep_alive_period_ms %d: want a positive number of milliseconds", *o.KeepAlivePeriodMs)
	case o.ReceiveBufferSize != nil && *o.ReceiveBufferSize <= 0:
		return invalidOpt("receive_buffer_size %d: want a positive number of bytes", *o.ReceiveBufferSize)
	case o.SendBufferSize != nil && *o.SendBufferSize <= 0:
		return invalidOpt("send_buffer_size %d: want a positive number of bytes", *o.SendBufferSize)
	case o.LingerSeconds != nil && *o.LingerSeconds < -1:
		return invalidOpt("linger_seconds %d: want -1 (default), 0 (reset on close) or more", *o.LingerSeconds)
	}
	tc := tcpConnOf(c.conn)
	if tc == nil {
		return messages.NewError(messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION,
			"socket options need a TCP socket; this connection is a %T", c.conn)
	}
	var errs []error
	apply := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if o.NoDelay != nil {
		apply(tc.SetNoDelay(*o.NoDelay))
	}
	if o.KeepAlive != nil {
		apply(tc.SetKeepAlive(*o.KeepAlive))
	}
	if o.KeepAlivePeriodMs != nil {
		apply(tc.SetKeepAlivePeriod(time.Duration(*o.KeepAlivePeriodMs) * time.Millisecond))
	}
	if o.ReceiveBufferSize != nil {
		apply(tc.SetReadBuffer(int(*o.ReceiveBufferSize)))
	}
	if o.SendBufferSize != nil {
		apply(tc.SetWriteBuffer(int(*o.SendBufferSize)))
	}
	if o.LingerSeconds != nil {
		apply(tc.SetLinger(int(*o.LingerSeconds)))
		c.soLinger = *o.LingerSeconds > 0
	}
	if len(errs) > 0 {
		return messages.NewError(messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION, "set socket option: %v", errs)
	}
	return nil
}
