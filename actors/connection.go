package actors

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// maxCredit caps the credit a connection keeps, so that Demand cannot
// overflow it.
const maxCredit = 1 << 30

// NewConnection makes the props of a ConnectionActor: QTcpSocket as an actor.
// conn is the accepted socket, id its number within the server and server
// the ServerActor's PID (reported in ConnectionInfo; may be nil).
//
// The actor owns conn from now on: it closes it when the connection ends,
// whichever way it ends, and then stops itself, so whoever watches it gets
// Terminated. With cfg.Handler nil it waits for an owner (SetOwner) before
// reading; with a Handler it serves itself at once. Stopping it from outside
// (Stop, Poison) closes the socket; an owner still gets Disconnected last.
//
// Replies: SetOwner, Abort, GetInfo and SetSocketOption are answered at
// once; CloseWrite once the queued writes are flushed and FIN is sent; Close
// once the queued writes are flushed and FIN is sent (the lingering that
// follows is not waited for), with the error that ended the connection if it
// ended otherwise. A Write is answered with WriteAck (ack_id != 0) when it is
// handed to the kernel, or WriteFailed, sent to its sender, else to the
// owner. Messages to the owner, in order: Received, WriteAck, WriteFailed,
// PeerClosed, ErrorOccurred, and Disconnected last, exactly once (not when
// the owner itself has stopped). A request that reaches the connection after
// its actor stopped is answered too, from the dead letters of its actor
// system (see answerDeadLetters).
//
// The peer's FIN (PeerClosed) does not close the connection: the owner
// still writes its answer, then closes (Close, CloseWrite, Abort). An owner
// that does nothing is closed for after ConnectionConfig.PeerCloseTimeout
// (ClaimOptions.peer_close_timeout_ms), gracefully; keep_open_on_peer_close
// waits for the owner without a time-out.
//
// Every ending but Abort (and a broken socket) is a lingering close, as
// nginx's lingering_close: the queued writes are flushed while the peer's
// input is read and thrown away, then FIN, then the input is still read and
// thrown away until the peer closes or ConnectionConfig.LingerTimeout
// passes, and only then is the socket closed. Closing a socket with unread
// input would reset it and throw away what the kernel still holds of
// acknowledged writes. The owner gets Disconnected (and Close its Ack) at
// the FIN, without waiting for the linger; the actor stops (its watchers
// get Terminated) when the socket is closed. A flush that makes no progress
// for LingerTimeout (a peer that does not read) ends the connection with
// SocketTimeoutError, its queued writes failed.
//
// The actor is never restarted: a panic while handling a message closes the
// socket (reset) and stops the actor.
func NewConnection(conn net.Conn, id uint64, server *actor.PID, cfg ConnectionConfig) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return newConnection(conn, id, server, cfg) },
		actor.WithDispatcher(connectionDispatcher))
}

// closeHow says how the socket is closed when the connection ends.
type closeHow int

const (
	closePlain closeHow = iota // close(2): the kernel sends what it holds, then FIN (RST if input is unread)
	closeReset                 // SO_LINGER 0, then close(2): RST
)

// pendingWrite is one Write waiting for (or on its way to) the wire.
type pendingWrite struct {
	data   []byte
	ackID  uint64
	demand int        // credit granted when the write is on the wire (Write.demand)
	to     *actor.PID // where WriteAck/WriteFailed go; nil: nowhere
	local  bool       // issued by the local Handler: report through its callbacks
}

// handlerEvent is a write outcome waiting to be given to the local Handler
// once its current callback has returned.
type handlerEvent struct {
	ackID uint64
	err   *messages.Error // nil: WriteAcked
}

// Messages from the connection's own goroutines (and timer) to the actor.
// They never cross nodes, so they are plain Go structs.
type (
	// readResult is one read of the reader goroutine.
	readResult struct {
		buf *[]byte // pooled; nil when n == 0
		n   int
		err error
	}
	// writeJob is a batch handed to a writer goroutine; the goroutine fills n
	// and err, then sends the job back.
	writeJob struct {
		bufs net.Buffers
		n    int64
		err  error
	}
	// idleTick asks the actor to check its idle time-out.
	idleTick struct{}
	// closeTick asks the actor to check the progress of a lingering close.
	closeTick struct{}
	// peerCloseTick ends a connection whose owner did not close it within
	// PeerCloseTimeout of PeerClosed.
	peerCloseTick struct{}
)

// connection is the ConnectionActor.
type connection struct {
	conn   net.Conn
	raw    syscall.RawConn // set only for a plain *net.TCPConn: the fast paths
	id     uint64
	server *actor.PID
	cfg    ConnectionConfig

	ctx  actor.Context // current context, for Socket and the send helpers
	self *actor.PID    // ctx.Self(), put in the messages the actor sends
	me   *actor.PID    // a private copy, for sends to itself (see started)
	sys  *actor.ActorSystem

	// Who is served.
	owner     *actor.PID
	ownerGone bool
	handler   Handler
	sock      *Socket
	events    []handlerEvent
	serving   bool

	// Reading.
	credit   int
	keepOpen bool
	reading  bool        // the reader holds a read permit
	held     *readResult // bytes read when the credit was taken away by a hand-over
	heldErr  error       // the read error that came with held (a wrapper's n > 0 with EOF)
	permit   chan struct{}
	done     chan struct{}

	// Writing.
	wq       []pendingWrite // queued, not yet with a writer goroutine
	wqHead   int
	inflight []pendingWrite // with the writer goroutine
	job      *writeJob
	queued   int // bytes in wq and inflight: bytes_to_write
	iov      [][]byte

	// Endings.
	closing          bool // Close: flush, FIN, end; nothing more is read
	writeShutPending bool // CloseWrite: flush, then FIN
	writeShut        bool // FIN sent
	peerClosed       bool
	closeWaiters     []*actor.PID
	writeShutWaiters []*actor.PID
	ending           bool
	torn             bool
	socketClosed     bool
	endErr           *messages.Error // Disconnected.error
	failErr          *messages.Error // WriteFailed.error for writes left at the end
	endHow           closeHow
	soLinger         bool // SO_LINGER > 0 was set: close(2) may block
	peerCloseTimeout time.Duration
	peerCloseTimer   *time.Timer

	// The lingering close: flush (input discarded), FIN, discard until the
	// peer closes.
	closeTimer *time.Timer
	flushedAt  uint64 // bytesSent when the close timer was last armed
	lingering  bool   // FIN sent, Disconnected sent: reading to the peer's end
	announced  bool   // Disconnected and the Close replies are sent
	discarded  int    // bytes thrown away once nothing of ours was unacknowledged

	// Counters and time-outs.
	bytesReceived uint64
	bytesSent     uint64
	lastErr       *messages.Error
	lastActive    time.Time
	idle          *time.Timer
	stopped       atomic.Bool
}

func newConnection(conn net.Conn, id uint64, server *actor.PID, cfg ConnectionConfig) *connection {
	if cfg.ReadChunkSize <= 0 {
		cfg.ReadChunkSize = DefaultReadChunkSize
	}
	if cfg.InitialCredit <= 0 {
		cfg.InitialCredit = DefaultInitialCredit
	}
	if cfg.WriteQueueBytes <= 0 {
		cfg.WriteQueueBytes = DefaultWriteQueueBytes
	}
	if cfg.LingerTimeout == 0 {
		cfg.LingerTimeout = DefaultLingerTimeout
	}
	if cfg.LingerBytes == 0 {
		cfg.LingerBytes = DefaultLingerBytes
	}
	if cfg.PeerCloseTimeout == 0 {
		cfg.PeerCloseTimeout = DefaultPeerCloseTimeout
	}
	c := &connection{conn: conn, id: id, server: server, cfg: cfg}
	if tc, ok := conn.(*net.TCPConn); ok && fastPaths {
		if raw, err := tc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	c.sock = &Socket{c: c}
	return c
}

// Receive is the actor's message switch. It never blocks: sockets are read
// and (when a write would block) written by the connection's goroutines.
func (c *connection) Receive(ctx actor.Context) {
	c.ctx = ctx
	defer func() {
		if r := recover(); r != nil {
			c.crashed(ctx, r)
		}
	}()
	if !c.authorize(ctx) { // what remote peers may send: authz.go
		return
	}
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.started(ctx)
	case *readResult:
		c.onRead(ctx, m)
	case *writeJob:
		c.onWritten(m)
	case *idleTick:
		c.onIdleTick(ctx)
	case *closeTick:
		c.onCloseTick()
	case *peerCloseTick:
		c.onPeerCloseTick()
	case *messages.SetOwner:
		c.setOwner(ctx, m)
	case *messages.Demand:
		c.demand(int(m.N))
	case *messages.Write:
		c.write(pendingWrite{data: m.Data, ackID: m.AckId, to: c.replyTo(ctx), demand: int(m.Demand)}, false)
	case *messages.Close:
		c.startClose(ctx.Sender())
	case *messages.CloseWrite:
		c.startCloseWrite(ctx.Sender())
	case *messages.Abort:
		c.respond(ctx, &messages.Ack{})
		c.abort()
	case *messages.GetInfo:
		c.respond(ctx, c.info())
	case *messages.SetSocketOption:
		c.respond(ctx, &messages.Ack{Error: c.setSocketOption(m)})
	case *actor.Terminated:
		c.onTerminated(m)
	case *actor.Stopping, *actor.Restarting:
		c.teardown(ctx)
	case *actor.Stopped, actor.SystemMessage, actor.AutoReceiveMessage, actor.AutoRespond:
	default:
		c.other(ctx, m)
	}
	c.drainEvents()
	if c.lingering && !c.announced {
		// After the message, not inside the handler callback that closed.
		c.announce()
	}
}

func (c *connection) started(ctx actor.Context) {
	c.self, c.sys = ctx.Self(), ctx.ActorSystem()
	answerDeadLetters(c.sys)
	// A *PID caches the process it resolved to. Another actor system of the
	// same process that sends to this PID object caches its remote route in
	// it; the goroutines' own sends must not take that detour (their
	// messages are not protobuf), so they use a copy only this actor uses.
	c.me = actor.NewPID(c.self.Address, c.self.Id)
	if c.cfg.Handler == nil {
		return // wait for SetOwner: until then the kernel holds the bytes
	}
	c.handler = c.cfg.Handler()
	if c.handler == nil {
		panic("tcpactor: HandlerFactory returned nil")
	}
	c.credit = c.cfg.InitialCredit
	c.handler.Connected(c.sock)
	c.serve()
}

// serve starts reading (as far as credit allows) and the idle clock.
func (c *connection) serve() {
	if c.serving || c.ending {
		return
	}
	c.serving = true
	c.permit = make(chan struct{}, 1)
	c.done = make(chan struct{})
	c.startReader(c.cfg.ReadTimeout)
	if d := c.cfg.IdleTimeout; d > 0 {
		c.lastActive = time.Now()
		c.idle = time.AfterFunc(d, func() { c.sendSelf(&idleTick{}) })
	}
	c.askRead()
}

// startReader starts the reader goroutine; it ends with its first error.
func (c *connection) startReader(timeout time.Duration) {
	r := &reader{conn: c.conn, raw: c.raw, size: c.cfg.ReadChunkSize, timeout: timeout,
		permit: c.permit, done: c.done, send: c.sendSelf}
	go r.run()
}

// sendSelf is how the goroutines and the timer talk to the actor.
func (c *connection) sendSelf(msg any) {
	if !c.stopped.Load() {
		c.sys.Root.Send(c.me, msg)
	}
}

func (c *connection) respond(ctx actor.Context, msg any) {
	if ctx.Sender() != nil {
		ctx.Respond(msg)
	}
}

// replyTo is where the outcome of the current Write goes: its sender, or the
// owner when it has none.
func (c *connection) replyTo(ctx actor.Context) *actor.PID {
	if s := ctx.Sender(); s != nil {
		return s
	}
	return c.owner
}

// ---------------------------------------------------------------------------
// Owner
// ---------------------------------------------------------------------------

func (c *connection) setOwner(ctx actor.Context, m *messages.SetOwner) {
	owner := m.Owner
	if owner == nil {
		owner = ctx.Sender()
	}
	credit := int(m.GetOptions().GetInitialCredit())
	var e *messages.Error
	switch {
	case c.handler != nil:
		e = messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
			"connection %d is served by a local handler and cannot take an owner", c.id)
	case owner == nil:
		e = messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION, "SetOwner names no owner and has no sender")
	case credit < 0:
		e = messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
			"initial_credit %d is negative: want 0 (default) or more", credit)
	case m.GetOptions().GetPeerCloseTimeoutMs() < 0:
		e = messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
			"peer_close_timeout_ms %d is negative: want 0 (default) or more", m.GetOptions().GetPeerCloseTimeoutMs())
	case c.ending || c.closing:
		e = messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION, "connection %d is closing", c.id)
	}
	if e != nil {
		c.respond(ctx, &messages.Ack{Error: e})
		return
	}
	if credit == 0 {
		credit = c.cfg.InitialCredit
	}
	if c.owner != nil && !pidEqual(c.owner, owner) {
		ctx.Unwatch(c.owner)
	}
	if c.owner == nil || !pidEqual(c.owner, owner) {
		ctx.Watch(owner)
	}
	c.owner = owner
	c.keepOpen = m.GetOptions().GetKeepOpenOnPeerClose()
	c.peerCloseTimeout = c.cfg.PeerCloseTimeout
	if ms := m.GetOptions().GetPeerCloseTimeoutMs(); ms > 0 {
		c.peerCloseTimeout = time.Duration(ms) * time.Millisecond
	}
	c.credit = min(credit, maxCredit)
	c.respond(ctx, &messages.Ack{})
	if !c.serving {
		c.serve()
		return
	}
	c.deliverHeld()
	c.askRead()
}

func (c *connection) onTerminated(m *actor.Terminated) {
	if c.owner == nil || !pidEqual(m.Who, c.owner) {
		return // a former owner, watched before a hand-over
	}
	c.ownerGone = true
	if !c.announced {
		c.lastErr = messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
			"connection closed: its owner %s stopped", m.Who)
	}
	// What the owner wrote before it stopped is still delivered: a
	// lingering close, as if it had sent Close.
	c.startClose(nil)
}

func pidEqual(a, b *actor.PID) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Address == b.Address && a.Id == b.Id
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

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
// read: it serves, has credit, and holds nothing back.
func (c *connection) askRead() {
	if !c.serving || c.reading || c.ending || c.peerClosed {
		return
	}
	// A closing connection reads without credit and throws the bytes away:
	// unread input at close(2) would reset the connection.
	if !c.closing && (c.held != nil || c.credit <= 0) {
		return
	}
	c.reading = true
	c.permit <- struct{}{} // never blocks: one permit at a time, buffer of one
}

func (c *connection) onRead(ctx actor.Context, r *readResult) {
	c.reading = false
	if c.ending {
		putBuf(r.buf)
		return
	}
	if r.n > 0 {
		c.bytesReceived += uint64(r.n)
		c.cfg.Stats.received(r.n)
		c.touch()
		switch {
		case c.closing:
			putBuf(r.buf) // disconnectFromHost: nothing more is delivered
			if c.lingering && c.countDiscarded(r.n) {
				c.endWith(nil, nil, closePlain)
				return
			}
		case c.credit > 0:
			c.deliver(r)
		default:
			c.held = r
		}
	}
	if r.err != nil {
		switch {
		case c.closing:
			c.closingReadEnded(r.err)
		case c.held != nil:
			c.heldErr = r.err // the end of the input comes after the bytes held back
		default:
			c.readFailed(ctx, r.err)
		}
		return
	}
	c.askRead()
}

func (c *connection) deliverHeld() {
	if c.held != nil && c.credit > 0 && !c.ending {
		r := c.held
		c.held = nil
		c.deliver(r)
		if err := c.heldErr; err != nil {
			c.heldErr = nil
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
		c.handler.Received(c.sock, data)
		return
	}
	c.ctx.Send(c.owner, &messages.Received{Connection: c.self, Data: takeBuf(r.buf, r.n)})
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
		c.lastErr = e
		if c.handler == nil && c.canTell(c.owner) {
			ctx.Send(c.owner, &messages.ErrorOccurred{Connection: c.self, Error: e})
			ctx.Send(c.owner, &messages.PeerClosed{Connection: c.self})
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
	c.lastErr = messages.RemoteHostClosed()
	keepOpen := c.keepOpen
	if c.handler != nil {
		keepOpen = c.handler.PeerClosed(c.sock)
	} else if c.canTell(c.owner) {
		ctx.Send(c.owner, &messages.ErrorOccurred{Connection: c.self, Error: c.lastErr})
		ctx.Send(c.owner, &messages.PeerClosed{Connection: c.self})
	}
	switch {
	case c.ending || c.closing:
	case c.writeShut:
		c.endWith(nil, nil, closePlain) // both directions are done
	case keepOpen:
	case c.handler != nil:
		c.startClose(nil) // as Qt: disconnectFromHost(), which flushes first
	case c.peerCloseTimeout > 0:
		d := c.peerCloseTimeout
		c.peerCloseTimer = time.AfterFunc(d, func() { c.sendSelf(&peerCloseTick{}) })
	default:
		c.startClose(nil)
	}
}

// onPeerCloseTick closes a connection whose owner neither closed nor
// answered within PeerCloseTimeout of PeerClosed: gracefully, so what it
// did write is delivered.
func (c *connection) onPeerCloseTick() {
	if c.ending || c.closing || c.writeShut || c.writeShutPending {
		return
	}
	c.startClose(nil)
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

// write queues w. borrowed data (a local handler's, possibly the pooled
// buffer of Received) is written at once or copied, never kept.
func (c *connection) write(w pendingWrite, borrowed bool) {
	switch {
	case c.ending || c.torn:
		c.fail(w, c.closedError())
		return
	case c.closing || c.writeShutPending || c.writeShut:
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
	case c.queued > 0 && c.queued+len(w.data) > c.cfg.WriteQueueBytes:
		c.fail(w, messages.NewError(messages.SocketError_SOCKET_ERROR_SOCKET_RESOURCE,
			"write queue full: %d bytes queued, %d more would pass the limit of %d bytes",
			c.queued, len(w.data), c.cfg.WriteQueueBytes))
		return
	}
	c.queued += len(w.data)
	c.wq = append(c.wq, w)
	if borrowed {
		if c.raw != nil && c.job == nil && c.queueLen() == 1 {
			// The fast path: straight to the kernel, no copy, no goroutine.
			n, _, err := writeNow(c.raw, [][]byte{w.data})
			c.written(n)
			if err != nil {
				c.writeFailed(err)
				return
			}
			if c.queueLen() == 0 {
				c.flushed()
				return
			}
		}
		// What stays queued must not point into the caller's buffer.
		last := &c.wq[len(c.wq)-1]
		last.data = append([]byte(nil), last.data...)
	}
	c.pump()
}

func (c *connection) queueLen() int { return len(c.wq) - c.wqHead }

// pump moves queued writes to the wire: directly while the socket takes
// them, through a writer goroutine once a write would block.
func (c *connection) pump() {
	for c.job == nil && !c.ending && c.queueLen() > 0 {
		if c.raw == nil {
			c.startJob()
			return
		}
		bufs := c.batch()
		n, blocked, err := writeNow(c.raw, bufs)
		clear(bufs)
		c.written(n)
		if err != nil {
			c.writeFailed(err)
			return
		}
		if blocked {
			c.startJob()
			return
		}
	}
	if c.job == nil && c.queueLen() == 0 {
		c.flushed()
	}
}

// batch is the queued data, up to maxBatch writes, for one writev.
func (c *connection) batch() [][]byte {
	c.iov = c.iov[:0]
	for i := c.wqHead; i < len(c.wq) && len(c.iov) < maxBatch; i++ {
		c.iov = append(c.iov, c.wq[i].data)
	}
	return c.iov
}

// written accounts n bytes that reached the kernel from the head of the
// queue: each write now wholly written is acknowledged.
func (c *connection) written(n int) {
	if n <= 0 {
		return
	}
	c.bytesSent += uint64(n)
	c.cfg.Stats.sent(n)
	c.queued -= n
	c.touch()
	for n > 0 && c.queueLen() > 0 {
		w := &c.wq[c.wqHead]
		if n < len(w.data) {
			w.data = w.data[n:]
			return
		}
		n -= len(w.data)
		done := *w
		*w = pendingWrite{}
		c.wqHead++
		c.ack(done)
	}
	c.compact()
}

func (c *connection) compact() {
	if c.wqHead == len(c.wq) {
		c.wq, c.wqHead = c.wq[:0], 0
	}
}

// startJob hands the queued writes to a writer goroutine, which writes them
// (blocking in the poller) with one writev where it can.
func (c *connection) startJob() {
	c.inflight = append(c.inflight[:0], c.wq[c.wqHead:]...)
	clear(c.wq[c.wqHead:])
	c.wq, c.wqHead = c.wq[:0], 0
	j := &writeJob{bufs: make(net.Buffers, len(c.inflight))}
	for i, w := range c.inflight {
		j.bufs[i] = w.data
	}
	c.job = j
	conn := c.conn
	go func() {
		j.n, j.err = j.bufs.WriteTo(conn)
		c.sendSelf(j)
	}()
}

func (c *connection) onWritten(j *writeJob) {
	if j != c.job {
		return // settled already, at the end
	}
	err := c.settleJob()
	if err != nil {
		c.writeFailed(err)
		return
	}
	c.pump()
}

// settleJob accounts a finished writer job: written writes are acknowledged;
// after an error, the rest go back to the head of the queue, to fail there.
func (c *connection) settleJob() error {
	j := c.job
	c.job = nil
	n := int(j.n)
	if n > 0 {
		c.bytesSent += uint64(n)
		c.cfg.Stats.sent(n)
		c.queued -= n
		c.touch()
	}
	i := 0
	for ; i < len(c.inflight); i++ {
		w := c.inflight[i]
		if n < len(w.data) {
			c.inflight[i].data = w.data[n:]
			break
		}
		n -= len(w.data)
		c.ack(w)
	}
	if rest := c.inflight[i:]; len(rest) > 0 {
		c.wq = append(append([]pendingWrite(nil), rest...), c.wq[c.wqHead:]...)
		c.wqHead = 0
	}
	clear(c.inflight)
	c.inflight = c.inflight[:0]
	return j.err
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
	if c.ending {
		return
	}
	if c.writeShutPending && !c.writeShut {
		c.writeShutPending = false
		var e *messages.Error
		if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
			if err := cw.CloseWrite(); err != nil {
				e = messages.NewError(messages.SocketError_SOCKET_ERROR_NETWORK, "half-close: %v", err)
			}
		}
		c.writeShut = true
		for _, w := range c.writeShutWaiters {
			c.ctx.Send(w, &messages.Ack{Error: e})
		}
		c.writeShutWaiters = nil
		if c.peerClosed {
			c.endWith(nil, nil, closePlain)
			return
		}
	}
	if c.closing {
		c.finishClose()
	}
}

func (c *connection) ack(w pendingWrite) {
	if w.demand > 0 {
		c.demand(w.demand)
	}
	switch {
	case w.local:
		if w.ackID != 0 {
			c.events = append(c.events, handlerEvent{ackID: w.ackID})
		}
	case w.ackID != 0 && c.canTell(w.to):
		c.ctx.Send(w.to, &messages.WriteAck{Connection: c.self, AckId: w.ackID})
	}
}

func (c *connection) fail(w pendingWrite, e *messages.Error) {
	c.cfg.Stats.writeFailed()
	switch {
	case w.local:
		c.events = append(c.events, handlerEvent{ackID: w.ackID, err: e})
	case c.canTell(w.to):
		c.ctx.Send(w.to, &messages.WriteFailed{Connection: c.self, AckId: w.ackID, Error: e})
	}
}

// canTell is false for nobody and for an owner known to be gone.
func (c *connection) canTell(to *actor.PID) bool {
	return to != nil && !(c.ownerGone && pidEqual(to, c.owner))
}

// drainEvents gives the local handler the write outcomes that happened
// while it was busy. A callback may cause more; they are given too.
func (c *connection) drainEvents() {
	for len(c.events) > 0 && c.handler != nil {
		ev := c.events[0]
		c.events = c.events[1:]
		if ev.err == nil {
			c.handler.WriteAcked(c.sock, ev.ackID)
		} else {
			c.handler.WriteFailed(c.sock, ev.ackID, ev.err)
		}
	}
	if len(c.events) == 0 {
		c.events = nil
	}
}

// ---------------------------------------------------------------------------
// Endings
// ---------------------------------------------------------------------------

// startClose is disconnectFromHost(): flush, FIN, end. who (may be nil) gets
// Ack when the connection has ended.
func (c *connection) startClose(who *actor.PID) {
	if who != nil {
		if c.announced {
			c.ctx.Send(who, &messages.Ack{Error: c.endErr})
		} else {
			c.closeWaiters = append(c.closeWaiters, who)
		}
	}
	if c.ending || c.closing {
		return
	}
	c.closing = true
	if c.peerCloseTimer != nil {
		c.peerCloseTimer.Stop()
	}
	if c.held != nil {
		putBuf(c.held.buf)
		c.held = nil
	}
	// Read (and throw away) from now on, claimed or not, so that the peer
	// never waits on us and nothing is left unread at close(2).
	if c.serving {
		c.askRead()
	} else {
		c.serve()
	}
	c.armCloseTimer()
	if c.job == nil && c.queueLen() == 0 {
		c.flushed()
	}
}

// finishClose runs once a close has flushed every queued write: FIN, then
// the owner's Disconnected and the Close replies — everything it wrote is
// in the kernel, and nothing more will be read for it — then the linger,
// unless the peer has closed already.
func (c *connection) finishClose() {
	if c.announced || c.ending {
		return
	}
	if !c.writeShut {
		if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		c.writeShut = true
	}
	_, halfCloses := c.conn.(interface{ CloseWrite() error })
	if c.peerClosed || c.cfg.LingerTimeout < 0 || !halfCloses {
		// Nothing more can come, or the peer cannot see our FIN (a wrapper
		// that cannot half-close): no linger.
		c.endWith(nil, nil, closePlain)
		return
	}
	c.lingering = true // Receive announces the end once this message is handled
	if c.idle != nil {
		c.idle.Stop() // the linger has its own clock
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
		if c.lingering {
			c.endWith(nil, nil, closePlain)
		}
	case c.lingering:
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
	c.flushedAt = c.bytesSent
	if c.closeTimer == nil {
		c.closeTimer = time.AfterFunc(d, func() { c.sendSelf(&closeTick{}) })
		return
	}
	c.closeTimer.Reset(d)
}

// onCloseTick: a flush that moved goes on; one that did not fails its
// writes and ends with SocketTimeoutError; a linger is over.
func (c *connection) onCloseTick() {
	switch {
	case c.ending || !c.closing:
	case c.lingering:
		c.endWith(nil, nil, closePlain)
	case c.bytesSent != c.flushedAt:
		c.armCloseTimer()
	default:
		c.failWith(messages.NewError(messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT,
			"close timed out: the peer took nothing of the %d bytes left to write for %v",
			c.queued, c.cfg.LingerTimeout), closePlain)
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
	c.discarded += n
	return c.discarded > c.cfg.LingerBytes
}

// announce sends what an orderly end tells: the Close replies, then the
// owner's Disconnected (the local handler's Disconnected call). It happens
// once, at the FIN of a lingering close or in teardown.
func (c *connection) announce() {
	if c.announced {
		return
	}
	c.announced = true
	for _, w := range append(c.closeWaiters, c.writeShutWaiters...) {
		c.ctx.Send(w, &messages.Ack{Error: c.endErr})
	}
	c.closeWaiters, c.writeShutWaiters = nil, nil
	if c.handler != nil {
		c.safely(c.drainEvents)
		c.safely(func() { c.handler.Disconnected(c.sock, c.endErr) })
		c.handler = nil
		return
	}
	if c.owner != nil && !c.ownerGone {
		c.ctx.Send(c.owner, &messages.Disconnected{Connection: c.self, Error: c.endErr})
		c.ctx.Unwatch(c.owner)
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
	if c.writeShut || c.ending {
		if who != nil {
			c.ctx.Send(who, &messages.Ack{})
		}
		return
	}
	if who != nil {
		c.writeShutWaiters = append(c.writeShutWaiters, who)
	}
	c.writeShutPending = true
	if c.job == nil && c.queueLen() == 0 {
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
	if c.ending {
		return
	}
	c.lastErr = e
	if c.handler == nil && c.canTell(c.owner) {
		c.ctx.Send(c.owner, &messages.ErrorOccurred{Connection: c.self, Error: e})
	}
	c.endWith(e, e, how)
}

// endWith ends the connection: the socket is closed and the last messages
// are sent in Stopping (teardown), which also runs when someone else stops
// the actor. endErr goes into Disconnected; failErr into the WriteFailed of
// the writes still queued.
func (c *connection) endWith(endErr, failErr *messages.Error, how closeHow) {
	if c.ending {
		return
	}
	c.ending = true
	c.endErr, c.failErr, c.endHow = endErr, failErr, how
	c.ctx.Stop(c.me)
}

func (c *connection) closedError() *messages.Error {
	if c.failErr != nil {
		return c.failErr
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
	if c.torn {
		return
	}
	c.torn = true
	c.ending = true
	c.stopped.Store(true)
	for _, t := range []*time.Timer{c.idle, c.closeTimer, c.peerCloseTimer} {
		if t != nil {
			t.Stop()
		}
	}
	c.closeSocket(c.endHow)
	if c.done != nil {
		close(c.done)
	}
	// The goroutines end on their own now that the socket is closed; the
	// actor does not wait for them (it may be running on one of them: the
	// connection's dispatcher runs it on the goroutine that sends to it).
	// A write still in a writer goroutine is reported failed: the socket is
	// gone, and how much of it reached the peer is unknown.
	failErr := c.closedError()
	if c.job != nil {
		c.job = nil
		for _, w := range c.inflight {
			c.fail(w, failErr)
		}
		clear(c.inflight)
		c.inflight = c.inflight[:0]
	}
	for c.queueLen() > 0 {
		w := c.wq[c.wqHead]
		c.wq[c.wqHead] = pendingWrite{}
		c.wqHead++
		c.fail(w, failErr)
	}
	c.compact()
	c.queued = 0
	if c.held != nil {
		putBuf(c.held.buf)
		c.held = nil
	}
	c.ctx = ctx
	c.announce()
}

func (c *connection) closeSocket(how closeHow) {
	if c.socketClosed {
		return
	}
	c.socketClosed = true
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
	ctx.Logger().Error("tcpactor: connection actor panicked", "connection", c.id, "panic", r)
	if c.torn {
		return
	}
	e := messages.NewError(messages.SocketError_SOCKET_ERROR_UNKNOWN, "connection %d: internal error: %v", c.id, r)
	c.lastErr = e
	if c.ending {
		c.endErr, c.endHow = e, closeReset
		return
	}
	if c.me == nil {
		c.self, c.sys = ctx.Self(), ctx.ActorSystem()
		c.me = actor.NewPID(c.self.Address, c.self.Id)
	}
	c.failWith(e, closeReset)
}

// ---------------------------------------------------------------------------
// Time-outs, info, options, other messages
// ---------------------------------------------------------------------------

func (c *connection) touch() {
	if c.idle != nil {
		c.lastActive = time.Now()
	}
}

func (c *connection) onIdleTick(ctx actor.Context) {
	if c.ending || c.idle == nil || c.lingering {
		return
	}
	d := c.cfg.IdleTimeout
	if left := d - time.Since(c.lastActive); left > 0 {
		c.idle.Reset(left)
		return
	}
	c.failWith(messages.NewError(messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT,
		"idle time-out: nothing read or written for %v", d), closePlain)
}

func (c *connection) info() *messages.ConnectionInfo {
	info := ConnectionInfoOf(c.conn, c.id)
	if c.closing {
		info.State = messages.SocketState_SOCKET_STATE_CLOSING
	}
	if c.announced {
		info.State = messages.SocketState_SOCKET_STATE_UNCONNECTED // as Qt after disconnected()
	}
	info.BytesReceived = c.bytesReceived
	info.BytesSent = c.bytesSent
	info.BytesToWrite = uint64(c.queued)
	info.Owner = c.owner
	info.Server = c.server
	info.Error = c.lastErr
	return info
}

// tcpConnOf finds the TCP socket under conn, through wrappers that expose it
// with NetConn (crypto/tls does).
func tcpConnOf(conn net.Conn) *net.TCPConn {
	for range 8 {
		switch v := conn.(type) {
		case *net.TCPConn:
			return v
		case interface{ NetConn() net.Conn }:
			conn = v.NetConn()
		default:
			return nil
		}
	}
	return nil
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

// other handles messages the actor does not know: the local handler's when
// it wants them, otherwise an error reply.
func (c *connection) other(ctx actor.Context, m any) {
	if mh, ok := c.handler.(MessageHandler); ok {
		mh.Message(c.sock, m)
		return
	}
	c.respond(ctx, &messages.Ack{Error: messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
		"a ConnectionActor does not handle %T", m)})
}

func (c *connection) String() string { return fmt.Sprintf("connection %d", c.id) }
