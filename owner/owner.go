// Package owner is the owner-actor framework: an actor that subscribes to
// ServerActors, claims their connections and serves each through a Handler
// (Akka's model), on the server's node or any other.
package owner

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
	"google.golang.org/protobuf/proto"
)

// Handler serves connections from an owner actor: Akka's model, the way
// to serve connections that a server on another node accepted. It is the
// remote counterpart of actors.Handler: the same callbacks, fed by the
// messages a ConnectionActor sends its owner (Received, WriteAck,
// WriteFailed, Disconnected) instead of running inside the ConnectionActor.
//
// Flow control crosses the network unchanged: each Received spends one
// credit of the claim, and Owned.Demand grants more; Owned.Write asks for a
// WriteAck. Every method runs in the owner actor, one call at a time, and
// must not block.
type Handler interface {
	// Connected is called once, when the owner learns of the connection.
	Connected(c *Owned)
	// Received carries bytes read from the peer; data is the handler's to keep.
	Received(c *Owned, data []byte)
	// WriteAcked reports that the write with this ackID reached the kernel.
	WriteAcked(c *Owned, ackID uint64)
	// WriteFailed reports a write that will never reach the wire.
	WriteFailed(c *Owned, ackID uint64, err *messages.Error)
	// Disconnected is the last call: the connection ended (err nil after an
	// orderly close), or its node was lost.
	Disconnected(c *Owned, err *messages.Error)
}

// PeerCloser is an optional interface of an Handler. PeerClosed
// reports the peer's FIN (a half-close, or the whole close), after every
// Received: return true to keep writing and close later (Owned.Close),
// false to close once the writes already sent are flushed. A handler
// without it is closed for at PeerClosed, after the writes it sent before:
// a request followed by a half-close is answered in full, then closed.
type PeerCloser interface {
	PeerClosed(c *Owned) (keepOpen bool)
}

// HandlerFactory makes the Handler of one claimed connection.
type HandlerFactory func() Handler

// Owned is an Handler's grip on a connection it owns, wherever the
// connection runs. Its methods send one message each and do not block.
type Owned struct {
	pid     *actor.PID
	ctx     actor.Context
	info    *messages.ConnectionInfo
	h       Handler
	nextAck uint64
	watched bool   // watched itself: no server of its node is (see conn)
	node    uint64 // the start id of its node (ConnectionInfo.node_start_id), 0 until known
}

// PID is the ConnectionActor's PID.
func (c *Owned) PID() *actor.PID { return c.pid }

// Info is what the server told about the connection when it was claimed (nil
// when the first news of it was a Received).
func (c *Owned) Info() *messages.ConnectionInfo { return c.info }

// Write queues data for the peer and returns the ack id its WriteAcked or
// WriteFailed will carry. Writes go as requests (with the owner as sender),
// so that one reaching a connection that has already ended is still
// answered, with WriteFailed from the connection's node.
func (c *Owned) Write(data []byte) uint64 {
	c.nextAck++
	c.ctx.Request(c.pid, &messages.Write{Data: data, AckId: c.nextAck})
	return c.nextAck
}

// WriteAndDemand queues data for the peer and grants n more Received once
// it is on the wire (Write.demand): an echo-like protocol's next read rides
// on its write, with no WriteAck and Demand messages in between. Failures
// still come as WriteFailed, with ack id 0.
func (c *Owned) WriteAndDemand(data []byte, n int) {
	c.ctx.Request(c.pid, &messages.Write{Data: data, Demand: int32(n)})
}

// GiveAndDemand is WriteAndDemand for memory the handler gives up: the
// connection may reuse data, to its capacity, for its next reads once it is
// on the wire (Write.donate), sparing a new read buffer per chunk. The
// handler must not touch data afterwards; an echo's Received data is the
// usual candidate.
func (c *Owned) GiveAndDemand(data []byte, n int) {
	c.ctx.Request(c.pid, &messages.Write{Data: data, Demand: int32(n), Donate: true})
}

// Demand grants n more Received.
func (c *Owned) Demand(n int) { c.ctx.Send(c.pid, &messages.Demand{N: int32(n)}) }

// Close is disconnectFromHost(): flush, FIN, then Disconnected (the
// connection then lingers until the peer closes; the owner does not wait).
func (c *Owned) Close() { c.ctx.Send(c.pid, &messages.Close{}) }

// Abort resets the connection.
func (c *Owned) Abort() { c.ctx.Send(c.pid, &messages.Abort{}) }

// Config configures an owner actor (New).
type Config struct {
	// Server, when set, is subscribed to at start (a direct subscription;
	// across a cluster, subscribe the owner to the server's topic instead).
	// Each NewConnection from any server is answered with a claim.
	Server *actor.PID
	// Handler makes the handler of each claimed connection.
	Handler HandlerFactory
	// Claim travels with each claim: initial credit, half-close. The owner
	// adds peer_close_without_error: a Handler never sees ErrorOccurred, so
	// the connection need not send the one at the peer's FIN.
	Claim *messages.ClaimOptions
	// Assign makes the subscription to Server take connections: the server
	// assigns each new one to this owner (or in turn among the owners that
	// take them) with Claim's options, in one one-way message, instead of
	// announcing it for a claim (Subscribe.assign). Across nodes it saves
	// the claim's round trip per connection.
	Assign bool
	// Notify, when set, hears one readable line per event: a claim, a
	// connection's end, a server's loss. It runs in the actor: do not block.
	Notify func(line string)
	// OnServer, when set, hears how the owner stands with a server: nil
	// once subscribed to Server, an error when that subscription failed,
	// and an error when a watched server is lost. Both wrap server.ErrNoServer when
	// the server is missing or gone. It runs in the actor: do not block.
	OnServer func(server *actor.PID, err error)
}

// New returns the props of an owner actor: it claims the connections
// that servers announce to it (NewConnection, directly or through a cluster
// topic), watches their servers (and a connection itself where it watches
// no server of the connection's node), and serves them with cfg.Handler.
// When a connection or its node is lost the handler gets Disconnected.
func New(cfg Config) *actor.Props {
	claim := &messages.ClaimOptions{}
	if cfg.Claim != nil {
		claim = proto.Clone(cfg.Claim).(*messages.ClaimOptions)
	}
	claim.PeerCloseWithoutError = true
	return actor.PropsFromProducer(func() actor.Actor {
		return &ownerActor{cfg: cfg, claimOpts: claim, conns: map[key]*Owned{}, servers: map[key]*actor.PID{},
			claiming: map[key]bool{}, again: map[key]bool{}}
	}, actor.WithDispatcher(actors.OwnerDispatcher()), // on its senders' goroutines: see OwnerDispatcher
		actor.WithMailbox(actors.OwnerMailbox()))
}

type ownerActor struct {
	cfg       Config
	claimOpts *messages.ClaimOptions // cfg.Claim with peer_close_without_error
	conns     map[key]*Owned
	servers   map[key]*actor.PID                   // watched servers
	claiming  map[key]bool                         // servers with a claim in flight
	again     map[key]bool                         // servers that announced more during it
	checking  actors.LossChecks[*actor.Terminated] // loss reports being checked (checkLoss)
}

func (o *ownerActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		// The claims name this node's start: a connection checks a report
		// of its loss against it (ClaimOptions.owner_start_id).
		o.claimOpts = proto.Clone(o.claimOpts).(*messages.ClaimOptions)
		o.claimOpts.OwnerStartId = actors.StartID(ctx.ActorSystem())
		if o.cfg.Server != nil {
			o.subscribe(ctx, o.cfg.Server)
		}
	case *messages.NewConnection:
		if m.Assigned { // ours already: nothing to claim
			if m.Server != nil {
				o.watchServer(ctx, m.Server)
			}
			o.conn(ctx, m.Connection, m.Info)
			return
		}
		o.claim(ctx, m.Server)
	case *messages.Received:
		if c := o.conn(ctx, m.Connection, nil); c != nil {
			c.h.Received(c, m.Data)
		}
	case *messages.WriteAck:
		if c := o.conn(ctx, m.Connection, nil); c != nil {
			c.h.WriteAcked(c, m.AckId)
		}
	case *messages.WriteFailed:
		if c := o.conn(ctx, m.Connection, nil); c != nil {
			o.notify("write failed %s: %s", m.Connection, m.Error.GetMessage())
			c.h.WriteFailed(c, m.AckId, m.Error)
		}
	case *messages.Disconnected:
		o.ended(ctx, m.Connection, m.Error)
	case *actor.Terminated:
		o.terminated(ctx, m)
	case *connGone:
		o.lost(ctx, m.who, m.why)
	case *messages.PeerClosed:
		if c := o.conn(ctx, m.Connection, nil); c != nil {
			o.peerClosed(c)
		}
	case *messages.ErrorOccurred:
		// Disconnected follows, with the error (a FIN's RemoteHostClosed
		// is not sent: peer_close_without_error).
	case *actor.Stopping:
		o.unwatchAll(ctx)
	}
}

// unwatchAll forgets the servers and connections the owner watches: a
// watched actor keeps its watchers, and would tell this node of its end long
// after the node is gone (the remote then retries the dead address for
// seconds).
func (o *ownerActor) unwatchAll(ctx actor.Context) {
	for _, c := range o.conns {
		if c.watched {
			ctx.Unwatch(c.pid)
		}
	}
	for key, pid := range o.servers {
		delete(o.servers, key)
		ctx.Unwatch(pid)
	}
}

// subscribe subscribes the owner to a server directly; once subscribed it
// claims what was queued before (announced to nobody).
func (o *ownerActor) subscribe(ctx actor.Context, srv *actor.PID) {
	o.watchServer(ctx, srv)
	// The start id lets the server check a report of this node's loss
	// before it drops the owner (Subscribe.subscriber_start_id).
	f := ctx.RequestFuture(srv, &messages.Subscribe{Subscriber: ctx.Self(), Assign: o.cfg.Assign, Options: o.claimOpts,
		SubscriberStartId: o.claimOpts.OwnerStartId}, server.DefaultTimeout)
	ctx.ReenterAfter(f, func(res any, err error) {
		ack, _ := res.(*messages.Ack)
		switch {
		case err != nil:
			o.notify("subscribe to %s failed: %v", srv, err)
			if errors.Is(err, actor.ErrDeadLetter) {
				o.onServer(srv, noServer(srv))
			} else {
				o.onServer(srv, fmt.Errorf("subscribe to %s/%s: %w", srv.Address, srv.Id, err))
			}
		case ack == nil || ack.Error.Failed():
			o.notify("subscribe to %s failed: %v", srv, res)
			if ack == nil {
				o.onServer(srv, fmt.Errorf("subscribe to %s/%s: unexpected reply %T", srv.Address, srv.Id, res))
			} else {
				o.onServer(srv, fmt.Errorf("subscribe to %s/%s: %w", srv.Address, srv.Id, ack.Error.Err()))
			}
		default:
			o.notify("subscribed to %s", srv)
			o.onServer(srv, nil)
			o.claim(ctx, srv)
		}
	})
}

// claim asks srv for its pending connections, one NextPendingConnection
// after the other until the queue is empty. Several owners may hear of one
// connection; the srv hands each pending connection out once, so the
// others get an empty reply. One chain of claims runs per srv at a time.
func (o *ownerActor) claim(ctx actor.Context, srv *actor.PID) {
	if srv == nil {
		return
	}
	key := pidKey(srv)
	if o.claiming[key] {
		o.again[key] = true
		return
	}
	o.watchServer(ctx, srv)
	o.claiming[key] = true
	f := ctx.RequestFuture(srv, &messages.NextPendingConnection{Owner: ctx.Self(), Options: o.claimOpts}, server.DefaultTimeout)
	ctx.ReenterAfter(f, func(res any, err error) {
		delete(o.claiming, key)
		again := o.again[key]
		delete(o.again, key)
		p, _ := res.(*messages.PendingConnection)
		switch {
		case err != nil:
			o.notify("claim from %s failed: %v", srv, err)
			return
		case p == nil:
			o.notify("claim from %s: unexpected reply %T", srv, res)
			return
		case p.Error.Failed():
			o.notify("claim from %s failed: %s", srv, p.Error.GetMessage())
			return
		case p.Connection != nil:
			o.conn(ctx, p.Connection, p.Info)
			again = true
		}
		if again {
			o.claim(ctx, srv)
		}
	})
}

// conn finds or starts serving a connection. The claim's reply and the
// connection's first Received come from different actors, so either may
// arrive first.
//
// The owner watches a connection only when it watches no server on the
// connection's node. What the watch would tell is that node's loss: an
// ended connection says so itself (Disconnected, its last message, also
// when it is stopped), and the loss of its node reaches the owner as the
// server's Terminated (AddressTerminated), which ends every connection
// there (terminated). Across nodes that spares each connection a Watch, an
// Unwatch and a Terminated on the wire.
func (o *ownerActor) conn(ctx actor.Context, pid *actor.PID, info *messages.ConnectionInfo) *Owned {
	if pid == nil {
		return nil
	}
	key := pidKey(pid)
	if c, ok := o.conns[key]; ok {
		c.ctx = ctx
		if c.info == nil {
			c.info = info
			c.node = info.GetNodeStartId()
		}
		return c
	}
	c := &Owned{pid: pid, ctx: ctx, info: info, h: o.cfg.Handler(), node: info.GetNodeStartId()}
	o.conns[key] = c
	if !o.serverAt(pid.Address) {
		c.watched = true
		ctx.Watch(pid)
	}
	o.notify("claimed %s", pid)
	c.h.Connected(c)
	return c
}

// peerClosed closes the connection after the handler's writes, unless the
// handler keeps it open: the connection itself would wait for the owner (up
// to its owner time-out) before closing.
func (o *ownerActor) peerClosed(c *Owned) {
	if pc, ok := c.h.(PeerCloser); ok && pc.PeerClosed(c) {
		return
	}
	c.Close()
}

func (o *ownerActor) ended(ctx actor.Context, pid *actor.PID, err *messages.Error) {
	if pid == nil {
		return
	}
	c, ok := o.conns[pidKey(pid)]
	if !ok {
		return
	}
	delete(o.conns, pidKey(pid))
	if c.watched {
		ctx.Unwatch(pid)
	}
	c.ctx = ctx
	if err.Failed() {
		o.notify("ended %s: %s", pid, err.GetMessage())
	} else {
		o.notify("ended %s", pid)
	}
	c.h.Disconnected(c, err)
}

// terminated handles a connection or a server that stopped without telling:
// its node was lost (AddressTerminated) or it was stopped from outside. A
// report of a node's loss is checked first (checkLoss).
func (o *ownerActor) terminated(ctx actor.Context, m *actor.Terminated) {
	if m.Why == actor.TerminatedReason_AddressTerminated && o.startsKnownAt(m.Who.Address) {
		o.checkLoss(ctx, m)
		return
	}
	o.terminatedNow(ctx, m)
}

// startsKnownAt tells whether the start of the node is known for some
// connection at address.
func (o *ownerActor) startsKnownAt(address string) bool {
	for _, c := range o.conns {
		if c.pid.Address == address && c.node != 0 {
			return true
		}
	}
	return false
}

// checkLoss asks the node at a reported-lost address which start of it runs
// (actors.AskIncarnation) before it believes the report: Proto.Actor's
// remote reports a node restarted on the same address lost after it is up.
// No answer confirms the report. An answer says which connections there
// are gone — those of another start (or of one not known) — and which live
// on: the owner keeps those and watches again what the report ended (a
// server that the new start does not run is then reported NotFound).
// Reports of one address wait for one check.
func (o *ownerActor) checkLoss(ctx actor.Context, m *actor.Terminated) {
	addr := m.Who.Address
	o.checking.Add(ctx, addr, m, func(current uint64, reports []*actor.Terminated) {
		if current == 0 {
			for _, r := range reports {
				o.terminatedNow(ctx, r)
			}
			return
		}
		kept := 0
		for _, c := range o.conns {
			switch {
			case c.pid.Address != addr:
			case c.node == current:
				kept++
			default:
				forgetWatcher(ctx, c.pid)
				o.lost(ctx, c.pid, actor.TerminatedReason_AddressTerminated)
			}
		}
		for _, r := range reports {
			if o.watching(r.Who) {
				ctx.Watch(r.Who) // the report ended the remote's watch
			}
		}
		if kept > 0 {
			o.notify("loss report of %s: %d connections of the start that answers kept", addr, kept)
		}
	})
}

// watching tells whether the owner watches pid: a server, or a connection
// it watches itself.
func (o *ownerActor) watching(pid *actor.PID) bool {
	key := pidKey(pid)
	if _, ok := o.servers[key]; ok {
		return true
	}
	c, ok := o.conns[key]
	return ok && c.watched
}

// terminatedNow handles a Terminated taken as true.
func (o *ownerActor) terminatedNow(ctx actor.Context, m *actor.Terminated) {
	key := pidKey(m.Who)
	if m.Why == actor.TerminatedReason_AddressTerminated {
		forgetWatcher(ctx, m.Who)
	}
	if _, ok := o.servers[key]; ok {
		delete(o.servers, key)
		o.notify("lost server %s: %s", m.Who, m.Why)
		o.serverGone(ctx, m)
		if m.Why == actor.TerminatedReason_NotFound {
			o.onServer(m.Who, noServer(m.Who))
		} else {
			o.onServer(m.Who, fmt.Errorf("server %s/%s is gone (%s): %w", m.Who.Address, m.Who.Id, m.Why, server.ErrNoServer))
		}
	}
	if _, ok := o.conns[key]; !ok {
		return
	}
	if m.Why != actor.TerminatedReason_AddressTerminated {
		// Terminated is a system message and overtakes the connection's
		// last user messages (Disconnected with the real reason) in the
		// mailbox: look again once they have been handled.
		ctx.Send(ctx.Self(), &connGone{who: m.Who, why: m.Why})
		return
	}
	o.lost(ctx, m.Who, m.Why)
}

// serverGone carries the watch a lost server held for the connections of
// its node (see conn): when the node is lost, every connection there is;
// when only the server stopped, each connection there that no other server
// covers is watched from now on.
func (o *ownerActor) serverGone(ctx actor.Context, m *actor.Terminated) {
	addr := m.Who.Address
	if m.Why == actor.TerminatedReason_AddressTerminated {
		// The connections' node is lost: it holds no watch of theirs any
		// more, nor of its owner watcher's (actors.OwnerWatcher).
		forgetWatcher(ctx, actors.OwnerWatcher(addr))
		for _, c := range o.conns {
			if c.pid.Address == addr {
				forgetWatcher(ctx, c.pid)
				o.lost(ctx, c.pid, m.Why)
			}
		}
		return
	}
	if o.serverAt(addr) {
		return
	}
	for _, c := range o.conns {
		if c.pid.Address == addr && !c.watched {
			c.watched = true
			ctx.Watch(c.pid)
		}
	}
}

// serverAt tells whether the owner watches a server at address.
func (o *ownerActor) serverAt(address string) bool {
	for _, s := range o.servers {
		if s.Address == address {
			return true
		}
	}
	return false
}

// forgetWatcher removes who, an actor of a lost node, from the watchers of
// this actor (a server watches its subscribers, a connection its owner): the
// remote keeps remote watchers after their node is lost, and this actor's
// Terminated would make it retry the dead address for seconds.
func forgetWatcher(ctx actor.Context, who *actor.PID) {
	if p, ok := ctx.ActorSystem().ProcessRegistry.GetLocal(ctx.Self().Id); ok {
		p.SendSystemMessage(ctx.Self(), &actor.Unwatch{Watcher: who})
	}
}

// connGone is a Terminated of a connection, queued behind its last messages.
type connGone struct {
	who *actor.PID
	why actor.TerminatedReason
}

func (o *ownerActor) lost(ctx actor.Context, who *actor.PID, why actor.TerminatedReason) {
	if _, ok := o.conns[pidKey(who)]; ok {
		o.ended(ctx, who, messages.NewError(messages.SocketError_SOCKET_ERROR_NETWORK,
			"connection lost: %s (%s)", who, why))
	}
}

func (o *ownerActor) watchServer(ctx actor.Context, pid *actor.PID) {
	if _, ok := o.servers[pidKey(pid)]; !ok {
		o.servers[pidKey(pid)] = pid
		ctx.Watch(pid)
	}
}

func (o *ownerActor) onServer(server *actor.PID, err error) {
	if o.cfg.OnServer != nil {
		o.cfg.OnServer(server, err)
	}
}

func noServer(pid *actor.PID) error {
	return fmt.Errorf("no server named %q at %s: %w", pid.Id, pid.Address, server.ErrNoServer)
}

func (o *ownerActor) notify(format string, args ...any) {
	if o.cfg.Notify != nil {
		o.cfg.Notify(fmt.Sprintf(format, args...))
	}
}

// Stop stops an owner actor and, when server is set, unsubscribes it
// from that server and waits up to timeout for the answer. Call it before
// the remote shuts down: the owner unwatches its servers and connections as
// it stops, and the server's answer, sent after it has taken in the
// unwatches (they travel ahead of the Unsubscribe on the same stream), says
// that it will not try to reach this node for the owner again. Leave server
// nil when it is already lost: a request to a dead node waits out timeout.
func Stop(root *actor.RootContext, owner, srv *actor.PID, timeout time.Duration) error {
	if err := root.StopFuture(owner).Wait(); err != nil {
		return fmt.Errorf("stop owner %s/%s: %w", owner.Address, owner.Id, err)
	}
	if srv == nil {
		return nil
	}
	res, err := root.RequestFuture(srv, &messages.Unsubscribe{Subscriber: owner}, timeout).Result()
	if err != nil {
		return fmt.Errorf("unsubscribe from %s/%s: %w", srv.Address, srv.Id, err)
	}
	switch ack, _ := res.(*messages.Ack); {
	case ack == nil:
		return fmt.Errorf("unsubscribe from %s/%s: unexpected reply %T", srv.Address, srv.Id, res)
	case ack.Error.Failed():
		return fmt.Errorf("unsubscribe from %s/%s: %w", srv.Address, srv.Id, ack.Error.Err())
	}
	return nil
}

// Echo is the Handler factory of an echo service served from an
// owner actor: each Received is written back with a Write that grants the
// next read once it is on the wire (Write.demand), so at most the claim's
// credit of chunks is ever in flight, with two messages per chunk — one
// each way — even across nodes.
func Echo() HandlerFactory { return func() Handler { return &echoOwner{} } }

type echoOwner struct{}

func (*echoOwner) Connected(*Owned)                     {}
func (*echoOwner) Received(c *Owned, data []byte)       { c.GiveAndDemand(data, 1) }
func (*echoOwner) WriteAcked(*Owned, uint64)            {}
func (*echoOwner) Disconnected(*Owned, *messages.Error) {}
func (*echoOwner) WriteFailed(c *Owned, _ uint64, _ *messages.Error) {
	c.Abort() // a gap in an echo is a broken echo
}

// Discard is the Handler factory of a sink: each Received grants
// the next.
func Discard() HandlerFactory { return func() Handler { return discardOwner{} } }

type discardOwner struct{}

func (discardOwner) Connected(*Owned)                            {}
func (discardOwner) Received(c *Owned, _ []byte)                 { c.Demand(1) }
func (discardOwner) WriteAcked(*Owned, uint64)                   {}
func (discardOwner) WriteFailed(*Owned, uint64, *messages.Error) {}
func (discardOwner) Disconnected(*Owned, *messages.Error)        {}

// HandlerByName maps a handler's command-line name to its owner-side
// factory: "echo" or "discard".
func HandlerByName(name string) (HandlerFactory, error) {
	switch name {
	case "echo":
		return Echo(), nil
	case "discard":
		return Discard(), nil
	default:
		return nil, fmt.Errorf("unknown handler %q: want echo or discard", name)
	}
}

// key is a PID as a map key. PID.String() is the generated protobuf
// String (prototext, by reflection): on the owner's per-message path it took
// a sixth of the owner node's CPU under 64-byte ping-pong across nodes. The
// two strings side by side, not joined, cost a look-up no allocation (a
// joined key was one allocation per Received on the same node).
type key struct{ address, id string }

func pidKey(pid *actor.PID) key { return key{pid.Address, pid.Id} }
