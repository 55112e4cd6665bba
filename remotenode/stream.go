package remotenode

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/extensions"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/internal/remotecfg"
)

// Stream is a node-to-node stream transport beside Proto.Actor's remote:
// once started, every message from this node to a peer node that runs one
// too travels on a plain TCP (or mutual TLS) connection of this node's own,
// as length-prefixed frames, instead of through the remote's endpoint
// writer, gRPC and endpoint reader. A Received's or Write's bytes are
// written straight from their slice and read into a pooled chunk: two
// copies per byte per hop and one goroutine hand-over, a TCP relay's shape.
//
// Every message to a peer takes one lane, in the order it was sent: user
// and system messages alike (Watch, Unwatch, Terminated), so that a
// connection's last Received and Disconnected reach its owner before the
// Terminated that follows them. Per peer address the lane is, in order:
//   - connecting: messages wait in order while this node asks the peer's
//     "tcpactor-stream" actor for an address and a ticket (through the
//     remote itself), dials and presents the ticket;
//   - stream: messages are framed and written by the stream's writer;
//   - fallback: the peer has no stream or the set-up failed: the waiting
//     messages, in order, then every later one go through Proto.Actor's
//     remote, until the remote reports the peer lost (a stream could
//     overtake what the remote still holds for a live peer); then the next
//     message sets up again;
//   - broken: the stream failed (the peer went away): the next message
//     starts connecting again.
//
// Streams are one-way, as the remote's endpoints: each node writes only on
// the streams it dialled and reads only those peers dialled to it. The
// node at the other end of an incoming stream is the one its ticket was
// issued to (the node the remote guard named on the StreamHello); every
// message read off it is stamped with that node in actors.RemotePeerHeader
// and goes through the guard's own rules (Stop, PoisonPill, foreign Watch,
// Unwatch and Terminated, senders claiming this node are refused), so the
// actors' rules for remote peers apply unchanged.
//
// The transport owns the watches it carries: when a stream to a peer breaks
// (or the remote reports the peer's endpoint terminated, and the node at
// that address does not answer with the start id the peer named: see
// stream_loss.go), every local actor
// that watched an actor there through the stream gets
// Terminated{Why: AddressTerminated}, as from the remote's endpoint watcher.
//
// A message that is not protobuf cannot cross (the remote drops it too):
// it is refused with a log line and counted (Unsendable).
type Stream struct {
	// Host and Port the stream listener binds. Host "" is the host of the
	// node's address (its advertised host, or the remote's); port 0 lets
	// the kernel pick.
	Host string
	Port int
	// TLS makes the streams mutual TLS with the remote's certificates: set
	// it exactly when the remote runs TLS. Each stream's client
	// certificate must name the host of the node its ticket was issued to.
	TLS *TLS
	// Log receives the transport's logging; nil: the actor system's.
	Log *slog.Logger
	// SetupTimeout bounds the set-up of one stream (the StreamHello, the
	// dial, the TLS handshake and the ticket); 0: 5 s.
	SetupTimeout time.Duration
}

// StreamActorName is the name of the actor that answers StreamHello on
// every node with a Stream.
const StreamActorName = "tcpactor-stream"

// StreamTransport is an installed Stream. Stop it before or with the remote.
type StreamTransport struct {
	sys      *actor.ActorSystem
	log      *slog.Logger
	host     string      // Stream.Host
	port     int         // Stream.Port
	serverT  *tls.Config // nil: plaintext
	clientT  *tls.Config
	timeout  time.Duration
	actor    *actor.PID
	tickets  tickets
	sub      *eventstream.Subscription
	direct   atomic.Pointer[actor.AddressResolver] // the remote's own resolver, found once it has started
	probePID actor.PID                             // what only the transport's resolver answers with its process

	lanes   sync.Map // peer address → *lane
	proc    process
	mu      sync.Mutex
	ln      net.Listener          // bound by Listen; nil until then
	addr    string                // what peers dial: the node's host, the listener's port
	conns   map[net.Conn]struct{} // every open stream and set-up, to close on Stop
	stopped bool
	wg      sync.WaitGroup

	sent       atomic.Uint64
	writes     atomic.Uint64
	received   atomic.Uint64
	unsendable atomic.Uint64
	refused    atomic.Uint64
	dropped    atomic.Uint64
	stale      atomic.Uint64 // StaleReports
	unsentLog  sync.Map      // type name → struct{}: each logged once
}

// Install puts the transport in place on sys: call it before the remote
// starts (remote.Start, or cluster.StartMember, which starts it), and
// Listen once it has. A PID caches the Process it first resolves to, so
// the transport must be the first AddressResolver before anything
// resolves a PID of another node (the cluster resolves its members' while
// StartMember runs): installed first, it answers every PID of another node
// from the remote's start on, and the remote's own resolver, registered
// after it, is found when first needed (the fallback). The actor that
// answers peers' StreamHello runs from here on, so a peer that reaches
// this node's remote as soon as it is up finds it; the listener binds on
// the first StreamHello if Listen has not bound it yet.
func (s Stream) Install(sys *actor.ActorSystem) (*StreamTransport, error) {
	if StreamOf(sys) != nil {
		return nil, errors.New("remotenode.Stream: the actor system has one already")
	}
	t := &StreamTransport{
		sys:     sys,
		log:     s.Log,
		host:    s.Host,
		port:    s.Port,
		timeout: s.SetupTimeout,
		conns:   map[net.Conn]struct{}{},
	}
	if t.log == nil {
		t.log = sys.Logger()
	}
	if t.timeout <= 0 {
		t.timeout = 5 * time.Second
	}
	if s.TLS != nil {
		srv, cli, err := remotecfg.TLSFiles(*s.TLS).Configs()
		if err != nil {
			return nil, err
		}
		t.serverT, t.clientT = srv, cli
	}
	t.proc.t = t
	pid, err := sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &helloActor{t: t} }), StreamActorName)
	if err != nil {
		return nil, fmt.Errorf("remotenode.Stream: %w", err)
	}
	t.actor = pid
	sys.Extensions.Register(t)
	t.sub = sys.EventStream.Subscribe(func(ev any) {
		if e, ok := ev.(*remote.EndpointTerminatedEvent); ok {
			t.peerLost(e.Address)
		}
	})
	reg := sys.ProcessRegistry
	reg.RemoteHandlers = append([]actor.AddressResolver{t.resolve}, reg.RemoteHandlers...)
	return t, nil
}

// Start is Install then Listen on sys, whose remote has started: for a
// node that sends nothing to another before it (a PID resolved before
// keeps the remote's lane). Prefer Install before the remote starts.
func (s Stream) Start(sys *actor.ActorSystem) (*StreamTransport, error) {
	if len(sys.ProcessRegistry.RemoteHandlers) == 0 {
		return nil, errors.New("remotenode.Stream: the remote has not started")
	}
	t, err := s.Install(sys)
	if err != nil {
		return nil, err
	}
	if err := t.Listen(); err != nil {
		t.Stop()
		return nil, err
	}
	return t, nil
}

// Listen binds the listener peers dial for their streams to this node, if
// it is not bound yet; the remote must have started (the listener's host
// is the node's unless Stream.Host says otherwise). Call it right after
// the remote starts, to learn of a failure at once: the first StreamHello
// binds it otherwise, and a failure then leaves that peer on the remote.
func (t *StreamTransport) Listen() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.stopped:
		return errStopped
	case t.ln != nil:
		return nil
	}
	node, _, err := net.SplitHostPort(t.sys.Address())
	if err != nil {
		return fmt.Errorf("remotenode.Stream: the remote has not started (node address %q)", t.sys.Address())
	}
	host := t.host
	if host == "" {
		host = node
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(t.port)))
	if err != nil {
		return fmt.Errorf("remotenode.Stream: %w", err)
	}
	t.ln = ln
	t.addr = net.JoinHostPort(node, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	t.wg.Add(1)
	go t.acceptLoop(ln)
	return nil
}

var streamExtension = extensions.NextExtensionID()

// ExtensionID makes the transport an extension of its actor system
// (StreamOf).
func (t *StreamTransport) ExtensionID() extensions.ExtensionID { return streamExtension }

// StreamOf is the stream transport started on sys, or nil.
func StreamOf(sys *actor.ActorSystem) *StreamTransport {
	t, _ := sys.Extensions.Get(streamExtension).(*StreamTransport)
	return t
}

// Sent is how many messages this node's own streams carried out.
func (t *StreamTransport) Sent() uint64 { return t.sent.Load() }

// Writes is how many writes to the socket (system calls; with TLS,
// buffered flushes) carried the messages Sent counts: Sent/Writes is the
// frames per write.
func (t *StreamTransport) Writes() uint64 { return t.writes.Load() }

// Received is how many messages the streams peers dialled to this node
// carried in.
func (t *StreamTransport) Received() uint64 { return t.received.Load() }

// Address is what peers dial for a stream to this node; "" until the
// listener is bound (Listen).
func (t *StreamTransport) Address() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addr
}

// Unsendable is how many messages the transport refused to send because
// they are not protobuf (or do not marshal).
func (t *StreamTransport) Unsendable() uint64 { return t.unsendable.Load() }

// Refused is how many messages read off streams the rules for remote
// peers refused, and streams refused at their ticket.
func (t *StreamTransport) Refused() uint64 { return t.refused.Load() }

// Dropped is how many messages read off streams could not be decoded.
func (t *StreamTransport) Dropped() uint64 { return t.dropped.Load() }

// Stop closes the listener, lets each of this node's streams write what
// was sent on it (for up to drainTimeout: the last Unwatch and Unsubscribe
// of a node that stops gracefully), closes every stream and waits for the
// transport's goroutines. Messages to other nodes then go through the
// remote (until the remote itself stops). Stop it before the remote.
func (t *StreamTransport) Stop() {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	t.stopped = true
	if t.ln != nil {
		t.ln.Close()
	}
	t.mu.Unlock()
	t.sys.EventStream.Unsubscribe(t.sub)
	var outs []*outStream
	t.lanes.Range(func(_, v any) bool {
		if o := v.(*lane).stop(); o != nil {
			outs = append(outs, o)
		}
		return true
	})
	deadline := time.NewTimer(drainTimeout)
	defer deadline.Stop()
	for _, o := range outs {
		select {
		case <-o.exited:
		case <-deadline.C:
		}
	}
	t.mu.Lock()
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	_ = t.sys.Root.StopFuture(t.actor).Wait()
}

// drainTimeout bounds how long Stop lets the streams write what is queued.
const drainTimeout = 2 * time.Second

// track registers a connection to close on Stop; false when stopped.
func (t *StreamTransport) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *StreamTransport) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	c.Close()
}

// spawn runs f in a goroutine Stop waits for; false when stopped.
func (t *StreamTransport) spawn(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
	return true
}

// isStopped reports whether Stop has begun.
func (t *StreamTransport) isStopped() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stopped
}

// isLocal tells whether a PID address is this node's.
func (t *StreamTransport) isLocal(addr string) bool {
	return addr == "" || addr == "nonhost" || addr == t.sys.Address()
}

// resolve is the transport's AddressResolver, first in RemoteHandlers. A
// PID caches the Process it resolves to, so it answers every remote
// address with the transport's process, always, and the lane is chosen
// per message. Until the remote has started it answers nothing: such a
// PID goes to dead letters and caches nothing, as without the transport.
func (t *StreamTransport) resolve(pid *actor.PID) (actor.Process, bool) {
	if pid != &t.probePID && t.remoteResolver() == nil {
		return nil, false
	}
	return &t.proc, true
}

// remoteResolver is the remote's own AddressResolver, or nil before the
// remote has started. It is found at the first need and kept: the first
// resolver of the registry that is not the transport's (which alone
// answers probePID with the transport's process).
func (t *StreamTransport) remoteResolver() actor.AddressResolver {
	if r := t.direct.Load(); r != nil {
		return *r
	}
	for _, r := range t.sys.ProcessRegistry.RemoteHandlers {
		if p, ok := r(&t.probePID); ok && p != actor.Process(&t.proc) {
			t.direct.Store(&r)
			return r
		}
	}
	return nil
}

// directProcess is the remote's own process for pid.
func (t *StreamTransport) directProcess(pid *actor.PID) actor.Process {
	if r := t.remoteResolver(); r != nil {
		if p, ok := r(pid); ok {
			return p
		}
	}
	return t.sys.DeadLetter
}

// lane is the lane to the peer at addr.
func (t *StreamTransport) lane(addr string) *lane {
	if l, ok := t.lanes.Load(addr); ok {
		return l.(*lane)
	}
	l, _ := t.lanes.LoadOrStore(addr, &lane{t: t, addr: addr, watches: map[watchKey]watch{}})
	return l.(*lane)
}

// peerLost is the remote's report that the endpoint at addr terminated.
func (t *StreamTransport) peerLost(addr string) {
	if l, ok := t.lanes.Load(addr); ok {
		l.(*lane).lost()
	}
}

// refuseSend counts and logs (once per type) a message that cannot cross.
func (t *StreamTransport) refuseSend(target *actor.PID, name string, err error) {
	t.unsendable.Add(1)
	if _, seen := t.unsentLog.LoadOrStore(name, struct{}{}); !seen {
		t.log.Warn("tcpactor: a message to another node was not sent: the stream carries protobuf messages only (further ones of this type are counted, not logged)",
			"type", name, "target", target, "error", err)
	}
}

// process is the transport's actor.Process for every remote PID.
type process struct{ t *StreamTransport }

func (p *process) SendUserMessage(pid *actor.PID, message any) {
	p.t.lane(pid.Address).send(pid, message, false)
}

func (p *process) SendSystemMessage(pid *actor.PID, message any) {
	p.t.lane(pid.Address).send(pid, message, true)
}

func (p *process) Stop(pid *actor.PID) { p.SendSystemMessage(pid, &actor.Stop{}) }
