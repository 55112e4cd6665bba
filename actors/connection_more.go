package actors

import (
	"time"

	"github.com/tcpactor/tcpactor/messages"
)

// connMore is the part of a connection that an idle one does not need:
// the write queue, the local handler's pending write outcomes, bytes held
// back, the reader goroutine's channels, the timers after the peer's FIN
// and for IdleTimeout, the closing state and the errors. Every idle
// connection holds a connection struct (issue 14); these took it from 192
// bytes to 384. A connection makes the part the first time it writes,
// holds bytes back, reads with a goroutine, has an idle time-out, sees the
// peer's FIN, fails or closes. Once made, it is kept: an echo reuses its
// queue's memory and allocates nothing per round trip.
type connMore struct {
	wq     writeQueue
	job    *writeJob // with a writer goroutine: nothing else writes meanwhile
	events []handlerEvent
	// held is the read whose bytes came when the credit was taken away by a
	// hand-over, its error (a wrapper's n > 0 with EOF) in it: nothing reads
	// again while it is held, so nothing reuses it.
	held           *readResult
	permit         chan struct{} // the goroutine reader's
	done           chan struct{}
	peerCloseTimer *time.Timer
	// peerCloseTimeout is the owner's claim's peer_close_timeout_ms, when
	// it gave one: else the server's ConnectionConfig.PeerCloseTimeout.
	peerCloseTimeout time.Duration
	idle             *time.Timer     // IdleTimeout's clock
	lastActive       time.Duration   // monoNow() when last read or written, with an idle time-out
	cl               *closingState   // made by the first Close or CloseWrite (closer)
	lastErr          *messages.Error // the last error, for ConnectionInfo
	endErr           *messages.Error // Disconnected.error
	failErr          *messages.Error // WriteFailed.error for writes left at the end
}

// noMore is what an idle connection's missing part reads as.
var noMore connMore

// x is the connection's part for writing to it, made at the first need.
func (c *connection) x() *connMore {
	if c.more == nil {
		c.more = &connMore{}
	}
	return c.more
}

// r is the connection's part for reading it: an empty one (never written)
// while it is not made.
func (c *connection) r() *connMore {
	if c.more == nil {
		return &noMore
	}
	return c.more
}

// peerCloseTimeout is how long the owner has to close after PeerClosed.
func (c *connection) peerCloseTimeout() time.Duration {
	if d := c.r().peerCloseTimeout; d > 0 {
		return d
	}
	return c.cfg.PeerCloseTimeout
}

// writesIdle: nothing queued and no writer goroutine.
func (c *connection) writesIdle() bool {
	m := c.more
	return m == nil || (m.job == nil && m.wq.len() == 0)
}
