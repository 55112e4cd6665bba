package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
)

// handle is a handler node: it serves the connections of a server that runs
// on another node (started with `tcpactor serve --handler none --remote ...`).
// It subscribes to the server's newConnection() signal, claims each new
// connection for an owner actor of its own (NextPendingConnection{owner}),
// and the owner speaks Received / Write / Demand with the connection across
// the nodes. Several handler nodes may serve one server: each connection
// goes to whichever claims it first.
func handle(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("handle", stdout)
	target := fs.String("server", "", "the server to serve, as `HOST:PORT/NAME` (its remote address and name)")
	handler := fs.String("handler", "echo", "what the owner actors do: echo or discard")
	remoteAddr := fs.String("remote", "127.0.0.1:0", "this node's remote `HOST:PORT` (port 0 picks one); the server's node must reach it")
	level := fs.String("log-level", "warn", "log level of stderr: debug, info, warn, error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *target == "" {
		return badUsage("--server is required (HOST:PORT/NAME)")
	}
	srvPID, err := serverPID("server", *target)
	if err != nil {
		return err
	}
	owner, ok := ownerKinds[*handler]
	if !ok {
		return badUsage("--handler %q: want echo or discard", *handler)
	}
	host, port, err := hostPort("remote", *remoteAddr)
	if err != nil {
		return err
	}
	lvl, err := logLevel(*level)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	if err := reachable(srvPID); err != nil {
		return err
	}
	sys := newSystem(stderr, lvl)
	defer sys.Shutdown()
	rem, err := startRemote(sys, host, port)
	if err != nil {
		return err
	}
	defer shutdownRemote(rem)

	lost := make(chan error, 1)
	c := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &remoteClaimer{server: srvPID, owner: owner, lost: lost}
	}))
	// Stopped before remote shuts down, so that the server hears that its
	// subscriber and the owners are gone (their connections close) and
	// forgets this node: the claimer unwatches the server as it stops, and
	// the Unsubscribe's answer, sent after it on the same stream, says that
	// the server has taken it in.
	defer func() {
		_ = sys.Root.StopFuture(c).Wait()
		_, _ = sys.Root.RequestFuture(srvPID, &messages.Unsubscribe{Subscriber: c}, 2*time.Second).Result()
	}()
	// The remoteClaimer subscribes when it starts; its first answer says whether
	// the server is there.
	select {
	case err := <-lost:
		if err != nil {
			return err
		}
	case <-time.After(server.DefaultTimeout):
		return fmt.Errorf("no answer from server %s within %v", *target, server.DefaultTimeout)
	}
	fmt.Fprintf(stdout, "remote on %s\n", sys.Address())
	select {
	case <-sigs:
		return nil
	case err := <-lost:
		return err
	}
}

// ownerKinds are the owner actors handle can run, by --handler name.
var ownerKinds = map[string]func() actor.Actor{
	"echo":    func() actor.Actor { return &remoteEchoOwner{} },
	"discard": func() actor.Actor { return &remoteDiscardOwner{} },
}

// remoteClaimer subscribes to the server, watches it, and claims connections for
// new owner actors: one per NewConnection, and, at the start, until the
// queue is empty (connections may have waited for a handler node).
type remoteClaimer struct {
	server   *actor.PID
	owner    func() actor.Actor
	lost     chan<- error // nil once subscribed, then an error when the server is lost
	draining bool
}

// claimResult carries a PendingConnection back with the owner it was for.
type claimResult struct {
	owner *actor.PID
	res   any
	err   error
}

func (c *remoteClaimer) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		ctx.Watch(c.server)
		f := ctx.RequestFuture(c.server, &messages.Subscribe{Subscriber: ctx.Self()}, server.DefaultTimeout)
		ctx.ReenterAfter(f, func(res any, err error) { c.subscribed(ctx, res, err) })
	case *messages.NewConnection:
		c.claim(ctx)
	case *actor.Stopping:
		// Else the server, which keeps its watchers, would tell this node
		// of its end long after the node is gone.
		ctx.Unwatch(c.server)
	case *actor.Terminated:
		switch {
		case !m.Who.Equal(c.server):
		case m.Why == actor.TerminatedReason_NotFound:
			c.report(fmt.Errorf("no server named %q at %s", c.server.Id, c.server.Address))
		default:
			c.report(fmt.Errorf("server %s is gone (%s)", c.server, m.Why))
		}
	}
}

func (c *remoteClaimer) subscribed(ctx actor.Context, res any, err error) {
	switch ack, _ := res.(*messages.Ack); {
	case errors.Is(err, actor.ErrDeadLetter):
		c.report(fmt.Errorf("no server named %q at %s", c.server.Id, c.server.Address))
	case err != nil:
		c.report(fmt.Errorf("subscribe to %s: %w", c.server, err))
	case ack == nil:
		c.report(fmt.Errorf("subscribe to %s: unexpected reply %T", c.server, res))
	case ack.Error.Failed():
		c.report(fmt.Errorf("subscribe to %s: %w", c.server, ack.Error.Err()))
	default:
		c.report(nil)
		c.draining = true
		c.claim(ctx)
	}
}

// claim asks for the next pending connection on behalf of a new owner; an
// empty answer stops the owner again.
func (c *remoteClaimer) claim(ctx actor.Context) {
	owner := ctx.Spawn(actor.PropsFromProducer(c.owner))
	f := ctx.RequestFuture(c.server, &messages.NextPendingConnection{Owner: owner}, server.DefaultTimeout)
	ctx.ReenterAfter(f, func(res any, err error) { c.claimed(ctx, &claimResult{owner: owner, res: res, err: err}) })
}

func (c *remoteClaimer) claimed(ctx actor.Context, m *claimResult) {
	p, _ := m.res.(*messages.PendingConnection)
	if m.err != nil || p == nil || p.Connection == nil {
		if p != nil && p.Error.Failed() {
			ctx.Logger().Warn("tcpactor handle: claim refused", "error", p.Error.Err())
		}
		ctx.Stop(m.owner) // claimed by another handler node, or nothing left
		c.draining = false
		return
	}
	if c.draining {
		c.claim(ctx)
	}
}

// report sends the first outcome (subscribed or not) and, later, the loss
// of the server to handle's main goroutine.
func (c *remoteClaimer) report(err error) {
	select {
	case c.lost <- err:
	default:
	}
}

// remoteEchoOwner owns one connection across nodes: it writes back what it
// receives and grants one more Received per acknowledged write, so at most
// the claim's initial credit of chunks is in flight.
type remoteEchoOwner struct{}

func (o *remoteEchoOwner) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.Received:
		ctx.Request(m.Connection, &messages.Write{Data: m.Data, AckId: 1})
	case *messages.WriteAck:
		ctx.Send(m.Connection, &messages.Demand{N: 1})
	case *messages.WriteFailed:
		ctx.Send(m.Connection, &messages.Abort{}) // never leave a gap in an echo
	case *messages.Disconnected:
		ctx.Stop(ctx.Self())
	}
}

// remoteDiscardOwner reads and drops.
type remoteDiscardOwner struct{}

func (o *remoteDiscardOwner) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.Received:
		ctx.Send(m.Connection, &messages.Demand{N: 1})
	case *messages.Disconnected:
		ctx.Stop(ctx.Self())
	}
}
