package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/protocols"
	"github.com/tcpactor/tcpactor/remotenode"
	"github.com/tcpactor/tcpactor/server"
)

// closeGrace is how long connections still open when the drain time is up
// get to flush their queued writes after being told to close.
const closeGrace = time.Second

// serveConfig is the parsed command line of serve.
type serveConfig struct {
	host       string
	port       int
	opts       server.Options
	remoteHost string
	remotePort int
	remoteOn   bool
	remoteSec  remoteFlags
	name       string
	metrics    string
	drain      time.Duration
	logLevel   string
	listenFlag string
	restart    *restartFlags
	socks      *messages.NetworkProxy // --proxy
}

// serve is the main job: one actor system, one ServerActor listening, a
// handler for its connections; optionally reachable over remote and
// exporting Prometheus metrics. It runs until SIGINT or SIGTERM, then drains.
func serve(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, stdout)
	if err != nil {
		return err
	}
	level, err := logLevel(cfg.logLevel)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	rs, err := startRestarter(cfg)
	if err != nil {
		return err
	}
	defer rs.stop()

	sys := newSystem(stderr, level)
	defer sys.Shutdown()
	var rem *remote.Remote
	if cfg.remoteOn {
		if rem, err = startRemote(sys, cfg.remoteHost, cfg.remotePort, &cfg.remoteSec); err != nil {
			return err
		}
		defer shutdownRemote(sys, rem)
	}
	stats := &actors.ConnectionStats{}
	cfg.opts.Connection.Stats = stats
	injectFaults(&cfg.opts)
	srv, err := server.SpawnNamed(sys, cfg.name, cfg.opts)
	if err != nil {
		return err
	}
	defer srv.Stop()
	lost := make(chan struct{})
	conns := startTracker(sys, srv.PID(), lost)
	defer sys.Root.Stop(conns)
	ctx, cancel := context.WithTimeout(context.Background(), server.DefaultTimeout)
	defer cancel()
	if _, err := sys.Root.RequestFuture(srv.PID(), &messages.Subscribe{Subscriber: conns, SubscriberStartId: actors.StartID(sys)}, server.DefaultTimeout).Result(); err != nil {
		return fmt.Errorf("subscribe the connection tracker: %w", err)
	}
	var met *metricsServer
	if cfg.metrics != "" {
		if met, err = startMetrics(cfg.metrics, srv, stats, sys.Logger()); err != nil {
			return err
		}
		defer met.stop()
	}
	addr, port, err := listenAs(ctx, srv, cfg, rs)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listening on %s\n", net.JoinHostPort(addr, strconv.Itoa(int(port))))
	if rem != nil {
		fmt.Fprintf(stdout, "remote on %s\n", sys.Address())
	}
	if met != nil {
		fmt.Fprintf(stdout, "metrics on %s\n", met.addr)
	}

	if err := rs.ready(); err != nil {
		return err
	}
	if rs.waitForEnd(sigs, lost, stderr) {
		// The server actor stopped under us (it logged why): nothing
		// accepts any more, so serving is over. Connections still open are
		// closed, their writes flushed, as at the end of a drain.
		closeLeft(sys, conns, sigs)
		return fmt.Errorf("the server %s stopped unexpectedly; exiting", srv.PID().Id)
	}
	rs.release()
	return drain(sys, srv, conns, cfg.drain, sigs)
}

func parseServe(args []string, stdout io.Writer) (*serveConfig, error) {
	fs := newFlags("serve", stdout)
	listen := fs.String("listen", "127.0.0.1:7070", "`HOST:PORT` to listen on; HOST is an IP or Any, AnyIPv4, AnyIPv6, LocalHost, LocalHostIPv6; port 0 picks one; \"systemd\" adopts the socket of systemd socket activation (LISTEN_FDS)")
	handler := fs.String("handler", "echo", "connection `HANDLER`: "+protocols.HandlerNames+" (none leaves connections pending for owner actors, e.g. of 'tcpactor handle' on another node)")
	maxPending := intFlagOf(fs, "max-pending", actors.DefaultMaxPendingConnections, 1, math.MaxInt32, "most connections waiting to be claimed (setMaxPendingConnections), `N` from 1")
	maxConns := intFlagOf(fs, "max-connections", 0, 0, math.MaxInt32, "most live connections (`N`), at which accepting pauses; 0 = no cap")
	idle := fs.Duration("idle-timeout", 0, "close connections idle this long; 0 = never")
	ioMode := fs.String("io", "default", "how connections are read: `MODE` loop (shared epoll loops, Linux, plain TCP), goroutine (one per connection) or default (here "+actors.DefaultReadMode().String()+": TCPACTOR_IO, else the built-in default)")
	remoteAddr := fs.String("remote", "", "also serve Proto.Actor remote on `HOST:PORT` (port 0 picks one), so other nodes reach the server as HOST:PORT/NAME")
	name := fs.String("name", "tcpserver", "the server actor's name, its address on remote")
	metrics := fs.String("metrics", "", "serve Prometheus metrics at http://`HOST:PORT`/metrics (port 0 picks one)")
	level := fs.String("log-level", "warn", "log level of stderr: debug, info, warn, error")
	remoteAdmin := fs.Bool("remote-admin", false, "let remote nodes send administrative requests (Listen, Close, SetProxy, pause/resume, ...); off, they are refused")
	tlsF := addTLSFlags(fs)
	restartF := addRestartFlags(fs)
	socksF := addSocksFlag(fs)
	proxyF := addProxyFlags(fs)
	drain := fs.Duration("drain-timeout", 5*time.Second, "on SIGINT/SIGTERM: close the listener (new clients are refused), let connections end on their own for this long, then close the rest (flushing their writes)")
	cfg := &serveConfig{restart: restartF}
	cfg.remoteSec.add(fs)
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	cfg.name, cfg.metrics, cfg.drain, cfg.logLevel, cfg.listenFlag = *name, *metrics, *drain, *level, *listen
	var err error
	if *listen != listenSystemd {
		if cfg.host, cfg.port, err = hostPort("listen", *listen); err != nil {
			return nil, err
		}
	}
	if *remoteAddr != "" {
		cfg.remoteOn = true
		if cfg.remoteHost, cfg.remotePort, err = hostPort("remote", *remoteAddr); err != nil {
			return nil, err
		}
		if err = cfg.remoteSec.check("remote", cfg.remoteHost, cfg.remotePort); err != nil {
			return nil, err
		}
	} else if cfg.remoteSec.tlsOn() || cfg.remoteSec.advertise != "" {
		return nil, badUsage("--remote-cert, --remote-key, --remote-ca and --advertise need --remote")
	}
	if *metrics != "" {
		if _, _, err = hostPort("metrics", *metrics); err != nil {
			return nil, err
		}
	}
	switch {
	case *idle < 0:
		return nil, badUsage("--idle-timeout %v: want 0 (never) or more", *idle)
	case *drain < 0:
		return nil, badUsage("--drain-timeout %v: want 0 or more", *drain)
	case *name == "":
		return nil, badUsage("--name: want a name")
	}
	if _, err := logLevel(*level); err != nil {
		return nil, err
	}
	cfg.opts = server.Options{MaxPendingConnections: *maxPending, MaxConnections: *maxConns, AllowRemoteAdmin: *remoteAdmin}
	cfg.opts.Connection.IdleTimeout = *idle
	if cfg.opts.Connection.ReadMode, err = actors.ParseReadMode(*ioMode); err != nil {
		return nil, badUsage("--io: %v", err)
	}
	if cfg.opts.Connection.Handler, err = protocols.HandlerByName(*handler); err != nil {
		return nil, badUsage("--handler: %v", err)
	}
	if err := tlsF.apply(&cfg.opts); err != nil {
		return nil, err
	}
	if err := proxyF.apply(&cfg.opts); err != nil {
		return nil, err
	}
	if cfg.socks, err = parseSocks(*socksF); err != nil {
		return nil, err
	}
	return cfg, nil
}

// drain closes the listener (QTcpServer::close(): new clients are refused,
// and connections still waiting to be claimed are closed), waits up to d for
// the live connections to end on their own, then closes the rest (each
// flushes its queued writes, then FIN, then lingers until its peer closes)
// and gives them closeGrace plus the linger time-out to do so. A second
// signal cuts it short. Pausing instead would leave the listener open: the
// kernel would complete the handshake of every new client, which would then
// wait unserved until the exit reset it.
func drain(sys *actor.ActorSystem, srv *server.Server, conns *actor.PID, d time.Duration, sigs <-chan os.Signal) error {
	ctx, cancel := context.WithTimeout(context.Background(), server.DefaultTimeout)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		return err
	}
	if waitIdle(sys, conns, d, sigs) {
		closeLeft(sys, conns, sigs)
	}
	return nil
}

// closeLeft closes the connections still open and waits for them: each
// flushes its queued writes, sends FIN, then lingers until its peer closes
// (at most the linger time-out). Leaving earlier would reset the peers that
// still send and lose what they were sent.
func closeLeft(sys *actor.ActorSystem, conns *actor.PID, sigs <-chan os.Signal) {
	res, err := sys.Root.RequestFuture(conns, &closeConns{}, server.DefaultTimeout).Result()
	if err == nil && res.(int) > 0 {
		waitIdle(sys, conns, closeGrace+actors.DefaultLingerTimeout, sigs)
	}
}

// waitIdle polls the connection tracker until no connection is left, d
// passes or a signal comes. It reports whether connections are left.
func waitIdle(sys *actor.ActorSystem, conns *actor.PID, d time.Duration, sigs <-chan os.Signal) bool {
	deadline := time.Now().Add(d)
	for {
		n, err := sys.Root.RequestFuture(conns, &countConns{}, server.DefaultTimeout).Result()
		if err != nil || n.(int) == 0 {
			return false
		}
		if !time.Now().Before(deadline) {
			return true
		}
		select {
		case <-sigs:
			return true
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// shutdownRemote stops the stream transport of sys, if any, then remote
// gracefully, but not for longer than a few
// seconds (the pinned remote retries lost peers for ~10 s). The pinned
// remote's graceful stop can also panic ("send on closed channel") when a
// peer's stream closes at the same moment; the process is exiting anyway,
// so that panic is recovered rather than crashing the exit.
func shutdownRemote(sys *actor.ActorSystem, r *remote.Remote) {
	stopStream(sys)
	done := make(chan struct{})
	go func() {
		defer close(done)
		remotenode.Shutdown(r, true)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
}

// ---------------------------------------------------------------------------
// the connection tracker: knows the live connections, to close them at the
// end, and watches the server, to notice that it stopped

// closeConns asks the tracker to Close every live connection; it answers with
// how many it told.
type closeConns struct{}

// countConns asks the tracker how many connections are live.
type countConns struct{}

type tracker struct {
	server *actor.PID
	lost   chan<- struct{} // closed when the server stops
	conns  map[string]*actor.PID
}

func startTracker(sys *actor.ActorSystem, server *actor.PID, lost chan<- struct{}) *actor.PID {
	return sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &tracker{server: server, lost: lost, conns: map[string]*actor.PID{}}
	}))
}

func (t *tracker) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		ctx.Watch(t.server)
	case *messages.NewConnection:
		t.conns[m.Connection.String()] = m.Connection
		ctx.Watch(m.Connection)
	case *actor.Terminated:
		if m.Who.Equal(t.server) {
			if t.lost != nil {
				close(t.lost)
				t.lost = nil
			}
			return
		}
		delete(t.conns, m.Who.String())
	case *closeConns:
		for _, c := range t.conns {
			ctx.Send(c, &messages.Close{})
		}
		ctx.Respond(len(t.conns))
	case *countConns:
		ctx.Respond(len(t.conns))
	}
}
