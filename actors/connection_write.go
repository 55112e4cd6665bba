package actors

// Writing: a Write is queued (writeQueue), then written from the actor
// without blocking while the socket takes it. Once a write would block, the
// connection's event loop tells it when the socket has room (EPOLLOUT), or,
// without a loop, a writer goroutine writes. Every Write ends as exactly
// one WriteAck (ack_id != 0) or WriteFailed; a local Handler hears them as
// callbacks, after the one it is in.

import (
	"errors"
	"net"

	"github.com/tcpactor/tcpactor/messages"
)

// write queues w. borrowed data (a local handler's, possibly the pooled
// buffer of Received) is written at once or copied, never kept.
func (c *connection) write(w pendingWrite, borrowed bool) {
	switch {
	case c.phase >= ending:
		c.fail(w, c.closedError())
		return
	case c.phase >= closing || c.fin != finNotSent:
		c.fail(w, messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
			"write after close: connection %d no longer writes", c.id))
		return
	case w.demand < 0:
		c.fail(w, messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
			"invalid argument: write with demand %d", w.demand))
		return
	case len(w.data) == 0:
		c.ack(w)
		return
	case c.r().wq.bytes > 0 && c.more.wq.bytes+len(w.data) > c.cfg.WriteQueueBytes:
		c.fail(w, messages.NewError(messages.SocketError_SOCKET_ERROR_SOCKET_RESOURCE,
			"write queue full: %d bytes queued, %d more would pass the limit of %d bytes",
			c.more.wq.bytes, len(w.data), c.cfg.WriteQueueBytes))
		return
	}
	c.directWritesOff() // what the owner writes directly must not overtake w, nor w it
	m := c.x()          // kept from here on: pump, written and the writer job use c.more
	m.wq.push(w)
	if borrowed {
		if c.raw != nil && m.job == nil && m.wq.len() == 1 {
			// The fast path: straight to the kernel, no copy, no goroutine.
			n, _, err := writeOne(c.raw, w.data)
			c.written(n)
			if err != nil {
				c.writeFailed(err)
				return
			}
			if m.wq.len() == 0 {
				c.flushed()
				return
			}
		}
		// What stays queued must not point into the caller's buffer.
		last := m.wq.last()
		last.data = append([]byte(nil), last.data...)
	}
	c.pump()
}

// pump moves queued writes to the wire: directly while the socket takes
// them; once a write would block, again when the socket has room (blocked).
func (c *connection) pump() {
	m := c.more
	for m.job == nil && c.phase < ending && m.wq.len() > 0 {
		if c.raw == nil {
			c.startJob()
			return
		}
		bufs := m.wq.batch(maxBatch)
		n, blocked, err := writeNow(c.raw, bufs)
		clear(bufs)
		c.written(n)
		if err != nil {
			c.writeFailed(err)
			return
		}
		if blocked {
			c.blocked()
			return
		}
	}
	if m.job == nil && m.wq.len() == 0 {
		c.flushed()
	}
}

// written accounts n bytes that reached the kernel, from the actor or from
// a writer goroutine: each write now wholly written is acknowledged.
func (c *connection) written(n int) {
	if n <= 0 {
		return
	}
	c.bytesSent += uint64(n)
	c.cfg.Stats.sent(n)
	c.touch()
	c.more.wq.written(n, c)
}

// blocked waits for room in the socket's buffer: on the connection's event
// loop (EPOLLOUT), which tells it with loopWritable, or in a writer
// goroutine. Meanwhile m.job is waitingForRoom: nothing else writes.
func (c *connection) blocked() {
	if c.loop == nil {
		c.startJob()
		return
	}
	c.more.job = waitingForRoom
	if err := c.loop.waitWritable(); err != nil {
		c.more.job = nil
		c.writeFailed(err)
	}
}

// writableMsg tells a connection that the socket its write waited for has
// room (or has failed: the write then finds out how).
type writableMsg struct{}

// loopWritable is every writableMsg: one value, sent without allocating.
var loopWritable = &writableMsg{}

// waitingForRoom is the job of a connection whose event loop waits for
// room for its queued writes (blocked): no goroutine runs it.
var waitingForRoom = &writeJob{}

// onWritable goes on writing once the loop has seen room (or an error,
// which the next write meets).
func (c *connection) onWritable() {
	if m := c.more; m != nil && m.job == waitingForRoom {
		m.job = nil
		c.pump()
	}
}

// startJob hands the queued writes to a writer goroutine, which writes them
// (blocking in the poller) with one writev where it can.
func (c *connection) startJob() {
	if err := c.promote(); err != nil { // a raw socket cannot wait: a net.Conn does
		c.writeFailed(err)
		return
	}
	j := &writeJob{bufs: c.more.wq.buffers()}
	c.more.job = j
	conn := c.conn
	go func() {
		j.n, j.err = j.bufs.WriteTo(conn)
		c.sendSelf(j)
	}()
}

// onWritten settles a finished writer job: what it wrote is acknowledged;
// after an error, what it did not write is still at the head of the queue,
// to fail there.
func (c *connection) onWritten(j *writeJob) {
	if j != c.more.job {
		return // settled already, at the end
	}
	c.more.job = nil
	c.written(int(j.n))
	if j.err != nil {
		c.writeFailed(j.err)
		return
	}
	c.pump()
}

func (c *connection) writeFailed(err error) {
	e := socketError(err)
	if e == nil || errors.Is(err, net.ErrClosed) {
		e = c.closedError()
	}
	c.failWith(e, closePlain)
}

// flushed runs when nothing is left to write: a pending CloseWrite or Close
// completes now.
func (c *connection) flushed() {
	if c.phase >= ending {
		return
	}
	if c.fin == finAfterFlush {
		var e *messages.Error
		if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
			if err := cw.CloseWrite(); err != nil {
				e = messages.NewError(messages.SocketError_SOCKET_ERROR_NETWORK, "half-close: %v", err)
			}
		}
		c.fin = finSent
		if cl := c.r().cl; cl != nil {
			for _, w := range cl.writeShutWaiters {
				c.ctx.Send(w, &messages.Ack{Error: e})
			}
			cl.writeShutWaiters = nil
		}
		if c.peerClosed {
			c.endWith(nil, nil, closePlain)
			return
		}
	}
	if c.phase == closing {
		c.finishClose()
	}
}

func (c *connection) ack(w pendingWrite) {
	// Wholly written, by the actor or by a writer goroutine whose job is
	// over: nothing reads the memory any more. (A failed write is not
	// recycled: a writer goroutine may still hold it at the end.)
	recycleBuf(w.donated)
	if w.demand > 0 {
		c.demand(w.demand)
	}
	switch {
	case w.local:
		if w.ackID != 0 {
			m := c.x()
			m.events = append(m.events, handlerEvent{ackID: w.ackID})
		}
	case w.ackID != 0 && c.canTell(w.to):
		c.ctx.Send(w.to, &messages.WriteAck{Connection: c.self(), AckId: w.ackID})
	}
}

func (c *connection) fail(w pendingWrite, e *messages.Error) {
	c.cfg.Stats.writeFailed()
	switch {
	case w.local:
		m := c.x()
		m.events = append(m.events, handlerEvent{ackID: w.ackID, err: e})
	case c.canTell(w.to):
		c.ctx.Send(w.to, &messages.WriteFailed{Connection: c.self(), AckId: w.ackID, Error: e})
	}
}

// drainEvents gives the local handler the write outcomes that happened
// while it was busy. A callback may cause more; they are given too. The
// slice's memory is kept for the next ones (an echo has one an echo), unless
// a burst made it large.
func (c *connection) drainEvents() {
	m := c.more
	if m == nil {
		return
	}
	base := m.events
	for len(m.events) > 0 && c.handler != nil {
		ev := m.events[0]
		m.events[0] = handlerEvent{}
		m.events = m.events[1:]
		if ev.err == nil {
			c.handler.WriteAcked(&c.sock, ev.ackID)
		} else {
			c.handler.WriteFailed(&c.sock, ev.ackID, ev.err)
		}
	}
	if len(m.events) == 0 {
		m.events = nil
		if cap(base) <= 4 {
			clear(base[:cap(base)]) // a callback's append may have copied them elsewhere
			m.events = base[:0]
		}
	}
}
