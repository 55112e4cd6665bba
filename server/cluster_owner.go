package server

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// OwnerHandler serves connections from an owner actor: Akka's model, the way
// to serve connections that a server on another node accepted. It is the
// remote counterpart of actors.Handler: the same callbacks, fed by the
// messages a ConnectionActor sends its owner (Received, WriteAck,
// WriteFailed, Disconnected) instead of running inside the ConnectionActor.
//
// Flow control crosses the network unchanged: each Received spends one
// credit of the claim, and Owned.Demand grants more; Owned.Write asks for a
// WriteAck. Every method runs in the owner actor, one call at a time, and
// must not block.
type OwnerHandler interface {
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

// OwnerHandlerFactory makes the OwnerHandler of one claimed connection.
type OwnerHandlerFactory func() OwnerHandler

// Owned is an OwnerHandler's grip on a connection it owns, wherever the
// connection runs. Its methods send one message each and do not block.
type Owned struct {
	pid     *actor.PID
	ctx     actor.Context
	info    *messages.ConnectionInfo
	h       OwnerHandler
	nextAck uint64
}

// PID is the ConnectionActor's PID.
func (c *Owned) PID() *actor.PID { return c.pid }

// Info is what the server told about the connection when it was claimed (nil
// when the first news of it was a Received).
func (c *Owned) Info() *messages.ConnectionInfo { return c.info }

// Write queues data for the peer and returns the ack id its WriteAcked or
// WriteFailed will carry.
func (c *Owned) Write(data []byte) uint64 {
	c.nextAck++
	c.ctx.Send(c.pid, &messages.Write{Data: data, AckId: c.nextAck})
	return c.nextAck
}

// Demand grants n more Received.
func (c *Owned) Demand(n int) { c.ctx.Send(c.pid, &messages.Demand{N: int32(n)}) }

// Close is disconnectFromHost(): flush, FIN, then Disconnected.
func (c *Owned) Close() { c.ctx.Send(c.pid, &messages.Close{}) }

// Abort resets the connection.
func (c *Owned) Abort() { c.ctx.Send(c.pid, &messages.Abort{}) }

// OwnerConfig configures an owner actor (NewOwner).
type OwnerConfig struct {
	// Server, when set, is subscribed to at start (a direct subscription;
	// across a cluster, subscribe the owner to the server's topic instead).
	// Each NewConnection from any server is answered with a claim.
	Server *actor.PID
	// Handler makes the handler of each claimed connection.
	Handler OwnerHandlerFactory
	// Claim travels with each claim: initial credit, half-close.
	Claim *messages.ClaimOptions
	// Notify, when set, hears one readable line per event: a claim, a
	// connection's end, a server's loss. It runs in the actor: do not block.
	Notify func(line string)
}

// NewOwner returns the props of an owner actor: it claims the connections
// that servers announce to it (NewConnection, directly or through a cluster
// topic), watches each, and serves them with cfg.Handler. When a connection
// or its node is lost the handler gets Disconnected.
func NewOwner(cfg OwnerConfig) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return &ownerActor{cfg: cfg, conns: map[string]*Owned{}, servers: map[string]bool{},
			claiming: map[string]bool{}, again: map[string]bool{}}
	})
}

type ownerActor struct {
	cfg      OwnerConfig
	conns    map[string]*Owned
	servers  map[string]bool // watched servers
	claiming map[string]bool // servers with a claim in flight
	again    map[string]bool // servers that announced more during it
}

func (o *ownerActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if o.cfg.Server != nil {
			o.subscribe(ctx, o.cfg.Server)
		}
	case *messages.NewConnection:
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
	case *messages.PeerClosed, *messages.ErrorOccurred:
		// Disconnected follows (the claim does not keep connections open).
	}
}

// subscribe subscribes the owner to a server directly; once subscribed it
// claims what was queued before (announced to nobody).
func (o *ownerActor) subscribe(ctx actor.Context, server *actor.PID) {
	o.watchServer(ctx, server)
	f := ctx.RequestFuture(server, &messages.Subscribe{Subscriber: ctx.Self()}, DefaultTimeout)
	ctx.ReenterAfter(f, func(res any, err error) {
		ack, _ := res.(*messages.Ack)
		switch {
		case err != nil:
			o.notify("subscribe to %s failed: %v", server, err)
		case ack == nil || ack.Error.Failed():
			o.notify("subscribe to %s failed: %v", server, res)
		default:
			o.notify("subscribed to %s", server)
			o.claim(ctx, server)
		}
	})
}

// claim asks server for its pending connections, one NextPendingConnection
// after the other until the queue is empty. Several owners may hear of one
// connection; the server hands each pending connection out once, so the
// others get an empty reply. One chain of claims runs per server at a time.
func (o *ownerActor) claim(ctx actor.Context, server *actor.PID) {
	if server == nil {
		return
	}
	key := server.String()
	if o.claiming[key] {
		o.again[key] = true
		return
	}
	o.watchServer(ctx, server)
	o.claiming[key] = true
	f := ctx.RequestFuture(server, &messages.NextPendingConnection{Owner: ctx.Self(), Options: o.cfg.Claim}, DefaultTimeout)
	ctx.ReenterAfter(f, func(res any, err error) {
		delete(o.claiming, key)
		again := o.again[key]
		delete(o.again, key)
		p, _ := res.(*messages.PendingConnection)
		switch {
		case err != nil:
			o.notify("claim from %s failed: %v", server, err)
			return
		case p == nil:
			o.notify("claim from %s: unexpected reply %T", server, res)
			return
		case p.Error.Failed():
			o.notify("claim from %s failed: %s", server, p.Error.GetMessage())
			return
		case p.Connection != nil:
			o.conn(ctx, p.Connection, p.Info)
			again = true
		}
		if again {
			o.claim(ctx, server)
		}
	})
}

// conn finds or starts serving a connection. The claim's reply and the
// connection's first Received come from different actors, so either may
// arrive first.
func (o *ownerActor) conn(ctx actor.Context, pid *actor.PID, info *messages.ConnectionInfo) *Owned {
	if pid == nil {
		return nil
	}
	key := pid.String()
	if c, ok := o.conns[key]; ok {
		c.ctx = ctx
		if c.info == nil {
			c.info = info
		}
		return c
	}
	c := &Owned{pid: pid, ctx: ctx, info: info, h: o.cfg.Handler()}
	o.conns[key] = c
	ctx.Watch(pid)
	o.notify("claimed %s", pid)
	c.h.Connected(c)
	return c
}

func (o *ownerActor) ended(ctx actor.Context, pid *actor.PID, err *messages.Error) {
	if pid == nil {
		return
	}
	c, ok := o.conns[pid.String()]
	if !ok {
		return
	}
	delete(o.conns, pid.String())
	ctx.Unwatch(pid)
	c.ctx = ctx
	if err.Failed() {
		o.notify("ended %s: %s", pid, err.GetMessage())
	} else {
		o.notify("ended %s", pid)
	}
	c.h.Disconnected(c, err)
}

// terminated handles a connection or a server that stopped without telling:
// its node was lost (AddressTerminated) or it was stopped from outside.
func (o *ownerActor) terminated(ctx actor.Context, m *actor.Terminated) {
	key := m.Who.String()
	if o.servers[key] {
		delete(o.servers, key)
		o.notify("lost server %s: %s", m.Who, m.Why)
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

// connGone is a Terminated of a connection, queued behind its last messages.
type connGone struct {
	who *actor.PID
	why actor.TerminatedReason
}

func (o *ownerActor) lost(ctx actor.Context, who *actor.PID, why actor.TerminatedReason) {
	if _, ok := o.conns[who.String()]; ok {
		o.ended(ctx, who, messages.NewError(messages.SocketError_SOCKET_ERROR_NETWORK,
			"connection lost: %s (%s)", who, why))
	}
}

func (o *ownerActor) watchServer(ctx actor.Context, pid *actor.PID) {
	if !o.servers[pid.String()] {
		o.servers[pid.String()] = true
		ctx.Watch(pid)
	}
}

func (o *ownerActor) notify(format string, args ...any) {
	if o.cfg.Notify != nil {
		o.cfg.Notify(fmt.Sprintf(format, args...))
	}
}

// EchoOwner is the OwnerHandler factory of an echo service served from an
// owner actor: each Received is written back, and its WriteAck grants the
// next read, so at most the claim's credit of chunks is ever in flight.
func EchoOwner() OwnerHandlerFactory { return func() OwnerHandler { return &echoOwner{} } }

type echoOwner struct{}

func (*echoOwner) Connected(*Owned)                     {}
func (*echoOwner) Received(c *Owned, data []byte)       { c.Write(data) }
func (*echoOwner) WriteAcked(c *Owned, _ uint64)        { c.Demand(1) }
func (*echoOwner) Disconnected(*Owned, *messages.Error) {}
func (*echoOwner) WriteFailed(c *Owned, _ uint64, _ *messages.Error) {
	c.Abort() // a gap in an echo is a broken echo
}

// DiscardOwner is the OwnerHandler factory of a sink: each Received grants
// the next.
func DiscardOwner() OwnerHandlerFactory { return func() OwnerHandler { return discardOwner{} } }

type discardOwner struct{}

func (discardOwner) Connected(*Owned)                            {}
func (discardOwner) Received(c *Owned, _ []byte)                 { c.Demand(1) }
func (discardOwner) WriteAcked(*Owned, uint64)                   {}
func (discardOwner) WriteFailed(*Owned, uint64, *messages.Error) {}
func (discardOwner) Disconnected(*Owned, *messages.Error)        {}

// OwnerHandlerByName maps a handler's command-line name to its owner-side
// factory: "echo" or "discard".
func OwnerHandlerByName(name string) (OwnerHandlerFactory, error) {
	switch name {
	case "echo":
		return EchoOwner(), nil
	case "discard":
		return DiscardOwner(), nil
	default:
		return nil, fmt.Errorf("unknown handler %q: want echo or discard", name)
	}
}
