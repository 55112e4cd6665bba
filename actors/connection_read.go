package actors

// Reading: the owner's credit, the reader goroutine's results (delivered,
// held back, or thrown away while closing), and the peer's end of input.
// The reader goroutine itself is in connection_io.go.

import (
	"errors"
	"net"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// startReader starts the reader goroutine; it ends with its first error.
func (c *connection) startReader(timeout time.Duration) {
	if c.loop != nil {
		c.loop.setTimeout(timeout)
		return
	}
	r := &reader{conn: c.conn, raw: c.raw, size: c.cfg.ReadChunkSize, timeout: timeout,
		permit: c.more.permit, done: c.more.done, send: c.sendSelf}
	go r.run()
}

// demand grants n more Received.
func (c *connection) demand(n int) {
	if n < 1 {
		return
	}
	c.credit = min(c.credit+n, maxCredit)
	c.deliverHeld()
	c.askRead()
}

// askRead gives the reader its permit for one read when the connection may
// read: open with credit and nothing held back, or closing or lingering,
// which read without credit and throw the bytes away (unread input at
// close(2) would reset the connection) — as long as the peer may still
// send, and unless the owner reads itself (lendRead).
func (c *connection) askRead() {
	if c.lendRead() || c.reading || c.peerClosed {
		return
	}
	switch c.phase {
	case open:
		if c.r().held != nil || c.credit <= 0 {
			return
		}
	case closing, lingering:
	default:
		return
	}
	c.reading = true
	if c.loop != nil {
		c.loop.arm() // credit is interest: armed for one read
		return
	}
	c.more.permit <- struct{}{} // never blocks: one permit at a time, buffer of one
}

func (c *connection) onRead(ctx actor.Context, r *readResult) {
	c.reading = false
	// The reader reuses r for its next read, and the next read may start
	// while this one is handled: a Handler's Received that grants credit
	// gives the reader its permit. What is needed of r after the delivery
	// is taken now.
	err := r.err
	if c.phase >= ending {
		putBuf(r.buf)
		return
	}
	if r.n > 0 {
		c.bytesReceived += uint64(r.n)
		c.cfg.Stats.received(r.n)
		c.touch()
		switch {
		case c.phase == closing || c.phase == lingering:
			putBuf(r.buf) // disconnectFromHost: nothing more is delivered
			if c.phase == lingering && c.countDiscarded(r.n) {
				c.endWith(nil, nil, closePlain)
				return
			}
		case c.credit > 0:
			c.deliver(r)
		default:
			c.x().held = r // its error too, if any: handled once the bytes are
		}
	}
	if err != nil {
		// The phase again: a Handler's Received may have closed or aborted.
		switch {
		case c.phase >= ending:
		case c.phase == closing || c.phase == lingering:
			c.closingReadEnded(err)
		case c.r().held != nil:
			// The end of the input comes after the bytes held back: it is
			// in the held result (deliverHeld).
		default:
			c.readFailed(ctx, err)
		}
		return
	}
	c.askRead()
}

func (c *connection) deliverHeld() {
	if r := c.r().held; r != nil && c.credit > 0 && c.phase < ending {
		c.more.held = nil
		err := r.err // now: a credit granted in the delivery lets the reader reuse r
		c.deliver(r)
		if err != nil {
			c.readFailed(c.ctx, err)
		}
	}
}

// deliver spends one credit on r: a Received to the owner, or a call of the
// local handler with the pooled buffer itself.
func (c *connection) deliver(r *readResult) {
	c.credit--
	if c.handler != nil {
		data := (*r.buf)[:r.n]
		defer putBuf(r.buf)
		c.handler.Received(&c.sock, data)
		return
	}
	c.ctx.Send(c.owner, &messages.Received{Connection: c.self(), Data: takeBuf(r.buf, r.n), Donate: true})
}

func (c *connection) readFailed(ctx actor.Context, err error) {
	switch e := socketError(err); {
	case e == nil: // EOF: the peer sent FIN
		c.onPeerClosed(ctx)
	case errors.Is(err, net.ErrClosed): // closed under the actor: not by it
		c.failWith(messages.NewError(messages.SocketError_SOCKET_ERROR_NETWORK,
			"the socket of connection %d was closed outside its actor", c.id), closePlain)
	case e.Code == messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT:
		c.failWith(messages.NewError(e.Code, "read timed out: the peer sent nothing for %v", c.cfg.ReadTimeout), closePlain)
	case e.Code == messages.SocketError_SOCKET_ERROR_REMOTE_HOST_CLOSED:
		// As Qt: a reset also finishes the read channel (readChannelFinished),
		// after errorOccurred and before disconnected.
		c.peerClosed = true
		c.x().lastErr = e
		if c.handler == nil && c.canTell(c.owner) {
			ctx.Send(c.owner, &messages.ErrorOccurred{Connection: c.self(), Error: e})
			ctx.Send(c.owner, &messages.PeerClosed{Connection: c.self()})
		}
		c.endWith(e, e, closePlain)
	default:
		c.failWith(e, closePlain)
	}
}

// onPeerClosed handles the peer's FIN. As Qt, the owner hears
// RemoteHostClosedError (ErrorOccurred, "The remote host closed the
// connection") then PeerClosed (readChannelFinished). Unlike Qt, which
// closes the socket at once, the write side stays open for the owner's
// answer to a request that ended with a half-close: until the owner closes,
// or PeerCloseTimeout passes (keep_open_on_peer_close: no time-out). A local
// Handler decides at once with PeerClosed's return value.
func (c *connection) onPeerClosed(ctx actor.Context) {
	c.peerClosed = true
	c.x().lastErr = messages.RemoteHostClosed()
	keepOpen := c.keepOpen
	if c.handler != nil {
		keepOpen = c.handler.PeerClosed(&c.sock)
	} else if c.canTell(c.owner) {
		if !c.finQuiet {
			ctx.Send(c.owner, &messages.ErrorOccurred{Connection: c.self(), Error: c.more.lastErr})
		}
		ctx.Send(c.owner, &messages.PeerClosed{Connection: c.self()})
	}
	switch {
	case c.phase != open: // the Handler's PeerClosed closed or aborted
	case c.fin == finSent:
		c.endWith(nil, nil, closePlain) // both directions are done
	case keepOpen:
	case c.handler != nil:
		c.startClose(nil) // as Qt: disconnectFromHost(), which flushes first
	case c.peerCloseTimeout() > 0:
		d := c.peerCloseTimeout()
		c.x().peerCloseTimer = time.AfterFunc(d, func() { c.sendSelf(&peerCloseTick{}) })
	default:
		c.startClose(nil)
	}
}

// onPeerCloseTick closes a connection whose owner neither closed nor
// answered within PeerCloseTimeout of PeerClosed: gracefully, so what it
// did write is delivered.
func (c *connection) onPeerCloseTick() {
	if c.phase != open || c.fin != finNotSent {
		return
	}
	c.startClose(nil)
}
