package main

// The server side of the bench: a hidden subcommand the bench runs as a child
// process, so that the memory it reads from /proc/PID/status is the server's
// own and not the load generator's.
//
//	tcpactor-bench server --kind raw|actor|owner|remote|remote-tls|remote-stream|remote-stream-tls|relay|relay-tls [--cpuprofile FILE]
//
// It listens on 127.0.0.1 (a port the kernel picks), prints "port N", then
// answers one-line commands on stdin until stdin closes:
//
//	stats  →  "stats ACCEPTED ACTIVE PENDING"
//	gc     →  "ok" after a garbage collection that returns freed memory
//	heap   →  "ok" once the heap profile is written to --heapprofile's file
//
// and exits when stdin closes (the parent exiting closes it too).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/internal/childproc"
	"github.com/tcpactor/tcpactor/internal/cliflag"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/protocols"
	"github.com/tcpactor/tcpactor/server"
)

// The kinds of server the bench compares.
const (
	kindRaw   = "raw"   // goroutine per connection on a net.Listener
	kindActor = "actor" // tcpactor with a local echo Handler (Ranch's model)
	kindOwner = "owner" // tcpactor with one owner actor per connection (Akka's model)
	kindLoop  = "loop"  // kind actor with the event-loop reader (actors.ReadLoop)
	kindGnet  = "gnet"  // gnet v2's echo server: the event-loop reference (gnet.go)
)

// benchServer is the child process of the bench.
func benchServer(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("tcpactor-bench "+childCommand, stderr)
	kind := fs.String("kind", kindRaw, "server: raw, gnet, actor, loop, owner, remote, remote-tls, remote-stream, remote-stream-tls, relay or relay-tls")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of this process to `FILE`")
	heapprofile := fs.String("heapprofile", "", "sample every allocation, and write the heap profile to `FILE` on the command heap")
	backlog := cliflag.Int(fs, "backlog", 0, 0, math.MaxInt32, "listen backlog (`N`) of the tcpactor servers; 0 = tcpactor's default (50)")
	ownerOf := fs.String("owner-of", "", "kind remote-owner: the server (`HOST:PORT/NAME`) to serve")
	serve := fs.String("serve", "echo", "what to serve: echo, or http (GET /hello; kinds raw and owner, see http.go)")
	tlsDir := fs.String("remote-tls-dir", "", "kinds remote-owner and relay-tls-echo: mutual TLS with the certificates in `DIR` (of kind remote-tls or relay-tls)")
	stream := fs.Bool("remote-stream", false, "kind remote-owner: remotenode.Stream on the node (of kind remote-stream)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := raiseFileLimit(); err != nil {
		return err
	}
	if *heapprofile != "" {
		// Every allocation, so that a profile of idle connections gives
		// exact bytes per connection for each allocation site (the default
		// samples one per 512 KiB). It slows allocation, not what is held.
		runtime.MemProfileRate = 1
	}
	var (
		s   statser
		err error
	)
	switch {
	case *serve == "http":
		s, err = startHTTPServer(*kind, *backlog)
	case *serve != "echo":
		return badUsage("--serve %q: want echo or http", *serve)
	case *kind == kindRaw:
		s, err = startRawEcho()
	case *kind == kindGnet:
		s, err = startGnetEcho()
	case *kind == kindActor, *kind == kindOwner, *kind == kindLoop:
		mode := actors.ReadGoroutine
		if *kind == kindLoop {
			mode = actors.ReadLoop
		}
		s, err = startActorEcho(*kind == kindOwner, mode, *backlog)
	case isRemoteKind(*kind): // see remote.go
		s, err = startRemoteEcho(*backlog, *cpuprofile, *kind == kindRemoteTLS || *kind == kindRemoteStreamTLS,
			*kind == kindRemoteStream || *kind == kindRemoteStreamTLS, stderr)
	case *kind == kindRemoteOwner:
		s, err = startOwnerNode(*ownerOf, *tlsDir, *stream)
	case *kind == kindRelay, *kind == kindRelayTLS: // see relay.go
		s, err = startRelay(*kind == kindRelayTLS, stderr)
	case *kind == kindRelayTLSEcho:
		s, err = startTLSEcho(*tlsDir)
	default:
		return fmt.Errorf("--kind %q: want raw, gnet, actor, loop, owner, remote, remote-tls, remote-stream, remote-stream-tls, relay or relay-tls", *kind)
	}
	if err != nil {
		return err
	}
	defer s.stop()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintf(stdout, "port %d\n", s.port())
	return childproc.Serve(stdin, stdout, childproc.Commands{
		"stats": func() (string, error) {
			a, l, p, err := s.stats()
			return fmt.Sprintf("stats %d %d %d", a, l, p), err
		},
		"heap": func() (string, error) {
			if err := writeHeapProfile(*heapprofile); err != nil {
				return fmt.Sprintf("error %v", err), nil
			}
			return "ok", nil
		},
	})
}

// writeHeapProfile writes the heap profile as of the last collection (the
// bench's gc command runs one just before).
func writeHeapProfile(path string) error {
	if path == "" {
		return errors.New("no --heapprofile")
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit: the idle
// test holds ten thousand connections.
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("setrlimit: %w", err)
		}
	}
	return nil
}

// fileLimit is the soft RLIMIT_NOFILE.
func fileLimit() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	return int(min(lim.Cur, 1<<20))
}

// statser is a running bench server.
type statser interface {
	port() int
	// stats: connections accepted so far, live now, and waiting for an owner.
	stats() (accepted, active, pending int64, err error)
	stop()
}

// ---------------------------------------------------------------------------
// raw: the plain goroutine-per-connection server everything is compared with

type rawEcho struct {
	ln               net.Listener
	accepted, active atomic.Int64
}

func startRawEcho() (*rawEcho, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &rawEcho{ln: ln}
	go acceptEach(ln, &r.accepted, &r.active, r.serve)
	return r, nil
}

// acceptEach accepts until ln is closed, counting each connection in
// accepted and active, and serves each in a goroutine of its own (which
// takes it off active when it ends): the reference servers' accept loop.
func acceptEach(ln net.Listener, accepted, active *atomic.Int64, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // EMFILE and friends
			continue
		}
		accepted.Add(1)
		active.Add(1)
		go serve(c)
	}
}

// serve is io.CopyBuffer without its splice fast path: read, write back.
func (r *rawEcho) serve(c net.Conn) {
	defer r.active.Add(-1)
	defer c.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (r *rawEcho) port() int { return r.ln.Addr().(*net.TCPAddr).Port }

func (r *rawEcho) stats() (int64, int64, int64, error) {
	return r.accepted.Load(), r.active.Load(), 0, nil
}

func (r *rawEcho) stop() { r.ln.Close() }

// ---------------------------------------------------------------------------
// actor and owner: tcpactor

type actorEcho struct {
	sys  *actor.ActorSystem
	srv  *server.Server
	bind int
}

func startActorEcho(owners bool, mode actors.ReadMode, backlog int) (*actorEcho, error) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	sys := actors.CompactRegistry(actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger })))
	var opts server.Options
	opts.Connection.ReadMode = mode
	if !owners {
		opts.Connection.Handler = protocols.Echo()
	}
	srv := server.Spawn(sys, opts)
	a := &actorEcho{sys: sys, srv: srv}
	if owners {
		claimer := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &claimer{server: srv.PID()} }))
		r, err := sys.Root.RequestFuture(srv.PID(), &messages.Subscribe{Subscriber: claimer, SubscriberStartId: actors.StartID(sys)}, server.DefaultTimeout).Result()
		if err != nil {
			a.stop()
			return nil, fmt.Errorf("subscribe: %w", err)
		}
		if ack, ok := r.(*messages.Ack); !ok || ack.Error.Failed() {
			a.stop()
			return nil, fmt.Errorf("subscribe: %v", r)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), server.DefaultTimeout)
	defer cancel()
	_, port, err := srv.Listen(ctx, "127.0.0.1", 0, &messages.ListenOptions{Backlog: int32(backlog)})
	if err != nil {
		a.stop()
		return nil, err
	}
	a.bind = int(port)
	return a, nil
}

func (a *actorEcho) port() int { return a.bind }

func (a *actorEcho) stats() (int64, int64, int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), server.DefaultTimeout)
	defer cancel()
	st, err := a.srv.Status(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	return int64(st.AcceptedTotal), int64(st.Active), int64(st.Pending), nil
}

// stop ends the server without waiting for connections: the process exits
// right after.
func (a *actorEcho) stop() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.srv.Stop()
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
}

// claimer claims every new connection for an owner actor of its own, as an
// Akka-style server does (one handler actor per connection).
type claimer struct {
	server *actor.PID
	owners *actor.Props
}

func (c *claimer) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.NewConnection:
		if c.owners == nil {
			// The dispatcher and mailbox tcpactor gives its own owners
			// (owner.New, server.Conn): the owner runs on the goroutine
			// that sends to it.
			c.owners = actor.PropsFromProducer(func() actor.Actor { return &echoOwner{} },
				actor.WithDispatcher(actors.OwnerDispatcher()), actor.WithMailbox(actors.OwnerMailbox()))
		}
		owner := ctx.Spawn(c.owners)
		// The start id: a stale report of this node's loss leaves the
		// connection open (ClaimOptions.owner_start_id).
		ctx.Request(c.server, &messages.NextPendingConnection{Owner: owner,
			Options: &messages.ClaimOptions{OwnerStartId: actors.StartID(ctx.ActorSystem())}})
	case *messages.PendingConnection:
		if m.Connection == nil { // claimed by someone else: not in this bench
			return
		}
	}
}

// echoOwner is the owner of one connection: it writes back what it receives,
// each write granting one more Received once it is on the wire
// (Write.demand), so at most the initial credit's worth of chunks is in
// flight.
type echoOwner struct{}

func (o *echoOwner) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.Received:
		// Donate: the connection reuses the buffer for its next read.
		ctx.Send(m.Connection, &messages.Write{Data: m.Data, Demand: 1, Donate: true})
	case *messages.WriteFailed:
		ctx.Send(m.Connection, &messages.Close{})
	case *messages.PeerClosed:
		ctx.Send(m.Connection, &messages.Close{}) // the echo is over: close after its writes
	case *messages.Disconnected:
		ctx.Stop(ctx.Self())
	}
}

// parseStats reads a "stats A L P" reply.
func parseStats(line string) (accepted, active, pending int64, err error) {
	var tag string
	if _, err = fmt.Sscan(line, &tag, &accepted, &active, &pending); err != nil || tag != "stats" {
		return 0, 0, 0, fmt.Errorf("bad stats reply %q", line)
	}
	return accepted, active, pending, nil
}
