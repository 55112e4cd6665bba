// Remotehandler serves connections on one node that were accepted on
// another. Node A runs the ServerActor (no local handler: connections wait
// in its pending queue); node B runs a dispatcher actor that subscribes to
// the server across the network, claims each new connection for an owner
// actor of its own, and that owner answers every chunk in upper case. The
// bytes cross the nodes as Received and Write messages, paced by Demand.
//
// Both nodes run in this one process by default, each an actor system with
// Proto.Actor remote on its own port; --role server and --role handler run
// them as two processes:
//
//	go run ./examples/remotehandler --role server --listen 127.0.0.1:7000 --remote 127.0.0.1:8090
//	go run ./examples/remotehandler --role handler --server 127.0.0.1:8090/tcpserver
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/owner"
	"github.com/tcpactor/tcpactor/remotenode"
	"github.com/tcpactor/tcpactor/server"
)

func main() {
	role := flag.String("role", "both", "both (two nodes in this process), server or handler")
	listen := flag.String("listen", "127.0.0.1:0", "server: the TCP `HOST:PORT` to listen on")
	remoteAddr := flag.String("remote", "127.0.0.1:0", "this node's remote `HOST:PORT`")
	target := flag.String("server", "", "handler: the server as `HOST:PORT/NAME`")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *role, *listen, *remoteAddr, *target, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "remotehandler:", err)
		os.Exit(1)
	}
}

// serverName is the ServerActor's name: node B reaches it as ADDRESS/NAME.
const serverName = "tcpserver"

// run starts the role's nodes, prints what it started, and runs until ctx
// ends.
func run(ctx context.Context, role, listen, remoteAddr, target string, out io.Writer) error {
	switch role {
	case "both", "server", "handler":
	default:
		return fmt.Errorf("--role %q: want both, server or handler", role)
	}
	var serverPID *actor.PID
	if role != "handler" {
		a, stopA, err := startNode(remoteAddr)
		if err != nil {
			return err
		}
		defer stopA()
		srv, addr, err := startServer(ctx, a, serverName, listen)
		if err != nil {
			return err
		}
		defer srv.Stop()
		serverPID = actor.NewPID(a.Address(), serverName)
		fmt.Fprintf(out, "listening on %s\n", addr)
		fmt.Fprintf(out, "server node %s/%s\n", a.Address(), serverName)
	}
	if role != "server" {
		if role == "handler" {
			addr, name, ok := strings.Cut(target, "/")
			if !ok || addr == "" || name == "" {
				return fmt.Errorf("--server %q: want HOST:PORT/NAME", target)
			}
			serverPID = actor.NewPID(addr, name)
			remoteAddr = "127.0.0.1:0"
		} else {
			remoteAddr = "127.0.0.1:0" // node B: a port of its own
		}
		b, stopB, err := startNode(remoteAddr)
		if err != nil {
			return err
		}
		defer stopB()
		d, err := startHandler(ctx, b, serverPID)
		if err != nil {
			return err
		}
		// Unsubscribed while both nodes are up: the server unwatches the
		// dispatcher now, instead of calling on a node that has gone (which
		// the pinned remote retries for ten seconds at shutdown).
		defer func() { _ = owner.Stop(b.Root, d, serverPID, 2*time.Second) }()
		fmt.Fprintf(out, "handler node %s\n", b.Address())
	}
	<-ctx.Done()
	return nil
}

// startNode starts an actor system with remote on addr.
func startNode(addr string) (*actor.ActorSystem, func(), error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("%q: want HOST:PORT", addr)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return nil, nil, fmt.Errorf("%q: bad port", addr)
	}
	// remote.Start panics when it cannot listen: find out first.
	probe, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	probe.Close()
	sys := actors.CompactRegistry(actor.NewActorSystem(actor.WithLoggerFactory(warnings)))
	r := remote.NewRemote(sys, remote.Configure(host, port))
	r.Start()
	return sys, func() { remotenode.Shutdown(r, true); sys.Shutdown() }, nil
}

// startServer is node A: a ServerActor under name, listening on listen, with
// no local handler, so every connection waits for an owner.
func startServer(ctx context.Context, sys *actor.ActorSystem, name, listen string) (*server.Server, string, error) {
	l, err := messages.ParseListen(listen)
	if err != nil {
		return nil, "", fmt.Errorf("--listen %w", err)
	}
	srv, err := server.SpawnNamed(sys, name, server.Options{})
	if err != nil {
		return nil, "", err
	}
	addr, bound, err := srv.Listen(ctx, l.Address, uint16(l.Port), nil)
	if err != nil {
		srv.Stop()
		return nil, "", err
	}
	return srv, net.JoinHostPort(addr, strconv.Itoa(int(bound))), nil
}

// startHandler is node B: a dispatcher that serves the connections of the
// server at serverPID. It returns once the dispatcher is subscribed.
func startHandler(ctx context.Context, sys *actor.ActorSystem, serverPID *actor.PID) (*actor.PID, error) {
	ready := make(chan error, 1)
	d := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &dispatcher{server: serverPID, ready: ready}
	}))
	select {
	case err := <-ready:
		if err != nil {
			sys.Root.Stop(d)
			return nil, err
		}
		return d, nil
	case <-ctx.Done():
		sys.Root.Stop(d)
		return nil, ctx.Err()
	}
}

// dispatcher subscribes to the server and claims connections, each for a
// new upperOwner: one per NewConnection, and at the start as many as wait.
type dispatcher struct {
	server   *actor.PID
	ready    chan<- error
	draining bool
}

func (d *dispatcher) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		f := ctx.RequestFuture(d.server, &messages.Subscribe{Subscriber: ctx.Self(), SubscriberStartId: actors.StartID(ctx.ActorSystem())}, 10*time.Second)
		ctx.ReenterAfter(f, func(res any, err error) {
			if ack, ok := res.(*messages.Ack); err == nil && (!ok || ack.Error.Failed()) {
				err = errors.New("subscribe refused")
			}
			d.ready <- err
			if err == nil {
				d.draining = true
				d.claim(ctx)
			}
		})
	case *messages.NewConnection:
		d.claim(ctx)
	}
}

// claim asks for the oldest pending connection on behalf of a new owner.
// Another node may have claimed it first: then the owner stops again.
func (d *dispatcher) claim(ctx actor.Context) {
	owner := ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return &upperOwner{} }))
	f := ctx.RequestFuture(d.server, &messages.NextPendingConnection{Owner: owner,
		Options: &messages.ClaimOptions{OwnerStartId: actors.StartID(ctx.ActorSystem())}}, 10*time.Second)
	ctx.ReenterAfter(f, func(res any, err error) {
		if p, ok := res.(*messages.PendingConnection); err != nil || !ok || p.Connection == nil {
			ctx.Stop(owner)
			d.draining = false
			return
		}
		if d.draining {
			d.claim(ctx)
		}
	})
}

// upperOwner owns one connection of node A from node B: every chunk goes
// back in upper case. One more chunk is granted per acknowledged write, so
// at most the claim's initial credit of chunks is in flight.
type upperOwner struct{}

func (upperOwner) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.Received:
		ctx.Request(m.Connection, &messages.Write{Data: bytes.ToUpper(m.Data), AckId: 1})
	case *messages.WriteAck:
		ctx.Send(m.Connection, &messages.Demand{N: 1})
	case *messages.WriteFailed:
		ctx.Send(m.Connection, &messages.Abort{})
	case *messages.PeerClosed:
		// The client is done: close after the answers already sent (the
		// connection would wait for this Close, to let them out).
		ctx.Send(m.Connection, &messages.Close{})
	case *messages.Disconnected:
		ctx.Stop(ctx.Self())
	}
}

// warnings logs Proto.Actor's warnings and errors to stderr. The pinned
// Proto.Actor remote logs a peer's stream ending at ERROR, its own orderly
// close at shutdown included; remotenode.QuietPeerLoss logs those at INFO, so
// that a normal exit is quiet.
func warnings(*actor.ActorSystem) *slog.Logger {
	return slog.New(remotenode.QuietPeerLoss(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}
