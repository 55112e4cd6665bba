package actors

import (
	"context"
	"crypto/tls"
	"net"
	"sync/atomic"
	"time"

	"github.com/tcpactor/tcpactor/messages"
)

// Defaults, as in Qt (pending queue, backlog) and of the data path (docs/ARCHITECTURE.md).
const (
	DefaultMaxPendingConnections = 30       // QTcpServer::maxPendingConnections()
	DefaultBacklog               = 50       // QTcpServer::listenBacklogSize()
	DefaultReadChunkSize         = 32 << 10 // bytes per Received
	DefaultInitialCredit         = 4        // Received messages granted with a claim
	DefaultWriteQueueBytes       = 1 << 20  // bytes queued before Write fails
	DefaultLingerTimeout         = 5 * time.Second
	DefaultLingerBytes           = 64 << 10
	DefaultPeerCloseTimeout      = 10 * time.Second
	acceptBackoffMin             = 5 * time.Millisecond
	acceptBackoffMax             = time.Second
)

// IncomingConnectionFunc is QTcpServer::incomingConnection(): it sees every
// accepted connection before a ConnectionActor is made of it. It returns the
// connection to use — conn itself, a wrapper (TLS, PROXY header) or a
// replacement — or an error to reject it, in which case the server closes
// conn. It runs in a goroutine of its own, never in the accept loop nor in the
// actor, so it may block (read a header, shake hands, or serve the connection
// itself, as Qt's Threaded Fortune Server does); ctx is cancelled when the
// server stops, and conn is closed then too.
//
// While the hook runs, the connection counts against MaxConnections but not
// against the pending limit, as in Qt, where only what the hook hands back
// is queued: nothing but MaxConnections bounds how many connections hooks
// hold at once. A connection the hook returns joins the queue even when the
// queue is full; accepting then stops until claims bring the queue under
// the limit. Only connections that reach the queue are announced with
// NewConnection.
type IncomingConnectionFunc func(ctx context.Context, conn net.Conn) (net.Conn, error)

// ServerOptions are the Go-side settings of a ServerActor. The zero value is
// Qt's defaults.
type ServerOptions struct {
	// MaxPendingConnections is the initial setMaxPendingConnections(); 0 means 30.
	MaxPendingConnections int
	// Backlog is the listen backlog when Listen does not give one; 0 means 50,
	// a negative value the kernel's maximum (net.core.somaxconn), as Qt.
	Backlog int
	// MaxConnections caps live connections (Ranch's max_connections), those
	// in the IncomingConnection hook included: at the cap the server stops
	// accepting until one ends. 0 means no cap.
	MaxConnections int
	// IncomingConnection, when set, is the incomingConnection() hook. With
	// TLS it runs after the handshake, on the *tls.Conn.
	IncomingConnection IncomingConnectionFunc
	// TLS, when set, makes the server QSslServer: every accepted connection
	// shakes hands (in the hook's goroutine, never blocking the server)
	// before it is queued; a handshake that fails or times out closes the
	// connection and is published as HandshakeFailed. A listen's
	// ListenOptions.tls takes its place for that listen.
	TLS *tls.Config
	// HandshakeTimeout is QSslServer::setHandshakeTimeout(); 0 means 5 s.
	HandshakeTimeout time.Duration
	// ProxyProtocol, when set, reads the PROXY protocol header of a load
	// balancer before anything else (before TLS too), in the hook's
	// goroutine; the connection's peer address is then the real client's.
	ProxyProtocol *ProxyProtocol
	// Connection configures every ConnectionActor the server makes.
	Connection ConnectionConfig
	// AllowRemoteAdmin lets remote nodes send the administrative requests
	// (Listen, Close, SetProxy, SetMaxPendingConnections, Pause/
	// ResumeAccepting, AddPendingConnection). Off: they are refused with
	// SocketAccessError (authz.go). SetSocketDescriptor is never taken from
	// a remote node.
	AllowRemoteAdmin bool
	// RemoteLimits caps what one remote node can make the server hold.
	RemoteLimits RemoteLimits
}

// ConnectionConfig configures a ConnectionActor. The zero value uses the
// defaults above and the owner-actor model.
type ConnectionConfig struct {
	// ReadChunkSize is the most bytes one Received carries; 0 means 32 KiB.
	ReadChunkSize int
	// InitialCredit is the credit a claim grants when it names none; 0 means 4.
	InitialCredit int
	// WriteQueueBytes bounds the bytes queued for writing; 0 means 1 MiB.
	WriteQueueBytes int
	// IdleTimeout closes a connection with SocketTimeoutError when nothing is
	// read or written for this long. 0 means none.
	IdleTimeout time.Duration
	// ReadTimeout closes a connection with SocketTimeoutError when the owner
	// has credit but the peer sends nothing for this long. 0 means none.
	ReadTimeout time.Duration
	// LingerTimeout bounds a lingering close (every ending but Abort): the
	// flush of the queued writes ends with SocketTimeoutError when it makes
	// no progress for this long, and after the FIN the peer's input is read
	// and thrown away for at most this long before the socket is closed.
	// 0 means 5 s; negative: no linger (close(2) right after the FIN).
	LingerTimeout time.Duration
	// LingerBytes ends the linger early once this many bytes were thrown
	// away after the peer acknowledged everything sent (closing then cannot
	// cost it our data). 0 means 64 KiB; negative: no such limit.
	LingerBytes int
	// PeerCloseTimeout is how long after PeerClosed a connection waits for
	// its owner actor to close it (Close, CloseWrite, Abort) before closing
	// by itself, gracefully. ClaimOptions.peer_close_timeout_ms overrides it
	// per claim; keep_open_on_peer_close waits without a time-out. A local
	// Handler decides with its PeerClosed return value instead. 0 means 10 s;
	// negative: close at once after PeerClosed (the queued writes flushed).
	PeerCloseTimeout time.Duration
	// Handler, when set, serves each connection inside its ConnectionActor
	// (Ranch's model) instead of queueing it for an owner actor.
	Handler HandlerFactory
	// Stats, when set, counts the traffic of every connection made with this
	// config as it happens (a server's metrics). nil counts nothing.
	Stats *ConnectionStats
	// ReadMode says how the socket is read: by a goroutine per connection or
	// by the shared event loops (Linux, plain TCP connections only). The
	// zero value is the process default (DefaultReadMode).
	ReadMode ReadMode
}

// ConnectionStats are traffic counters shared by many connections, safe for
// concurrent use: bytes read from peers, bytes handed to the kernel, and
// writes that ended as WriteFailed.
type ConnectionStats struct {
	BytesReceived atomic.Uint64
	BytesSent     atomic.Uint64
	WriteFailures atomic.Uint64
}

func (st *ConnectionStats) received(n int) {
	if st != nil && n > 0 {
		st.BytesReceived.Add(uint64(n))
	}
}

func (st *ConnectionStats) sent(n int) {
	if st != nil && n > 0 {
		st.BytesSent.Add(uint64(n))
	}
}

func (st *ConnectionStats) writeFailed() {
	if st != nil {
		st.WriteFailures.Add(1)
	}
}

// ConnectionInfoOf describes a just-accepted connection without touching the
// socket beyond its cached addresses.
func ConnectionInfoOf(conn net.Conn, id uint64) *messages.ConnectionInfo {
	la, lp := messages.HostPort(conn.LocalAddr())
	ra, rp := messages.HostPort(conn.RemoteAddr())
	info := &messages.ConnectionInfo{
		Id: id, LocalAddress: la, LocalPort: lp, PeerAddress: ra, PeerPort: rp,
		State: messages.SocketState_SOCKET_STATE_CONNECTED,
	}
	addTLSInfo(info, conn)
	return info
}
