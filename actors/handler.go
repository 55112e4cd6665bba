package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// Handler serves one connection inside its ConnectionActor (Ranch's model:
// the protocol code runs where the socket is, with no message hops between
// the bytes and the code that handles them). It is the fast path for local
// protocols; an owner actor (Akka's model) is the way to serve a connection
// from another node.
//
// Every method runs inside the ConnectionActor's Receive, one call at a
// time, so a Handler needs no locking. Which goroutine that is varies: the
// connection's mailbox runs on whichever goroutine sends to it (its reader,
// an owner, a timer; see dispatcher.go), so a method must never block. The Socket passed in is valid for the whole
// life of the connection, but its Context only during the call.
//
// The order of calls is: Connected once; then any number of Received,
// WriteAcked, WriteFailed, at most one PeerClosed and, for handlers that
// implement MessageHandler, Message; then Disconnected once, last. A panic
// in any method closes the connection (reset) and still ends with
// Disconnected; the actor is never restarted.
//
// Flow control is the same as for an owner actor: the handler starts with
// ConnectionConfig.InitialCredit and each Received spends one credit;
// Socket.Demand grants more. With no credit the connection does not read and
// the kernel holds the peer's bytes (TCP slows the peer down).
type Handler interface {
	// Connected is called once, before anything else, when the connection
	// starts serving.
	Connected(s *Socket)
	// Received carries bytes read from the peer (at most one read chunk).
	// data is a pooled buffer that is valid only during the call: copy what
	// must outlive it. Passing it to s.Write is fine: Write does not keep it.
	Received(s *Socket, data []byte)
	// WriteAcked reports that the write with this ackID (never 0) was handed
	// to the kernel.
	WriteAcked(s *Socket, ackID uint64)
	// WriteFailed reports that a write will never reach the wire (queue
	// full, connection closing, reset, aborted). It is called for every
	// failed write, ackID 0 included.
	WriteFailed(s *Socket, ackID uint64, err *messages.Error)
	// PeerClosed reports that the peer sent FIN. Return true to keep the
	// connection open for writing (a half-close); false closes it after the
	// queued writes are flushed.
	PeerClosed(s *Socket) (keepOpen bool)
	// Disconnected is the last call. err is nil after an orderly close.
	Disconnected(s *Socket, err *messages.Error)
}

// MessageHandler is an optional interface of a Handler: messages sent to the
// connection's PID that the ConnectionActor does not handle itself are given
// to it (a chat room's broadcast, a timer of the protocol). Without it such a
// message is answered with an error when it has a sender, or dropped.
type MessageHandler interface {
	Message(s *Socket, msg any)
}

// HandlerFactory makes the Handler of one new connection.
type HandlerFactory func() Handler

// BaseHandler implements every Handler method as a no-op; embed it to
// implement only the callbacks a protocol needs.
type BaseHandler struct{}

// Connected does nothing.
func (BaseHandler) Connected(*Socket) {}

// Received does nothing: the bytes are dropped.
func (BaseHandler) Received(*Socket, []byte) {}

// WriteAcked does nothing.
func (BaseHandler) WriteAcked(*Socket, uint64) {}

// WriteFailed does nothing.
func (BaseHandler) WriteFailed(*Socket, uint64, *messages.Error) {}

// PeerClosed closes the connection once the queued writes are flushed.
func (BaseHandler) PeerClosed(*Socket) bool { return false }

// Disconnected does nothing.
func (BaseHandler) Disconnected(*Socket, *messages.Error) {}

// Socket is a Handler's grip on its connection: QTcpSocket's methods, called
// from inside the Handler's callbacks. All methods are non-blocking; their
// outcome comes back through the Handler's callbacks, after the current
// callback returns.
type Socket struct {
	c *connection
}

// Write queues p for the peer. p is not retained after Write returns (it is
// written at once or copied), so the data of Received may be passed on
// directly. The outcome is WriteAcked (when ackID != 0) or WriteFailed.
func (s *Socket) Write(p []byte, ackID uint64) {
	s.c.write(pendingWrite{data: p, ackID: ackID, local: true}, true)
}

// Demand grants n more Received calls. n < 1 is ignored.
func (s *Socket) Demand(n int) { s.c.demand(n) }

// Close is disconnectFromHost(): queued writes are flushed, then FIN, then
// Disconnected. Nothing more is delivered: the connection reads and throws
// away what the peer still sends until the peer closes (a lingering close,
// see NewConnection), so that the peer is not reset.
func (s *Socket) Close() { s.c.startClose(nil) }

// Abort is abort(): queued writes fail (one WriteFailed each) and the
// connection is reset.
func (s *Socket) Abort() { s.c.abort() }

// CloseWrite half-closes: queued writes are flushed, then FIN; reading goes
// on.
func (s *Socket) CloseWrite() { s.c.startCloseWrite(nil) }

// SetOption applies socket options, as the SetSocketOption message does. It
// returns nil on success.
func (s *Socket) SetOption(o *messages.SetSocketOption) *messages.Error {
	return s.c.setSocketOption(o)
}

// Info describes the connection, as GetInfo does.
func (s *Socket) Info() *messages.ConnectionInfo { return s.c.info() }

// ID is the connection's number, unique within its server.
func (s *Socket) ID() uint64 { return s.c.id }

// Self is the ConnectionActor's PID.
func (s *Socket) Self() *actor.PID { return s.c.self() }

// Context is the ConnectionActor's context, to send messages, spawn or watch
// from a handler. Valid only during the current callback.
func (s *Socket) Context() actor.Context { return s.c.ctx }
