package actors

// How a connection ends: Close (a lingering close: flush, FIN, linger),
// CloseWrite (our FIN only), Abort (reset), errors and time-outs, and the
// teardown that every ending passes through. The phases are documented
// where they are declared, in connection.go.

import (
	"errors"
	"os"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// closeHow says how the socket is closed when the connection ends.
type closeHow uint8

const (
	closePlain closeHow = iota // close(2): the kernel sends what it holds, then FIN (RST if input is unread)
	closeReset                 // SO_LINGER 0, then close(2): RST
)

// closingState is what only a closing connection needs, made when it is
// first needed (closer): an open connection, idle ones above all, does not
// carry it (issue 14).
type closingState struct {
	closeWaiters     []*actor.PID // Close senders, answered at the end
	writeShutWaiters []*actor.PID // CloseWrite senders, answered at our FIN
	closeTimer       *time.Timer  // the flush's progress, then the linger
	flushedAt        uint64       // bytesSent when the close timer was last armed
	discarded        int          // bytes thrown away once nothing of ours was unacknowledged

	// ownerLost: the owner's node was reported lost, and Disconnected says so (ownerNodeLost).
	ownerLost *messages.Error
}

func (c *connection) closer() *closingState {
	m := c.x()
	if m.cl == nil {
		m.cl = &closingState{}
	}
	return m.cl
}

// ownerNodeLost closes the connection because its owner's node was
// reported lost (Terminated{AddressTerminated}), and still tells the owner
// everything a Close would: what it wrote is flushed, each write is
// acknowledged and Disconnected comes last, carrying the reason. The report
// may be false: Proto.Actor's remote takes the end of any endpoint to an
// address for the loss of that address, and a node restarted on the same
// address within its endpoint writer's retries (~12 s) gets a stale writer's
// end reported after it is up, which fires the watches of its live actors.
// Its owner must then hear of the end of every connection it claimed. A
// node that is really lost drops these messages: the remote's endpoint
// writer dials the address for ~12 s, dead-letters them and stops (the
// node streams fall back to the remote after their own set-up fails);
// nothing here waits for it.
func (c *connection) ownerNodeLost(who *actor.PID) {
	if c.phase < closing { // a close the owner asked for ends as it was asked
		e := messages.NewError(messages.SocketError_SOCKET_ERROR_NETWORK,
			"connection closed: the node of its owner %s/%s was reported lost", who.Address, who.Id)
		c.x().lastErr = e
		c.closer().ownerLost = e
	}
	c.startClose(nil)
}

// startClose is disconnectFromHost(): flush, FIN, end. who (may be nil) gets
// Ack when the connection has ended.
func (c *connection) startClose(who *actor.PID) {
	if who != nil {
		if c.announced {
			c.ctx.Send(who, &messages.Ack{Error: c.r().endErr})
		} else {
			cl := c.closer()
			cl.closeWaiters = append(cl.closeWaiters, who)
		}
	}
	if c.phase >= closing {
		return
	}
	claimed := c.phase != waitingForOwner
	c.phase = closing
	c.directWritesOff() // the FIN comes after every direct write
	if m := c.more; m != nil {
		if m.peerCloseTimer != nil {
			m.peerCloseTimer.Stop()
		}
		if m.held != nil {
			putBuf(m.held.buf)
			m.held = nil
		}
	}
	// Read (and throw away) from now on, claimed or not, so that the peer
	// never waits on us and nothing is left unread at close(2).
	if claimed {
		c.askRead()
	} else {
		c.serve()
	}
	c.armCloseTimer()
	if c.writesIdle() {
		c.flushed()
	}
}

// finishClose runs once a close has flushed every queued write: FIN, then
// the owner's Disconnected and the Close replies — everything it wrote is
// in the kernel, and nothing more will be read for it — then the linger,
// unless the peer has closed already.
func (c *connection) finishClose() {
	if c.fin != finSent {
		if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		c.fin = finSent
	}
	_, halfCloses := c.conn.(interface{ CloseWrite() error })
	if c.peerClosed || c.cfg.LingerTimeout < 0 || !halfCloses {
		// Nothing more can come, or the peer cannot see our FIN (a wrapper
		// that cannot half-close): no linger.
		c.endWith(nil, nil, closePlain)
		return
	}
	c.phase = lingering // Receive announces the end once this message is handled
	if t := c.r().idle; t != nil {
		t.Stop() // the linger has its own clock
	}
	c.armCloseTimer()
}

// closingReadEnded handles the end of reading during a close: the peer's
// FIN (or reset) ends the linger; during the flush it only means that the
// linger will be short.
func (c *connection) closingReadEnded(err error) {
	switch {
	case socketError(err) == nil: // EOF
		c.peerClosed = true
		if c.phase == lingering {
			c.endWith(nil, nil, closePlain)
		}
	case c.phase == lingering:
		c.endWith(nil, nil, closePlain) // what we sent is the peer's problem now
	case errors.Is(err, os.ErrDeadlineExceeded):
		// ReadTimeout: a quiet peer does not end a flush (the close's own
		// clock does); read on without it.
		c.startReader(0)
		c.askRead()
	default:
		c.readFailed(c.ctx, err)
	}
}

// armCloseTimer (re)starts the close's clock: LingerTimeout for the flush
// to make progress, then LingerTimeout for the linger.
func (c *connection) armCloseTimer() {
	d := c.cfg.LingerTimeout
	if d <= 0 {
		return
	}
	cl := c.closer()
	cl.flushedAt = c.bytesSent
	if cl.closeTimer == nil {
		cl.closeTimer = time.AfterFunc(d, func() { c.sendSelf(&closeTick{}) })
		return
	}
	cl.closeTimer.Reset(d)
}

// onCloseTick: a flush that moved goes on; one that did not fails its
// writes and ends with SocketTimeoutError; a linger is over.
func (c *connection) onCloseTick() {
	switch {
	case c.phase == lingering:
		c.endWith(nil, nil, closePlain)
	case c.phase != closing:
	case c.bytesSent != c.closer().flushedAt:
		c.armCloseTimer()
	default:
		c.failWith(messages.NewError(messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT,
			"close timed out: the peer took nothing of the %d bytes left to write for %v",
			c.r().wq.bytes, c.cfg.LingerTimeout), closePlain)
	}
}

// countDiscarded counts input thrown away during the linger once nothing
// we sent waits for the peer's acknowledgement, and reports when it passes
// LingerBytes: from then on a peer that keeps sending only holds the
// connection, and closing can no longer cost it our data. While our data is
// unacknowledged only LingerTimeout ends the linger.
func (c *connection) countDiscarded(n int) bool {
	if c.cfg.LingerBytes < 0 || unsentBytes(c.conn) > 0 {
		return false
	}
	cl := c.closer()
	cl.discarded += n
	return cl.discarded > c.cfg.LingerBytes
}

// announce sends what an orderly end tells: the Close replies, then the
// owner's Disconnected (the local handler's Disconnected call). It happens
// once, at the FIN of a lingering close or in teardown.
func (c *connection) announce() {
	if c.announced {
		return
	}
	c.announced = true
	if cl := c.r().cl; cl != nil {
		for _, w := range append(cl.closeWaiters, cl.writeShutWaiters...) {
			c.ctx.Send(w, &messages.Ack{Error: c.r().endErr})
		}
		cl.closeWaiters, cl.writeShutWaiters = nil, nil
	}
	if c.handler != nil {
		c.safely(c.drainEvents)
		c.safely(func() { c.handler.Disconnected(&c.sock, c.r().endErr) })
		c.handler = nil
		return
	}
	if c.owner != nil && !c.ownerGone {
		endErr := c.r().endErr
		if endErr == nil && c.r().cl != nil {
			endErr = c.r().cl.ownerLost // a clean close, but not one the owner asked for
		}
		c.ctx.Send(c.owner, &messages.Disconnected{Connection: c.self(), Error: endErr})
		c.unwatchOwner()
		c.ownerGone = true // told its last message: nothing more goes to it
	}
}

// startCloseWrite half-closes after the queued writes are flushed.
func (c *connection) startCloseWrite(who *actor.PID) {
	if _, ok := c.conn.(interface{ CloseWrite() error }); !ok {
		if who != nil {
			c.ctx.Send(who, &messages.Ack{Error: messages.NewError(messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION,
				"this connection (%T) cannot half-close", c.conn)})
		}
		return
	}
	if c.fin == finSent || c.phase >= ending {
		if who != nil {
			c.ctx.Send(who, &messages.Ack{})
		}
		return
	}
	if who != nil {
		cl := c.closer()
		cl.writeShutWaiters = append(cl.writeShutWaiters, who)
	}
	c.directWritesOff() // the FIN comes after every direct write
	c.fin = finAfterFlush
	if c.writesIdle() {
		c.flushed()
	}
}

// abort is abort(): queued writes fail, the connection is reset.
func (c *connection) abort() {
	c.endWith(nil, messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
		"write aborted: connection %d was aborted", c.id), closeReset)
}

// failWith reports a socket error to the owner and ends with it.
func (c *connection) failWith(e *messages.Error, how closeHow) {
	if c.phase >= ending {
		return
	}
	c.x().lastErr = e
	if c.handler == nil && c.canTell(c.owner) {
		c.ctx.Send(c.owner, &messages.ErrorOccurred{Connection: c.self(), Error: e})
	}
	c.endWith(e, e, how)
}

// endWith ends the connection: the socket is closed and the last messages
// are sent in Stopping (teardown), which also runs when someone else stops
// the actor. endErr goes into Disconnected; failErr into the WriteFailed of
// the writes still queued.
func (c *connection) endWith(endErr, failErr *messages.Error, how closeHow) {
	if c.phase >= ending {
		return
	}
	c.phase = ending
	c.endHow = how
	if endErr != nil || failErr != nil || c.more != nil {
		m := c.x()
		m.endErr, m.failErr = endErr, failErr
	}
	// A PID of its own: c.self()'s cached route may lead elsewhere (knowSelf).
	c.ctx.Stop(actor.NewPID(c.self().Address, c.self().Id))
}

func (c *connection) closedError() *messages.Error {
	if e := c.r().failErr; e != nil {
		return e
	}
	return messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
		"connection %d closed before the write reached the wire", c.id)
}

// teardown closes the socket, waits for the goroutines (closing the socket
// wakes them), settles every write and sends the last messages, Disconnected
// last of all. It runs in Stopping, before the actor leaves the registry, so
// what the goroutines send while it waits lands in the mailbox and is
// dropped quietly.
func (c *connection) teardown(ctx actor.Context) {
	if c.phase == closed {
		return
	}
	c.phase = closed
	c.stopped.Store(true)
	var closeTimer *time.Timer
	if cl := c.r().cl; cl != nil {
		closeTimer = cl.closeTimer
	}
	for _, t := range []*time.Timer{c.r().idle, closeTimer, c.r().peerCloseTimer} {
		if t != nil {
			t.Stop()
		}
	}
	if c.loop != nil {
		c.loop.stop() // out of the epoll set before the descriptor is closed
	}
	c.closeSocket(c.endHow)
	if c.r().done != nil {
		close(c.more.done)
	}
	// The goroutines end on their own now that the socket is closed; the
	// actor does not wait for them (it may be running on one of them: the
	// connection's dispatcher runs it on the goroutine that sends to it).
	// A write still in a writer goroutine is reported failed: the socket is
	// gone, and how much of it reached the peer is unknown.
	failErr := c.closedError()
	if m := c.more; m != nil {
		m.job = nil
		m.wq.drain(func(w pendingWrite) { c.fail(w, failErr) })
		if m.held != nil {
			putBuf(m.held.buf)
			m.held = nil
		}
	}
	c.ctx = ctx
	c.announce()
}

// closeSocket closes the socket, once, in teardown.
func (c *connection) closeSocket(how closeHow) {
	switch how {
	case closeReset:
		if tc := tcpConnOf(c.conn); tc != nil {
			_ = tc.SetLinger(0)
			c.soLinger = false
			// A wrapper's Close says goodbye first (TLS close_notify,
			// a clean end to the peer): a reset says nothing.
			_ = tc.Close()
		}
	}
	if c.soLinger {
		// SO_LINGER > 0 makes close(2) wait for the peer: not in the actor.
		go c.conn.Close()
		return
	}
	_ = c.conn.Close()
}

// safely runs a handler callback during teardown: a panic there must not
// stop the teardown.
func (c *connection) safely(f func()) {
	defer func() {
		if r := recover(); r != nil {
			c.ctx.Logger().Error("tcpactor: handler panicked while the connection ended",
				"connection", c.id, "panic", r)
		}
	}()
	f()
}

// crashed handles a panic in Receive: instead of Proto.Actor's supervision
// (which would restart the actor over a socket it cannot restore), the
// connection is reset and the actor stops, ending with Disconnected.
func (c *connection) crashed(ctx actor.Context, r any) {
	ctx.Logger().Error("tcpactor: connection actor panicked", "connection", c.id, "phase", c.phase, "panic", r)
	if c.phase == closed {
		return
	}
	e := messages.NewError(messages.SocketError_SOCKET_ERROR_UNKNOWN, "connection %d: internal error: %v", c.id, r)
	c.x().lastErr = e
	if c.phase == ending {
		c.x().endErr, c.endHow = e, closeReset
		return
	}
	if c.me == nil {
		c.knowSelf(ctx)
	}
	c.failWith(e, closeReset)
}
