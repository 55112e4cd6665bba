package actors

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// ServerActor is QTcpServer as an actor. It owns the listening socket (through
// its accept goroutine), the queue of pending connections, and the
// subscribers of its newConnection() and acceptError() signals. Every request
// of the proto's ServerActor section is answered exactly once.
//
// Each accepted socket becomes a ConnectionActor spawned at the top level, not
// as a child: closing or stopping the server closes the unclaimed
// connections and leaves the claimed ones to their owners (and those a local
// handler serves to it). For close() that is Qt's behaviour; Qt's destructor
// also deletes the claimed sockets, its children, but here a connection
// belongs to whoever serves it, perhaps on another node, and ends when that
// owner stops: a server stopped to restart, move or drain cuts nothing.
type ServerActor struct {
	opts ServerOptions

	startID uint64 // StartID of the node, once known (nodeStartID)

	// listening state; ln == nil when not listening
	ln       listener // a *net.TCPListener, or a *socksListener through a SOCKS5 proxy
	gate     *acceptGate
	gen      uint64 // bumps with every listen, so stale accepts are recognised
	address  string
	port     uint32
	protocol messages.NetworkLayerProtocol // serverAddress().protocol()
	fd       int64
	backlog  int
	maxConns int
	tls      *tlsListen // QSslServer: set while listening with TLS
	loops    loopAccept // a loop-mode server's hold on the event loops (server_loops.go)

	socksBinding bool       // a Listen through a SOCKS5 proxy waits for its first BIND
	socksReplyTo *actor.PID // who sent that Listen
	socksGen     uint64     // bumped when a close abandons that BIND

	maxPending  int
	paused      bool
	proxy       *messages.NetworkProxy
	lastErr     *messages.Error
	pending     []pendingConn
	live        map[string]liveConn // every live connection of this server, by PID id (server_conns.go)
	connProps   *actor.Props        // the Props of every connection it spawns (server_conns.go)
	connCfg     *ConnectionConfig   // opts.Connection with its defaults, shared by its connections
	spawning    *connection         // the connection connProps produces, while it is spawned
	inHook      map[uint64]net.Conn // accepted, in the incomingConnection hook
	hookCtx     context.Context
	hookCancel  context.CancelFunc
	hooked      *handover[net.Conn] // what the hooks return, until onHookDone takes it
	subscribers map[pidID]subscriber
	lossChecks  LossChecks[*actor.PID] // subscribers reported lost, while the report is checked
	assignees   assignees              // subscribers that take connections (server_assign.go)
	waiters     map[uint64]*waiter
	waitersOf   map[string]int // waiters per remote node (authz.go)
	limits      RemoteLimits
	nextID      uint64 // connection ids and waiter ids
	accepted    uint64
	acceptErrs  uint64
	// A Close waits for the accept goroutine to stop (acceptStopped) so that
	// a connection it has just accepted is taken in, not reset.
	closing    bool
	closers    []*actor.PID // senders of Close, answered with Closed once closed
	acceptDone bool         // the accept goroutine of this listen has ended

	handshakeFails uint64
	proxyFails     uint64
}

// subscriber is a subscriber of the server's signals, as its last
// Subscribe named it.
type subscriber struct {
	pid *actor.PID
	// startID is the start id of its node (Subscribe.subscriber_start_id),
	// against which a report of the node's loss is checked; 0: none, every
	// report is believed (server_nodeloss.go).
	startID uint64
}

type pendingConn struct {
	pid     *actor.PID
	added   bool   // by AddPendingConnection: not the server's to stop
	addedBy string // the remote node that added it; "" when local
}

// waiter is a WaitForNewConnection not answered yet.
type waiter struct {
	replyTo *actor.PID
	timer   *time.Timer
	peer    string // the remote node that waits; "" when local
}

// Local messages the server sends itself.
type (
	hookDone struct {
		id   uint64 // the connection's id (inHook)
		held uint64 // the hook's conn, in ServerActor.hooked
		err  error
	}
	waitExpired struct{ id uint64 }
)

// NewServer returns the Props of a ServerActor with the given options.
func NewServer(opts ServerOptions) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return newServerActor(opts) })
}

func newServerActor(opts ServerOptions) *ServerActor {
	s := &ServerActor{
		opts:        opts,
		fd:          -1,
		maxPending:  opts.MaxPendingConnections,
		proxy:       &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_DEFAULT},
		live:        map[string]liveConn{},
		inHook:      map[uint64]net.Conn{},
		hooked:      &handover[net.Conn]{},
		subscribers: map[pidID]subscriber{},
		waiters:     map[uint64]*waiter{},
		waitersOf:   map[string]int{},
		limits:      opts.RemoteLimits.withDefaults(),
	}
	if s.maxPending <= 0 {
		s.maxPending = DefaultMaxPendingConnections
	}
	// As Qt's listenBacklogSize(): the getters show what the next listen
	// uses, before any listen too.
	s.backlog, s.maxConns, _ = s.listenOptions(nil)
	s.hookCtx, s.hookCancel = context.WithCancel(context.Background())
	return s
}

// Receive dispatches each message to a short named method.
func (s *ServerActor) Receive(ctx actor.Context) {
	defer s.recoverPanic(ctx)
	if !s.authorize(ctx) { // what remote peers may send: authz.go
		return
	}
	switch m := ctx.Message().(type) {
	case *messages.Listen:
		if r := s.listen(ctx, m); r != nil { // nil: answered once the proxy has bound
			ctx.Respond(r)
		}
	case *messages.SetSocketDescriptor:
		ctx.Respond(s.setSocketDescriptor(ctx, m))
	case *messages.Close:
		s.requestClose(ctx)
	case *messages.GetStatus:
		ctx.Respond(s.statusOf(ctx, m))
	case *messages.NextPendingConnection:
		if r := s.nextPending(ctx, m); r != nil {
			ctx.Respond(r)
		}
	case *messages.SetMaxPendingConnections:
		ctx.Respond(s.setMaxPending(m))
	case *messages.WaitForNewConnection:
		s.waitForNewConnection(ctx, m)
	case *messages.AddPendingConnection:
		ctx.Respond(s.addPending(ctx, m))
	case *messages.SetProxy:
		ctx.Respond(s.setProxy(m))
	case *messages.PauseAccepting:
		s.paused = true
		s.updateAllowance()
		ctx.Respond(&messages.Ack{})
	case *messages.ResumeAccepting:
		s.paused = false
		s.updateAllowance()
		ctx.Respond(&messages.Ack{})
	case *messages.Subscribe:
		ack := &messages.Ack{Error: invalid("initial_credit %d is negative", m.Options.GetInitialCredit())}
		if m.Options.GetInitialCredit() >= 0 {
			ack = s.subscribe(ctx, m.Subscriber, m.SubscriberStartId)
		}
		if !ack.Error.Failed() {
			s.assignees.set(s.subscriberOf(ctx, m.Subscriber), m.Assign, m.Options)
		}
		ctx.Respond(ack)
	case *messages.Unsubscribe:
		ctx.Respond(s.unsubscribe(ctx, m.Subscriber))
	case *acceptedConn:
		s.onAccepted(ctx, m)
	case *acceptFailed:
		s.onAcceptFailed(ctx, m)
	case *acceptStopped:
		s.onAcceptStopped(ctx, m)
	case *hookDone:
		s.onHookDone(ctx, m)
	case *socksRebound:
		s.onSocksRebound(m)
	case *waitExpired:
		s.onWaitExpired(ctx, m.id)
	case *actor.Terminated:
		if !s.checkSubscriberLoss(ctx, m) {
			s.onTerminated(ctx, m.Who)
		}
	case *actor.Started:
		stopOnShutdown(ctx.ActorSystem(), ctx.Self())
	case *actor.Stopped:
		forgetOnShutdown(ctx.ActorSystem(), ctx.Self())
	case *actor.Stopping, *actor.Restarting:
		// A restart (by a supervisor of the caller's, should a panic escape
		// recoverPanic) makes a fresh ServerActor: this one's listener and
		// connections must not outlive it either.
		s.shutdown(ctx)
	case actor.SystemMessage, actor.AutoReceiveMessage, actor.AutoRespond, *actor.ReceiveTimeout:
		// Proto.Actor's own messages (Started, Stopped…) are not requests.
	default:
		s.unknownRequest(ctx, m)
	}
}

// recoverPanic stops a server whose Receive panicked. A listening socket
// cannot be restarted: Proto.Actor's default supervision would make a fresh
// ServerActor that listens on nothing, and nobody would know. So the panic
// is logged at ERROR, the request it broke is answered with an error, and
// the server stops: its listener and unclaimed connections close (Stopping)
// and whoever watches it gets Terminated (tcpactor serve exits).
func (s *ServerActor) recoverPanic(ctx actor.Context) {
	r := recover()
	if r == nil {
		return
	}
	ctx.Logger().Error("tcpactor: ServerActor panicked; stopping it, with its listener and unclaimed connections",
		slog.String("server", ctx.Self().String()), slog.String("message", fmt.Sprintf("%T", ctx.Message())),
		slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
	if _, system := ctx.Message().(actor.SystemMessage); !system && ctx.Sender() != nil {
		ctx.Respond(&messages.Ack{Error: messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
			"the server failed on %T and stopped", ctx.Message())})
	}
	ctx.Stop(ctx.Self())
}

// unknownRequest answers a message the server does not know, when it has a
// sender, so that no request goes unanswered; without a sender it is dropped.
func (s *ServerActor) unknownRequest(ctx actor.Context, m any) {
	if ctx.Sender() != nil {
		ctx.Respond(&messages.Ack{Error: messages.NewError(messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION,
			"unknown request %T: a ServerActor does not handle it", m)})
	}
}

// ---------------------------------------------------------------------------
// listen, setSocketDescriptor, close

func (s *ServerActor) listen(ctx actor.Context, m *messages.Listen) *messages.ListenResult {
	if s.ln != nil {
		return s.alreadyListening()
	}
	addr, e := messages.ParseListenAddress(m.Address)
	if e != nil {
		return s.listenFailed(e)
	}
	port, e := messages.CheckListenPort(m.Port)
	if e != nil {
		return s.listenFailed(e)
	}
	backlog, maxConns, e := s.listenOptions(m.Options)
	if e != nil {
		return s.listenFailed(e)
	}
	if e := s.proxyCanListen(); e != nil {
		return s.listenFailed(e)
	}
	tlsL, e := s.listenTLS(m.Options)
	if e != nil {
		return s.listenFailed(e)
	}
	if s.proxy.Type == messages.ProxyType_PROXY_TYPE_SOCKS5 {
		return s.listenThroughSocks(ctx, backlog, maxConns, tlsL)
	}
	l, err := net.Listen(addr.Network, net.JoinHostPort(addr.Host, port))
	if err != nil {
		return s.listenFailed(messages.FromError(err))
	}
	ln := l.(*net.TCPListener)
	if err := setBacklog(ln, backlog); err != nil {
		ln.Close()
		return s.listenFailed(messages.FromError(err))
	}
	s.tls = tlsL
	r := s.startListening(ctx, ln, backlog, maxConns, true)
	if addr.Host == "" { // as Qt: the dual-stack Any reports itself as 0.0.0.0, protocol AnyIP
		s.address, r.Address = "0.0.0.0", "0.0.0.0"
		s.protocol, r.Protocol = messages.NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_ANY_IP, messages.NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_ANY_IP
	}
	return r
}

// listenOptions validates Listen.options against the server's defaults. A
// backlog of 0 is the default; a negative one goes to listen(2) as it is,
// which (as with Qt's setListenBacklogSize) gives the kernel's maximum.
func (s *ServerActor) listenOptions(o *messages.ListenOptions) (backlog, maxConns int, e *messages.Error) {
	backlog, maxConns = s.opts.Backlog, s.opts.MaxConnections
	if backlog == 0 {
		backlog = DefaultBacklog
	}
	if o == nil {
		return backlog, maxConns, nil
	}
	if o.MaxConnections < 0 {
		return 0, 0, invalid("max_connections %d is negative", o.MaxConnections)
	}
	if o.Backlog != 0 {
		backlog = int(o.Backlog)
	}
	if o.MaxConnections > 0 {
		maxConns = int(o.MaxConnections)
	}
	return backlog, maxConns, nil
}

func (s *ServerActor) setSocketDescriptor(ctx actor.Context, m *messages.SetSocketDescriptor) *messages.ListenResult {
	if s.ln != nil {
		return s.alreadyListening()
	}
	tlsL, e := s.listenTLS(nil)
	if e != nil {
		return s.listenFailed(e)
	}
	ln, e := adoptListener(m.SocketDescriptor)
	if e != nil {
		return s.listenFailed(e)
	}
	s.tls = tlsL
	backlog, maxConns, _ := s.listenOptions(nil)
	r := s.startListening(ctx, ln, backlog, maxConns, false)
	s.fd = m.SocketDescriptor // as Qt: the descriptor given, not the server's duplicate
	if dualStackAny(ln) {     // as Qt: a dual-stack [::] socket is Any
		s.address, r.Address = "0.0.0.0", "0.0.0.0"
		s.protocol, r.Protocol = messages.NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_ANY_IP, messages.NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_ANY_IP
	}
	return r
}

// startListening starts accepting from ln; owned: the server made the
// listening socket (not adopted with setSocketDescriptor), so it may set its
// options.
func (s *ServerActor) startListening(ctx actor.Context, ln listener, backlog, maxConns int, owned bool) *messages.ListenResult {
	s.ln, s.backlog, s.maxConns = ln, backlog, maxConns
	s.address, s.port = messages.HostPort(ln.Addr())
	s.protocol = messages.ProtocolOf(s.address)
	s.fd = listenerFD(ln)
	s.gen++
	s.acceptDone = false
	acc := ln
	if s.incoming() == nil && s.opts.Connection.readMode() == ReadLoop {
		// Plain sockets read by the event loops: accepted raw, out of Go's
		// poller (rawsock_linux.go), once the loops run (server_loops.go).
		acc = s.loopAccepting(ctx, ln, owned)
		s.ln = acc // its Close closes what it added
	}
	s.gate = newAcceptGate(acc)
	self, root := ctx.Self(), ctx.ActorSystem().Root
	go acceptLoop(s.gate, s.gen, func(msg any) { root.Send(self, msg) })
	s.updateAllowance()
	return &messages.ListenResult{Ok: true, Address: s.address, Port: s.port, Protocol: s.protocol}
}

func (s *ServerActor) listenFailed(e *messages.Error) *messages.ListenResult {
	s.lastErr = e
	return &messages.ListenResult{Error: e}
}

// alreadyListening refuses a second listen or setSocketDescriptor. As in Qt
// it is not a socket error: serverError() is left alone.
func (s *ServerActor) alreadyListening() *messages.ListenResult {
	return &messages.ListenResult{Error: messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
		"already listening on %s", net.JoinHostPort(s.address, itoa(s.port)))}
}

// requestClose is QTcpServer::close(), answered with Closed. The accept
// goroutine is stopped first, and the listener closed only when it says it
// has (acceptStopped, at once: a pending Accept is woken through the
// listener's deadline): a connection it accepted in that instant then
// reaches the server and is served, or ended gracefully with the other
// unclaimed ones, instead of being reset. This is what lets a restart hand
// its listening socket over without resetting a client.
func (s *ServerActor) requestClose(ctx actor.Context) {
	if sender := ctx.Sender(); sender != nil {
		s.closers = append(s.closers, sender)
	}
	if s.gate == nil || s.acceptDone {
		s.close(ctx)
		return
	}
	s.closing = true
	s.gate.quiesce()
}

// onAcceptStopped notes the end of the accept goroutine, and finishes a
// Close that waited for it.
func (s *ServerActor) onAcceptStopped(ctx actor.Context, m *acceptStopped) {
	if m.gen != s.gen {
		return
	}
	s.acceptDone = true
	if s.closing {
		s.close(ctx)
	}
}

// close is QTcpServer::close(): unclaimed connections first, then the
// listener. Claimed connections live on. An unclaimed connection is told to
// Close, not stopped: it lingers (reads and throws away what the peer sent
// or still sends) so that it ends with FIN, as Qt's, and not with a reset.
func (s *ServerActor) close(ctx actor.Context) {
	s.abandonSocksListen(ctx)
	for _, p := range s.pending {
		s.endPending(ctx, p)
	}
	s.pending = nil
	for id, c := range s.inHook {
		c.Close()
		delete(s.inHook, id)
	}
	if s.ln != nil {
		s.gate.close()
		s.ln.Close()
	}
	s.releaseLoops()
	s.ln, s.gate = nil, nil
	s.address, s.port, s.fd = "", 0, -1
	s.protocol = messages.NetworkLayerProtocol_NETWORK_LAYER_PROTOCOL_UNKNOWN
	s.paused = false // as Qt: a pause belongs to the listening socket
	s.answerWaiters(ctx, &messages.WaitResult{Error: notListening()})
	s.closing = false
	for _, c := range s.closers {
		ctx.Send(c, &messages.Closed{})
	}
	s.closers = nil
}

// shutdown runs when the actor stops: nothing it owns may outlive it.
func (s *ServerActor) shutdown(ctx actor.Context) {
	s.close(ctx)
	s.hookCancel()
	s.hooked.close()
}

// ---------------------------------------------------------------------------
// accepting

// updateAllowance tells the accept goroutine how many more connections the
// server can take now.
func (s *ServerActor) updateAllowance() {
	if s.gate != nil {
		s.gate.update(s.allowance(), 0)
	}
}

// allowance is the room left: none while paused, otherwise what both the
// pending queue and the live-connection cap leave. A connection in the
// incomingConnection hook counts against the cap, not the queue: as in Qt,
// where the queue holds only what the hook hands back, a hook that serves
// its connections itself (Qt's threaded server) is not held to
// maxPendingConnections.
func (s *ServerActor) allowance() int {
	if s.paused {
		return 0
	}
	n := s.maxPending - len(s.pending)
	if s.opts.Connection.Handler != nil {
		n = s.maxPending // handled connections never wait in the queue
	}
	if s.maxConns > 0 {
		n = min(n, s.maxConns-len(s.live)-len(s.inHook))
	}
	return max(n, 0)
}

func (s *ServerActor) onAccepted(ctx actor.Context, m *acceptedConn) {
	if m.gen != s.gen || s.gate == nil {
		return // accepted just before a close: closing its gate closed it
	}
	conn, ok := s.gate.take(m)
	if !ok {
		return
	}
	s.retryLoops(ctx)
	s.accepted++
	s.nextID++
	id := s.nextID
	if hook := s.incoming(); hook != nil {
		s.inHook[id] = conn // counts against MaxConnections while the hook runs
		self, root, hctx, hooked := ctx.Self(), ctx.ActorSystem().Root, s.hookCtx, s.hooked
		go func() {
			c, err := hook(hctx, conn)
			// Through the handover, not in hookDone: a hookDone queued as
			// the server stops is dropped, the handover closes c then.
			held, ok := hooked.put(c)
			if !ok { // the server stopped: nobody will take c
				closeBoth(nil, conn)
				return
			}
			root.Send(self, &hookDone{id: id, held: held, err: err})
		}()
	} else {
		s.admit(ctx, id, conn)
	}
	// The connection leaves the gate's in-flight count and takes its room
	// in one step, or the accept goroutine could slip in between.
	s.gate.update(s.allowance(), 1)
}

func (s *ServerActor) onHookDone(ctx actor.Context, m *hookDone) {
	conn, _ := s.hooked.take(m.held)
	raw, ok := s.inHook[m.id]
	if !ok { // the server closed while the hook ran
		closeBoth(conn, nil)
		return
	}
	if m.err != nil || conn == nil {
		s.onHandshakeFailed(ctx, m.err)
		closeBoth(conn, raw)
	} else {
		// raw leaves inHook once admitted: should admit panic (a broken
		// conn from the hook), the stopping server still closes it.
		s.admit(ctx, m.id, conn)
	}
	delete(s.inHook, m.id)
	s.updateAllowance()
}

// admit makes a ConnectionActor of conn, queues it (or lets its local handler
// serve it) and publishes NewConnection.
//
// The info is made only when something takes it (an owner, a subscriber, or
// the record of a connection that is not plain TCP): a handler-served plain
// connection nobody listens for makes none, so its accept leaves no garbage
// of addresses and messages among the long-lived objects it makes (issue
// 14: that garbage kept pages of the heap resident). It is made before the
// spawn, while the socket is surely open.
func (s *ServerActor) admit(ctx actor.Context, id uint64, conn net.Conn) {
	var info *messages.ConnectionInfo
	if s.opts.Connection.Handler == nil || len(s.subscribers) > 0 || !plainTCP(conn) {
		info = ConnectionInfoOf(conn, id)
		info.Server, info.NodeStartId = ctx.Self(), s.nodeStartID(ctx)
	}
	pid := s.spawnConnection(ctx, conn, id)
	s.live[pid.Id] = newLiveConn(conn, id, info)
	if s.opts.Connection.Handler == nil {
		if s.assign(ctx, pid, info) {
			return
		}
		s.pending = append(s.pending, pendingConn{pid: pid})
	}
	s.announce(ctx, pid, info)
}

// announce is the newConnection() signal, and wakes the waiters. info is
// nil only when there is no subscriber.
func (s *ServerActor) announce(ctx actor.Context, pid *actor.PID, info *messages.ConnectionInfo) {
	if len(s.subscribers) > 0 {
		ev := &messages.NewConnection{Server: ctx.Self(), Connection: pid, Pending: int32(len(s.pending)), Info: info}
		for _, sub := range s.subscribers {
			ctx.Send(sub.pid, ev)
		}
	}
	if len(s.pending) > 0 {
		s.answerWaiters(ctx, &messages.WaitResult{Available: true})
	}
}

func (s *ServerActor) onAcceptFailed(ctx actor.Context, m *acceptFailed) {
	if m.gen != s.gen {
		return
	}
	s.acceptErrs++
	s.lastErr = messages.FromError(m.err)
	ev := &messages.AcceptError{Server: ctx.Self(), Error: s.lastErr}
	for _, sub := range s.subscribers {
		ctx.Send(sub.pid, ev)
	}
}

// onTerminated forgets a connection or a subscriber that stopped, wherever it
// ran (a lost node reports its actors as terminated too).
func (s *ServerActor) onTerminated(ctx actor.Context, who *actor.PID) {
	delete(s.subscribers, pidKey(who))
	s.assignees.remove(who)
	if !s.isLive(ctx, who) {
		return
	}
	delete(s.live, who.Id)
	for i, p := range s.pending {
		if p.pid.Equal(who) {
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			break
		}
	}
	s.updateAllowance()
}

// ---------------------------------------------------------------------------
// the pending queue

func (s *ServerActor) nextPending(ctx actor.Context, m *messages.NextPendingConnection) *messages.PendingConnection {
	owner := m.Owner
	if owner == nil {
		owner = ctx.Sender()
	}
	switch {
	case owner == nil || owner.Id == "":
		return &messages.PendingConnection{Error: invalid("no owner: name one or send the request with a sender")}
	case m.Options.GetInitialCredit() < 0:
		return &messages.PendingConnection{Error: invalid("initial_credit %d is negative", m.Options.GetInitialCredit())}
	case refuseFuture(owner, "an owner", "own a connection") != nil:
		return &messages.PendingConnection{Error: refuseFuture(owner, "an owner", "own a connection")}
	case len(s.pending) == 0:
		return &messages.PendingConnection{}
	}
	p := s.pending[0]
	s.pending = s.pending[1:]
	s.updateAllowance()
	reply := &messages.PendingConnection{Connection: p.pid, Info: s.infoOf(ctx, p.pid)}
	if claimant := ctx.Sender(); claimant != nil && IsLocalAddress(ctx.ActorSystem(), p.pid.Address) {
		// The connection answers the claim once it has taken the owner, so
		// the owner hears PendingConnection before the connection's first
		// Received, and whatever the claimant sends the connection finds it
		// owned. If the connection has stopped meanwhile, the dead letters
		// answer (actors/deadletters.go).
		ctx.Send(p.pid, &messages.SetOwner{Owner: owner, Options: m.Options, Claimant: claimant, Reply: reply})
		return nil
	}
	// A connection of another node (AddPendingConnection), or a claim with
	// no one to answer: SetOwner is queued at the connection before the
	// caller can learn its PID, so it is the first thing the connection
	// hears about its owner.
	ctx.Send(p.pid, &messages.SetOwner{Owner: owner, Options: m.Options})
	return reply
}

func (s *ServerActor) setMaxPending(m *messages.SetMaxPendingConnections) *messages.Ack {
	if m.Max < 1 {
		return &messages.Ack{Error: invalid("max pending connections must be at least 1, got %d", m.Max)}
	}
	s.maxPending = int(m.Max)
	s.updateAllowance()
	return &messages.Ack{}
}

func (s *ServerActor) addPending(ctx actor.Context, m *messages.AddPendingConnection) *messages.Ack {
	pid := m.Connection
	switch {
	case pid == nil || pid.Id == "":
		return &messages.Ack{Error: invalid("no connection given")}
	case s.isPending(pid):
		return &messages.Ack{Error: invalid("connection %s is already pending", pid)}
	}
	if e := s.checkAddPending(ctx, pid); e != nil {
		return &messages.Ack{Error: e}
	}
	ctx.Watch(pid)
	info := &messages.ConnectionInfo{Server: ctx.Self(), NodeStartId: s.nodeStartID(ctx)}
	s.live[pid.Id] = liveConn{src: addedConn{info}}
	s.pending = append(s.pending, pendingConn{pid: pid, added: true, addedBy: peerOf(ctx)})
	s.updateAllowance()
	s.announce(ctx, pid, info)
	return &messages.Ack{}
}

func (s *ServerActor) isPending(pid *actor.PID) bool {
	for _, p := range s.pending {
		if p.pid.Equal(pid) {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// waitForNewConnection: the waiter is kept, never blocked on.

func (s *ServerActor) waitForNewConnection(ctx actor.Context, m *messages.WaitForNewConnection) {
	switch {
	case m.TimeoutMs < -1:
		ctx.Respond(&messages.WaitResult{Error: invalid("timeout_ms %d: want -1 (no time-out), 0 (poll) or more", m.TimeoutMs)})
	case s.ln == nil:
		ctx.Respond(&messages.WaitResult{Error: notListening()})
	case len(s.pending) > 0:
		ctx.Respond(&messages.WaitResult{Available: true})
	case m.TimeoutMs == 0:
		ctx.Respond(s.waitTimedOut())
	case ctx.Sender() == nil:
		// Nobody to answer: nothing to wait for.
	default:
		s.nextID++
		id := s.nextID
		w := &waiter{replyTo: ctx.Sender(), peer: peerOf(ctx)}
		s.holdWaiter(w)
		if m.TimeoutMs > 0 {
			self, root := ctx.Self(), ctx.ActorSystem().Root
			w.timer = time.AfterFunc(time.Duration(m.TimeoutMs)*time.Millisecond, func() {
				root.Send(self, &waitExpired{id: id})
			})
		}
		s.waiters[id] = w
	}
}

func (s *ServerActor) onWaitExpired(ctx actor.Context, id uint64) {
	if w, ok := s.waiters[id]; ok {
		delete(s.waiters, id)
		s.releaseWaiter(w)
		ctx.Send(w.replyTo, s.waitTimedOut())
	}
}

// waitTimedOut is a wait's time-out; as in Qt it also sets serverError() to
// SocketTimeoutError.
func (s *ServerActor) waitTimedOut() *messages.WaitResult {
	s.lastErr = messages.NewError(messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT, "Network operation timed out")
	return &messages.WaitResult{TimedOut: true}
}

func (s *ServerActor) answerWaiters(ctx actor.Context, r *messages.WaitResult) {
	for id, w := range s.waiters {
		if w.timer != nil {
			w.timer.Stop()
		}
		ctx.Send(w.replyTo, r)
		delete(s.waiters, id)
		s.releaseWaiter(w)
	}
}

// ---------------------------------------------------------------------------
// proxy, subscribers, status

func (s *ServerActor) setProxy(m *messages.SetProxy) *messages.Ack {
	p := m.Proxy
	if p == nil {
		return &messages.Ack{Error: invalid("no proxy given")}
	}
	switch p.Type {
	case messages.ProxyType_PROXY_TYPE_DEFAULT, messages.ProxyType_PROXY_TYPE_NO_PROXY:
		s.proxy = p
		return &messages.Ack{}
	case messages.ProxyType_PROXY_TYPE_SOCKS5:
		if p.Host == "" || p.Port == 0 || p.Port > 65535 {
			return &messages.Ack{Error: invalid("a SOCKS5 proxy needs a host and a port from 1 to 65535, got %q:%d", p.Host, p.Port)}
		}
		s.proxy = p
		return &messages.Ack{}
	case messages.ProxyType_PROXY_TYPE_HTTP,
		messages.ProxyType_PROXY_TYPE_HTTP_CACHING, messages.ProxyType_PROXY_TYPE_FTP_CACHING:
		return &messages.Ack{Error: messages.NewError(messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION,
			"Operation on socket is not supported: a %s proxy cannot listen", p.Type)}
	}
	return &messages.Ack{Error: invalid("unknown proxy type %d", int32(p.Type))}
}

// proxyCanListen holds for every proxy SetProxy accepts (no proxy, or
// SOCKS5, which listen hands to listenThroughSocks).
func (s *ServerActor) proxyCanListen() *messages.Error { return nil }

// subscribe adds sub (nil: the sender) to the subscribers with the start
// id of its node (0: none); one already there keeps its watch and takes the
// start id of its latest Subscribe.
func (s *ServerActor) subscribe(ctx actor.Context, sub *actor.PID, startID uint64) *messages.Ack {
	if sub == nil {
		sub = ctx.Sender()
	}
	if sub == nil || sub.Id == "" {
		return &messages.Ack{Error: invalid("no subscriber: name one or send the request with a sender")}
	}
	if e := refuseFuture(sub, "a subscriber", "receive events"); e != nil {
		return &messages.Ack{Error: e}
	}
	if _, ok := s.subscribers[pidKey(sub)]; !ok {
		ctx.Watch(sub)
	}
	s.subscribers[pidKey(sub)] = subscriber{pid: sub, startID: startID}
	return &messages.Ack{}
}

func (s *ServerActor) unsubscribe(ctx actor.Context, sub *actor.PID) *messages.Ack {
	if sub == nil {
		sub = ctx.Sender()
	}
	if sub == nil || sub.Id == "" {
		return &messages.Ack{Error: invalid("no subscriber: name one or send the request with a sender")}
	}
	if _, ok := s.subscribers[pidKey(sub)]; ok {
		delete(s.subscribers, pidKey(sub))
		s.assignees.remove(sub)
		if !s.isLive(ctx, sub) || !s.live[sub.Id].added() { // only added connections are watched for their end
			ctx.Unwatch(sub)
		}
	}
	return &messages.Ack{}
}

// isSubscriber says whether pid is subscribed.
func (s *ServerActor) isSubscriber(pid *actor.PID) bool {
	_, ok := s.subscribers[pidKey(pid)]
	return ok
}

func (s *ServerActor) status() *messages.ServerStatus {
	return &messages.ServerStatus{
		Listening:             s.ln != nil,
		Address:               s.address,
		Port:                  s.port,
		Error:                 s.lastErr,
		MaxPendingConnections: int32(s.maxPending),
		HasPendingConnections: len(s.pending) > 0,
		SocketDescriptor:      s.fd,
		Proxy:                 withoutPassword(s.proxy),
		Pending:               int32(len(s.pending)),
		Active:                int32(len(s.live) + len(s.inHook)),
		AcceptedTotal:         s.accepted,
		Paused:                s.paused,
		Backlog:               int32(s.backlog),
		MaxConnections:        int32(s.maxConns),
		AcceptErrors:          s.acceptErrs,
		Protocol:              s.protocol,
		Tls:                   s.ln != nil && s.tls != nil,
		HandshakeFailures:     s.handshakeFails,
		ProxyHeaderFailures:   s.proxyFails,
	}
}

// ---------------------------------------------------------------------------
// helpers

func invalid(format string, args ...any) *messages.Error {
	return messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION, "invalid argument: "+format, args...)
}

func notListening() *messages.Error {
	return messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION, "the server is not listening")
}

func closeBoth(a, b net.Conn) {
	if a != nil {
		a.Close()
	}
	if b != nil && b != a {
		b.Close()
	}
}

func itoa(p uint32) string { return strconv.FormatUint(uint64(p), 10) }

func listenerFD(l listener) int64 {
	fd := int64(-1)
	ln, ok := l.(*net.TCPListener)
	if !ok { // through a proxy: no listening socket of ours
		return fd
	}
	if rc, err := ln.SyscallConn(); err == nil {
		_ = rc.Control(func(f uintptr) { fd = int64(f) })
	}
	return fd
}
