package actors

// The ConnectionActor: QTcpSocket as an actor. This file holds its type, its
// phases, its message switch and its owner; the rest is split by role:
//
//	connection_read.go        credit, the reader's results, the peer's FIN
//	connection_write.go       Writes, the fast path and the writer goroutine
//	connection_writequeue.go  the pending writes (Pekko's PendingWrite)
//	connection_end.go         Close, CloseWrite, Abort, lingering, teardown
//	connection_options.go     GetInfo, SetSocketOption, the idle time-out
//	connection_io.go          the reader goroutine and its buffers
//	connection_direct.go      the socket lent to an owner on this node (direct_io)
//	eventloop_linux.go        the event loops that read instead (ReadLoop)

import (
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// maxCredit caps the credit a connection keeps, so that Demand cannot
// overflow it.
const maxCredit = 1 << 30

// ConnectionProps makes the props of a ConnectionActor: QTcpSocket as an actor.
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
func ConnectionProps(conn net.Conn, id uint64, server *actor.PID, cfg ConnectionConfig) *actor.Props {
	shared := cfg.withDefaults()
	return actor.PropsFromProducer(func() actor.Actor { return newConnection(conn, id, server, shared) },
		actor.WithDispatcher(connectionDispatcher), actor.WithMailbox(connectionMailbox))
}

// phase is where a connection is in its life, as net/http's ConnState and
// the behaviours of Pekko's TcpConnection. It only moves forward, in the
// order below, though a connection may skip phases; Stop from outside the
// actor takes any phase straight to closed. Each direction can also be shut
// on its own while a connection is open — the peer's FIN (peerClosed) and
// ours (fin) — without a change of phase: a half-closed connection is open.
type phase uint8

const (
	// waitingForOwner is an accepted connection that nobody serves yet:
	// nothing is read (the kernel holds the peer's bytes); a Write (from a
	// local actor: remote ones are refused) goes to the wire as when open.
	// A connection with a local Handler is here only while the Handler's
	// Connected runs.
	//
	// To open with SetOwner (or once Connected returns); to closing with
	// Close (the server's close() or stop); to ending with Abort.
	waitingForOwner phase = iota

	// open is a served connection: bytes are read as far as the owner's
	// credit goes and delivered (Received, or the Handler's Received);
	// Writes go to the wire in order, each answered. The peer's FIN is told
	// (ErrorOccurred, PeerClosed) and stops the reading; CloseWrite sends
	// our FIN once the queue is flushed and stops the writing.
	//
	// To closing with Close, the owner's stop, a Handler's PeerClosed that
	// returns false, or the owner's time-out after PeerClosed; to ending
	// with Abort, a socket error or reset, the idle or read time-out, or
	// when both directions are shut.
	open

	// closing is disconnectFromHost(): the queued writes are flushed while
	// the peer's input is read without credit and thrown away, so that the
	// peer never waits on us and nothing is left unread at close(2). New
	// Writes fail; the owner gets nothing more until Disconnected.
	//
	// To lingering once flushed and FIN sent; to ending instead when the
	// peer has closed already, lingering is off (LingerTimeout < 0) or the
	// socket cannot half-close, and with SocketTimeoutError when the flush
	// takes nothing for LingerTimeout, or on a socket error.
	closing

	// lingering: our FIN is sent and the owner has been told: Disconnected
	// and the Close replies go out when the message that got here is
	// handled (announced). The peer's input is still read and thrown away.
	//
	// To ending when the peer closes (EOF or reset), LingerTimeout passes,
	// or LingerBytes were thrown away after the peer acknowledged all we
	// sent.
	lingering

	// ending: the end is decided (endErr, failErr, endHow) and the actor
	// has asked itself to stop. Nothing more is read, written or delivered
	// for what remains of the current message (a Write fails with the
	// ending's error).
	//
	// To closed at Stopping, right after the current message.
	ending

	// closed: teardown ran: the socket is closed, every pending write has
	// failed, the owner has had Disconnected (the Handler its Disconnected)
	// unless it stopped first. Final.
	closed
)

var phaseNames = [...]string{"waitingForOwner", "open", "closing", "lingering", "ending", "closed"}

func (p phase) String() string { return phaseNames[p] }

// finState is our direction of the connection: whether our FIN is sent.
type finState uint8

const (
	finNotSent    finState = iota
	finAfterFlush          // CloseWrite: FIN once the queued writes are flushed
	finSent
)

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

// connection is the ConnectionActor. Its small fields are packed at the end:
// every idle connection holds one (issue 14), and padding after each bool
// cost a size class.
type connection struct {
	conn   net.Conn
	raw    syscall.RawConn // set only for a plain TCP socket (tcpSocket): the fast paths
	id     uint64
	server *actor.PID
	cfg    *ConnectionConfig // with the defaults applied; shared by a server's connections, never written

	ctx actor.Context       // current context, for Socket and the send helpers (its Self is the PID put in messages: see self)
	me  *actor.ActorProcess // its own process, for sends to itself (see knowSelf)

	// Who is served.
	owner   *actor.PID
	handler Handler
	sock    Socket // the handler's, pointing back here (&c.sock): no allocation of its own

	// Reading.
	credit int
	loop   *loopReader // ReadLoop: an event loop reads instead of a goroutine

	more *connMore // what a busy connection needs (connection_more.go); nil until then
	lend *lending  // the socket lent to the owner (connection_direct.go); nil until asked

	// Counters.
	bytesReceived uint64
	bytesSent     uint64
	stopped       atomic.Bool

	// Where it is in its life: the phase, and the two directions.
	phase      phase
	peerClosed bool     // the peer's FIN (or reset) was read: nothing more comes
	fin        finState // our FIN

	ownerGone  bool     // the owner stopped, or had Disconnected: nothing more goes to it
	announced  bool     // Disconnected and the Close replies are sent (announce)
	keepOpen   bool     // the claim's keep_open_on_peer_close
	finQuiet   bool     // the claim's peer_close_without_error: no ErrorOccurred at the peer's FIN
	reading    bool     // the reader holds a read permit
	endHow     closeHow // how the socket is closed at the end
	soLinger   bool     // SO_LINGER > 0 was set: close(2) may block
	tellServer bool     // the server that spawned it gets Terminated when it stops (onStopped)
}

// withDefaults is cfg with every zero field set to its default: one copy for
// all the connections a server makes.
func (cfg ConnectionConfig) withDefaults() *ConnectionConfig {
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
	return &cfg
}

// newConnection makes the actor; cfg comes from withDefaults.
func newConnection(conn net.Conn, id uint64, server *actor.PID, cfg *ConnectionConfig) *connection {
	c := &connection{conn: conn, id: id, server: server, cfg: cfg}
	if plainTCP(conn) && fastPaths { // a *net.TCPConn, or a raw socket (rawsock_linux.go)
		if raw, err := conn.(tcpSocket).SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	c.sock.c = c
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
	case *writableMsg:
		c.onWritable()
	case *idleTick:
		c.foldLease() // the owner's direct reads and writes count
		c.onIdleTick(ctx)
	case *closeTick:
		c.onCloseTick()
	case *peerCloseTick:
		c.onPeerCloseTick()
	case *messages.SetOwner:
		c.setOwner(ctx, m)
	case *messages.Demand:
		c.demand(int(m.N))
	case *directReturned:
		c.onDirectReturned(ctx, m)
	case *messages.Write:
		w := pendingWrite{data: m.Data, ackID: m.AckId, to: c.replyTo(ctx), demand: int(m.Demand)}
		if m.Donate || fromAnotherNode(ctx) {
			w.donated = m.Data
		}
		c.write(w, false)
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
	case *actor.Stopping:
		c.teardown(ctx)
	case *actor.Restarting: // see replacedConnection
		c.teardown(ctx)
		c.onStopped()
	case *actor.Stopped:
		c.onStopped()
	case actor.SystemMessage, actor.AutoReceiveMessage, actor.AutoRespond:
	default:
		c.other(ctx, m)
	}
	c.drainEvents()
	c.syncDirectWrites()
	if c.phase == lingering && !c.announced {
		// After the message, not inside the handler callback that closed.
		c.announce()
	}
}

func (c *connection) started(ctx actor.Context) {
	c.knowSelf(ctx)
	answerDeadLetters(ctx.ActorSystem())
	if c.cfg.Handler == nil {
		return // wait for SetOwner: until then the kernel holds the bytes
	}
	c.handler = c.cfg.Handler()
	if c.handler == nil {
		panic("tcpactor: HandlerFactory returned nil")
	}
	c.credit = c.cfg.InitialCredit
	c.handler.Connected(&c.sock)
	if c.phase == waitingForOwner { // Connected may have closed or aborted
		c.phase = open
		c.serve()
	}
}

// serve starts the reader — an event loop's or a goroutine, reading as far
// as the phase and the credit allow — and the idle clock, when the
// connection leaves waitingForOwner.
func (c *connection) serve() {
	if c.raw != nil && c.cfg.readMode() == ReadLoop {
		c.loop = newLoopReader(c.raw, c.cfg.ReadTimeout, c)
	}
	if c.loop == nil {
		if err := c.promote(); err != nil { // a goroutine reads: it needs a net.Conn
			c.failWith(messages.FromError(err), closePlain)
			return
		}
		m := c.x()
		m.permit = make(chan struct{}, 1)
		m.done = make(chan struct{})
		c.startReader(c.cfg.ReadTimeout)
	}
	if d := c.cfg.IdleTimeout; d > 0 {
		m := c.x()
		m.lastActive = monoNow()
		m.idle = time.AfterFunc(d, func() { c.sendSelf(&idleTick{}) })
	}
	c.askRead()
}

// knowSelf keeps the actor's process.
//
// A *PID caches the process it resolved to. Another actor system of the
// same process that sends to this PID object caches its remote route in
// it; the goroutines' own sends must not take that detour (their messages
// are not protobuf), so they go to the actor's own process, looked up
// here, once. (A private copy of the PID did the same for 96 bytes more
// per connection.) It is Proto.Actor's *ActorProcess, which every spawned
// actor gets, held as such: 8 bytes, not an interface's 16, and no PID of
// its own (self), kept the struct 176 bytes, a size class down (issue 14).
func (c *connection) knowSelf(ctx actor.Context) {
	p, ok := ctx.ActorSystem().ProcessRegistry.GetLocal(ctx.Self().Id)
	if c.me, _ = p.(*actor.ActorProcess); !ok || c.me == nil {
		// Proto.Actor registers every actor it spawns as an ActorProcess
		// before it starts: the actor could not be running.
		panic(fmt.Sprintf("tcpactor: connection %s is not a registered actor process (%T)", ctx.Self(), p))
	}
}

// self is the connection's PID, put in the messages it sends. The actor's
// alone: it reads c.ctx.
func (c *connection) self() *actor.PID { return c.ctx.Self() }

// sendSelf is how the goroutines and the timer talk to the actor.
func (c *connection) sendSelf(msg any) {
	if !c.stopped.Load() {
		c.me.SendUserMessage(nil, msg) // an ActorProcess does not look at the PID
	}
}

// onStopped tells the server that spawned the connection that it stopped,
// with the Terminated a watch would send, at the moment a watch would (see
// Proto.Actor's finalizeStop), as a system message too. A watch would keep
// a watcher set in the actor's context — about 600 bytes per idle
// connection — for the one watcher every connection has.
func (c *connection) onStopped() {
	if !c.tellServer || c.server == nil || c.ctx == nil {
		return
	}
	if p, ok := c.ctx.ActorSystem().ProcessRegistry.Get(c.server); ok {
		p.SendSystemMessage(c.server, &actor.Terminated{Who: c.self()})
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

// canTell is false for nobody and for an owner known to be gone.
func (c *connection) canTell(to *actor.PID) bool {
	return to != nil && !(c.ownerGone && pidEqual(to, c.owner))
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
	case refuseFuture(owner, "an owner", "own a connection") != nil:
		e = refuseFuture(owner, "an owner", "own a connection")
	case credit < 0:
		e = messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
			"initial_credit %d is negative: want 0 (default) or more", credit)
	case m.GetOptions().GetPeerCloseTimeoutMs() < 0:
		e = messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
			"peer_close_timeout_ms %d is negative: want 0 (default) or more", m.GetOptions().GetPeerCloseTimeoutMs())
	case c.phase >= closing:
		e = messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION, "connection %d is closing", c.id)
	}
	claimant, reply := m.GetClaimant(), m.GetReply()
	if claimant != nil && (reply == nil || fromAnotherNode(ctx)) {
		claimant = nil // only the server of this node answers a claim through the connection
	}
	if e != nil {
		c.respond(ctx, &messages.Ack{Error: e})
		if claimant != nil {
			// As before the connection answered claims: the claimant learns
			// of the end as any watcher does.
			ctx.Send(claimant, &messages.PendingConnection{Connection: ctx.Self(), Info: reply.Info})
		}
		return
	}
	if claimant != nil {
		// Before anything the connection sends its new owner (NextPendingConnection).
		ctx.Send(claimant, &messages.PendingConnection{Connection: ctx.Self(), Info: reply.Info})
	}
	if credit == 0 {
		credit = c.cfg.InitialCredit
	}
	if c.owner == nil || !pidEqual(c.owner, owner) {
		c.unwatchOwner() // a former owner, before a hand-over
		c.watchOwner(owner, m.GetOptions().GetOwnerStartId())
	}
	c.owner = owner
	c.keepOpen = m.GetOptions().GetKeepOpenOnPeerClose()
	c.finQuiet = m.GetOptions().GetPeerCloseWithoutError()
	if ms := m.GetOptions().GetPeerCloseTimeoutMs(); ms > 0 {
		c.x().peerCloseTimeout = time.Duration(ms) * time.Millisecond
	} else if c.more != nil {
		c.more.peerCloseTimeout = 0 // a former owner's: the server's again
	}
	c.credit = min(credit, maxCredit)
	c.askedToLend(owner, m.GetOptions().GetDirectIo())
	c.respond(ctx, &messages.Ack{})
	if a := m.GetAnnounce(); a != nil {
		// The server's assignment: told by the connection, so that it is
		// the first thing the owner hears of it.
		ctx.Send(owner, &messages.NewConnection{Server: a.Server, Connection: ctx.Self(),
			Pending: a.Pending, Info: a.Info, Assigned: true})
	}
	if c.phase == waitingForOwner {
		c.phase = open
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
	if m.Why == actor.TerminatedReason_AddressTerminated {
		c.ownerNodeLost(m.Who) // connection_end.go
		return
	}
	c.ownerGone = true
	if !c.announced {
		c.x().lastErr = messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
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

// other handles messages the actor does not know: the local handler's when
// it wants them, otherwise an error reply.
func (c *connection) other(ctx actor.Context, m any) {
	if mh, ok := c.handler.(MessageHandler); ok {
		mh.Message(&c.sock, m)
		return
	}
	c.respond(ctx, &messages.Ack{Error: messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
		"a ConnectionActor does not handle %T", m)})
}

func (c *connection) String() string { return fmt.Sprintf("connection %d", c.id) }
