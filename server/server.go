// Package server is the Go face of tcpactor: blocking, typed calls over a
// ServerActor's PID, wherever it runs. Each method builds one request, waits
// for its one reply and converts it; the actors own all the logic.
//
// Three types make the face:
//   - Server is QTcpServer: one method per QTcpServer member, each taking a
//     context.Context, on a ServerActor in this actor system or on another
//     node.
//   - Conn is a net.Conn over a ConnectionActor, wherever it runs: a small
//     owner actor in the caller's actor system claims the connection and
//     buffers what it receives, bounded by credit.
//   - Listener is a net.Listener over a Server, so that http.Serve (or any
//     code written for net.Listener) serves connections accepted by a
//     ServerActor, on this node or another.
//
// Errors that a ServerActor or ConnectionActor reports carry Qt's
// SocketError: errors.As(err, new(*messages.SocketErr)) finds the code.
package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
)

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// Options are the Go-side settings of a spawned server (hook, limits,
// time-outs, local handler); see actors.ServerOptions.
type Options = actors.ServerOptions

// Server is a typed handle on a ServerActor: QTcpServer for Go code that
// lives outside actors. The ServerActor may run in this actor system or on
// another node; the Server's own actor system (sys) is where its requests
// are sent from and where the owner actors of the Conns it hands out live.
//
// Every method takes a context: its deadline bounds the wait for the reply
// (DefaultTimeout when it has none) and cancelling it abandons the wait. An
// error the ServerActor reports comes back as a *messages.SocketErr (find it
// with errors.As); an error of the call itself (no reply in time, the server
// is gone) wraps context.DeadlineExceeded, context.Canceled or ErrNoServer.
// A Server is safe for concurrent use.
type Server struct {
	sys *actor.ActorSystem
	pid *actor.PID
}

// ErrNoServer is wrapped by the error of a call whose ServerActor no longer
// exists (stopped, or its node was lost).
var ErrNoServer = errors.New("tcpactor: no such server actor")

// Spawn starts a ServerActor in sys. Options carry what Qt sets in C++ rather
// than through signals and slots: the incomingConnection() hook, the pending
// queue and connection limits, the connection time-outs and, optionally, a
// local handler that serves each connection inside its ConnectionActor.
func Spawn(sys *actor.ActorSystem, opts Options) *Server {
	return &Server{sys: sys, pid: sys.Root.Spawn(actors.NewServer(opts))}
}

// SpawnNamed starts a ServerActor under a fixed name, so other nodes can
// address it as HOST:PORT/NAME.
func SpawnNamed(sys *actor.ActorSystem, name string, opts Options) (*Server, error) {
	pid, err := sys.Root.SpawnNamed(actors.NewServer(opts), name)
	if err != nil {
		return nil, fmt.Errorf("spawn server %q: %w", name, err)
	}
	return &Server{sys: sys, pid: pid}, nil
}

// Wrap makes a Server of an existing ServerActor PID, local or remote. sys is
// the actor system the calls are made from. A PID caches its route: give each
// actor system its own copy (actor.NewPID(pid.Address, pid.Id)).
func Wrap(sys *actor.ActorSystem, pid *actor.PID) *Server { return &Server{sys: sys, pid: pid} }

// PID is the ServerActor's PID.
func (s *Server) PID() *actor.PID { return s.pid }

// System is the actor system the Server's calls are made from.
func (s *Server) System() *actor.ActorSystem { return s.sys }

// Stop stops the ServerActor and waits for it to end. As with close(), the
// listener and the unclaimed connections end with it; claimed connections
// live on.
func (s *Server) Stop() error { return s.sys.Root.StopFuture(s.pid).Wait() }

// ---------------------------------------------------------------------------
// listen(), setSocketDescriptor(), close()

// Listen is QTcpServer::listen(): address is an IP literal or Any, AnyIPv4,
// AnyIPv6, LocalHost, LocalHostIPv6; port 0 picks one. opts (may be nil)
// carries the backlog and the live-connection cap. It returns the address
// and port bound.
func (s *Server) Listen(ctx context.Context, address string, port uint16, opts *messages.ListenOptions) (string, uint16, error) {
	r, err := call[*messages.ListenResult](ctx, s, &messages.Listen{Address: address, Port: uint32(port), Options: opts})
	if err != nil {
		return "", 0, err
	}
	return r.Address, uint16(r.Port), r.Error.Err()
}

// SetSocketDescriptor is QTcpServer::setSocketDescriptor(): the server
// adopts fd, a listening TCP socket of the ServerActor's process (socket
// activation, a restart hand-off). It returns the address and port the
// socket is bound to.
func (s *Server) SetSocketDescriptor(ctx context.Context, fd int64) (string, uint16, error) {
	r, err := call[*messages.ListenResult](ctx, s, &messages.SetSocketDescriptor{SocketDescriptor: fd})
	if err != nil {
		return "", 0, err
	}
	return r.Address, uint16(r.Port), r.Error.Err()
}

// Close is QTcpServer::close(): the unclaimed pending connections are
// closed, then the listener; claimed connections live on.
func (s *Server) Close(ctx context.Context) error {
	_, err := call[*messages.Closed](ctx, s, &messages.Close{})
	return err
}

// ---------------------------------------------------------------------------
// The getters: one GetStatus each. Status gets them all at once.

// Status returns every QTcpServer getter at once, with the counters Qt does
// not have (pending, active, accepted, paused, accept errors).
func (s *Server) Status(ctx context.Context) (*messages.ServerStatus, error) {
	return call[*messages.ServerStatus](ctx, s, &messages.GetStatus{})
}

// StatusWithConnections is Status with ServerStatus.connections filled in:
// every live connection of the server, in accept order, with its addresses
// (after a PROXY header, the real client's) and TLS session as at accept
// (Ranch's procs and info).
func (s *Server) StatusWithConnections(ctx context.Context) (*messages.ServerStatus, error) {
	return call[*messages.ServerStatus](ctx, s, &messages.GetStatus{Connections: true})
}

// IsListening is QTcpServer::isListening().
func (s *Server) IsListening(ctx context.Context) (bool, error) {
	st, err := s.Status(ctx)
	return st.GetListening(), err
}

// ServerAddress is QTcpServer::serverAddress(): "" (QHostAddress::Null) when
// not listening.
func (s *Server) ServerAddress(ctx context.Context) (string, error) {
	st, err := s.Status(ctx)
	return st.GetAddress(), err
}

// ServerPort is QTcpServer::serverPort(): 0 when not listening.
func (s *Server) ServerPort(ctx context.Context) (uint16, error) {
	st, err := s.Status(ctx)
	return uint16(st.GetPort()), err
}

// ServerError is QTcpServer::serverError(): the code of the last error, NONE
// before any (Qt's UnknownSocketError; messages.QtCode gives Qt's number).
func (s *Server) ServerError(ctx context.Context) (messages.SocketError, error) {
	st, err := s.Status(ctx)
	return st.GetError().GetCode(), err
}

// ErrorString is QTcpServer::errorString(): the text of the last error, ""
// before any.
func (s *Server) ErrorString(ctx context.Context) (string, error) {
	st, err := s.Status(ctx)
	return st.GetError().GetMessage(), err
}

// MaxPendingConnections is QTcpServer::maxPendingConnections().
func (s *Server) MaxPendingConnections(ctx context.Context) (int, error) {
	st, err := s.Status(ctx)
	return int(st.GetMaxPendingConnections()), err
}

// HasPendingConnections is QTcpServer::hasPendingConnections().
func (s *Server) HasPendingConnections(ctx context.Context) (bool, error) {
	st, err := s.Status(ctx)
	return st.GetHasPendingConnections(), err
}

// SocketDescriptor is QTcpServer::socketDescriptor(): -1 when not listening.
// The descriptor belongs to the ServerActor's process.
func (s *Server) SocketDescriptor(ctx context.Context) (int64, error) {
	st, err := s.Status(ctx)
	if err != nil {
		return -1, err
	}
	return st.SocketDescriptor, nil
}

// Proxy is QTcpServer::proxy().
func (s *Server) Proxy(ctx context.Context) (*messages.NetworkProxy, error) {
	st, err := s.Status(ctx)
	return st.GetProxy(), err
}

// ListenBacklogSize is QTcpServer::listenBacklogSize() (Qt 6.3): the backlog
// the next listen uses, or the current listen used. Set it with
// ListenOptions.Backlog.
func (s *Server) ListenBacklogSize(ctx context.Context) (int, error) {
	st, err := s.Status(ctx)
	return int(st.GetBacklog()), err
}

// ---------------------------------------------------------------------------
// The setters

// SetMaxPendingConnections is QTcpServer::setMaxPendingConnections(n); n < 1
// is an error.
func (s *Server) SetMaxPendingConnections(ctx context.Context, n int) error {
	return ack(ctx, s, &messages.SetMaxPendingConnections{Max: int32(min(max(n, -1), 1<<30))})
}

// SetProxy is QTcpServer::setProxy(). DefaultProxy and NoProxy are accepted;
// a proxy kind that cannot listen is UnsupportedSocketOperation.
func (s *Server) SetProxy(ctx context.Context, p *messages.NetworkProxy) error {
	return ack(ctx, s, &messages.SetProxy{Proxy: p})
}

// PauseAccepting is QTcpServer::pauseAccepting(): new connections wait in
// the kernel's backlog until ResumeAccepting.
func (s *Server) PauseAccepting(ctx context.Context) error {
	return ack(ctx, s, &messages.PauseAccepting{})
}

// ResumeAccepting is QTcpServer::resumeAccepting().
func (s *Server) ResumeAccepting(ctx context.Context) error {
	return ack(ctx, s, &messages.ResumeAccepting{})
}

// ---------------------------------------------------------------------------
// The pending queue

// NextPendingConnection is QTcpServer::nextPendingConnection() for actor
// code: it claims the oldest pending connection for owner, which from then
// on receives its Received, PeerClosed and Disconnected messages and grants
// it credit with Demand. opts (may be nil) sets the initial credit and the
// half-close behaviour. It returns the ConnectionActor's PID and what the
// server knew of it, or nil, nil, nil when nothing is pending (Qt's
// nullptr), which is not an error.
//
// owner must be a real actor: a nil owner is refused by the server (the
// reply would otherwise make the call's temporary reply actor the owner).
// Go code that wants a net.Conn uses NextPendingConn.
func (s *Server) NextPendingConnection(ctx context.Context, owner *actor.PID, opts *messages.ClaimOptions) (*actor.PID, *messages.ConnectionInfo, error) {
	if owner == nil {
		owner = &actor.PID{} // the server answers an owner without an Id with its error
	}
	r, err := call[*messages.PendingConnection](ctx, s, &messages.NextPendingConnection{Owner: owner, Options: opts})
	if err != nil {
		return nil, nil, err
	}
	if err := r.Error.Err(); err != nil {
		return nil, nil, err
	}
	return r.Connection, r.Info, nil
}

// NextPendingConn is nextPendingConnection() for Go code: it claims the
// oldest pending connection for a new Conn, whose owner actor runs in the
// Server's actor system. It returns nil, nil when nothing is pending.
func (s *Server) NextPendingConn(ctx context.Context, opts ConnOptions) (*Conn, error) {
	c := newConn(s.sys, opts)
	ok, err := c.claimNext(ctx, s)
	if err != nil || !ok {
		c.release()
		return nil, err
	}
	return c, nil
}

// WaitForNewConnection is QTcpServer::waitForNewConnection(msecs): it blocks
// until a connection is pending (ok), msecs milliseconds pass (timedOut) or
// the server stops listening (err). msecs 0 polls; -1 waits without a
// time-out, bounded then only by ctx. A connection already pending answers
// at once (Qt 6.4 waits for a newer one), so a loop that claims one
// connection per wait strands none. The ServerActor never blocks: it keeps
// the request and answers it later. This is Qt's "without an event loop"
// pattern: WaitForNewConnection, then NextPendingConn.
func (s *Server) WaitForNewConnection(ctx context.Context, msecs int) (ok, timedOut bool, err error) {
	limit := time.Duration(0) // msecs -1: only ctx bounds the wait
	if msecs >= 0 {
		limit = time.Duration(msecs)*time.Millisecond + DefaultTimeout
	}
	ms := int32(min(max(msecs, -2), 1<<31-1))
	r, err := request[*messages.WaitResult](ctx, s.sys, s.pid, &messages.WaitForNewConnection{TimeoutMs: ms}, limit, true)
	if err != nil {
		return false, false, err
	}
	return r.Available, r.TimedOut, r.Error.Err()
}

// AddPendingConnection is QTcpServer::addPendingConnection(): the server
// adopts an existing ConnectionActor into its pending queue (and announces
// it to its subscribers).
func (s *Server) AddPendingConnection(ctx context.Context, connection *actor.PID) error {
	return ack(ctx, s, &messages.AddPendingConnection{Connection: connection})
}

// ---------------------------------------------------------------------------
// Signals

// Subscribe connects the newConnection() and acceptError() signals to an
// actor: subscriber receives *messages.NewConnection and
// *messages.AcceptError events (and *messages.HandshakeFailed from a TLS or
// PROXY-protocol server) until it unsubscribes or stops (the server
// watches it, wherever it runs). Subscribing twice is harmless. A
// subscriber of the Server's own actor system is subscribed with that
// system's start id (actors.StartID), so that the server checks a report of
// its node's loss before it drops it (a node restarted on the same address
// is reported lost after it is up); one elsewhere is subscribed without one
// (every report of its node's loss believed) unless WithSubscriberStartID
// names its node's.
func (s *Server) Subscribe(ctx context.Context, subscriber *actor.PID, opts ...SubscribeOption) error {
	if subscriber == nil {
		subscriber = &actor.PID{} // refused by the server: the sender is a temporary reply actor
	}
	return ack(ctx, s, &messages.Subscribe{Subscriber: subscriber, SubscriberStartId: SubscriberStartID(s.sys, subscriber, opts...)})
}

// SubscriberStartID is the start id a Subscribe of subscriber sent from sys
// names (Subscribe.subscriber_start_id): sys's own (actors.StartID) for a
// subscriber of sys, none (0) for one elsewhere, unless opts name one
// (WithSubscriberStartID). Server.Subscribe and
// clusterkind.KeepSubscribedToServer send it.
func SubscriberStartID(sys *actor.ActorSystem, subscriber *actor.PID, opts ...SubscribeOption) uint64 {
	var o subscribeOptions
	if actors.IsLocalAddress(sys, subscriber.GetAddress()) {
		o.startID = actors.StartID(sys)
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o.startID
}

// SubscribeOption is an option of Server.Subscribe and
// clusterkind.KeepSubscribedToServer.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct {
	startID uint64 // Subscribe.subscriber_start_id
}

// WithSubscriberStartID names the start id of the subscriber's node
// (actors.StartID of its actor system, on that node; 0: none), for a
// subscriber on another actor system than the Server's: the server then
// checks a report of that node's loss before it drops the subscriber, as
// it does for a subscriber of the Server's own system. Subscribe cannot ask
// the node itself: the node that answers at the subscriber's address may be
// a later start, in which the subscriber does not run, and the check would
// keep a subscriber that is gone. Only whoever has the PID from that node
// knows its start.
func WithSubscriberStartID(startID uint64) SubscribeOption {
	return func(o *subscribeOptions) { o.startID = startID }
}

// Unsubscribe disconnects a subscriber.
func (s *Server) Unsubscribe(ctx context.Context, subscriber *actor.PID) error {
	if subscriber == nil {
		subscriber = &actor.PID{}
	}
	return ack(ctx, s, &messages.Unsubscribe{Subscriber: subscriber})
}

// ---------------------------------------------------------------------------
// Requests and replies

// ack sends a request answered with Ack and returns its error.
func ack(ctx context.Context, s *Server, msg any) error {
	r, err := call[*messages.Ack](ctx, s, msg)
	if err != nil {
		return err
	}
	return r.Error.Err()
}

// call sends one request to the server and converts its one reply, waiting
// no longer than ctx allows, or DefaultTimeout when ctx has no deadline.
func call[R any](ctx context.Context, s *Server, msg any) (R, error) {
	return request[R](ctx, s.sys, s.pid, msg, DefaultTimeout, false)
}

// request sends msg to pid from a temporary reply actor and waits for the
// one reply, for ctx to end, or — when ctx has no deadline and limit > 0 —
// for limit. With watch the reply actor also watches pid, so that a request
// kept for long (WaitForNewConnection) ends when its target stops or its
// node is lost. A reply actor rather than a future lets the wait end with
// ctx: a future can only time out.
func request[R any](ctx context.Context, sys *actor.ActorSystem, pid *actor.PID, msg any, limit time.Duration, watch bool) (R, error) {
	var zero R
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("%T to %s: %w", msg, pid, err)
	}
	if _, ok := ctx.Deadline(); !ok && limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	replies := make(chan any, 1)
	rpid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			if watch {
				c.Watch(pid)
			}
		case *actor.Terminated:
			if m.Who.Equal(pid) {
				offer(replies, m)
			}
		case actor.SystemMessage, actor.AutoReceiveMessage:
		default:
			offer(replies, m)
		}
	}))
	defer sys.Root.Stop(rpid)
	sys.Root.RequestWithCustomSender(pid, msg, rpid)
	select {
	case res := <-replies:
		switch m := res.(type) {
		case R:
			return m, nil
		case *actor.Terminated:
			return zero, fmt.Errorf("%T to %s: the server ended before answering (%s): %w", msg, pid, m.Why, ErrNoServer)
		case *actor.DeadLetterResponse:
			return zero, fmt.Errorf("%T to %s: %w", msg, pid, ErrNoServer)
		case *messages.Ack: // a request the actor does not know
			if err := m.Error.Err(); err != nil {
				return zero, fmt.Errorf("%T to %s: %w", msg, pid, err)
			}
		}
		return zero, fmt.Errorf("%T to %s: unexpected reply %T", msg, pid, res)
	case <-ctx.Done():
		return zero, fmt.Errorf("%T: no reply from %s: %w", msg, pid, ctx.Err())
	}
}

// offer hands v over without blocking: only the first reply counts.
func offer(ch chan any, v any) {
	select {
	case ch <- v:
	default:
	}
}
