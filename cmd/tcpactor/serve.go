package main

import (
	"context"
	"fmt"
	"io"
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
		if rem, err = startRemote(sys, cfg.remoteHost, cfg.remotePort); err != nil {
			return err
		}
		defer shutdownRemote(rem)
	}
	stats := &actors.ConnectionStats{}
	cfg.opts.Connection.Stats = stats
	srv, err := server.SpawnNamed(sys, cfg.name, cfg.opts)
	if err != nil {
		return err
	}
	defer srv.Stop()
	conns := startTracker(sys)
	defer sys.Root.Stop(conns)
	ctx, cancel := context.WithTimeout(context.Background(), server.DefaultTimeout)
	defer cancel()
	if _, err := sys.Root.RequestFuture(srv.PID(), &messages.Subscribe{Subscriber: conns}, server.DefaultTimeout).Result(); err != nil {
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
	rs.waitForEnd(sigs, stderr)
	return drain(sys, srv, conns, cfg.drain, sigs)
}

func parseServe(args []string, stdout io.Writer) (*serveConfig, error) {
	fs := newFlags("serve", stdout)
	listen := fs.String("listen", "127.0.0.1:7070", "`HOST:PORT` to listen on; HOST is an IP or Any, AnyIPv4, AnyIPv6, LocalHost, LocalHostIPv6; port 0 picks one; \"systemd\" adopts the socket of systemd socket activation (LISTEN_FDS)")
	handler := fs.String("handler", "echo", "connection handler: "+server.HandlerNames+" (leave connections pending for owner actors, e.g. `tcpactor handle` on another node)")
	maxPending := fs.Int("max-pending", actors.DefaultMaxPendingConnections, "most connections waiting to be claimed (setMaxPendingConnections)")
	maxConns := fs.Int("max-connections", 0, "most live connections, at which accepting pauses; 0 = no cap")
	idle := fs.Duration("idle-timeout", 0, "close connections idle this long; 0 = never")
	remoteAddr := fs.String("remote", "", "also serve Proto.Actor remote on `HOST:PORT` (port 0 picks one), so other nodes reach the server as HOST:PORT/NAME")
	name := fs.String("name", "tcpserver", "the server actor's name, its address on remote")
	metrics := fs.String("metrics", "", "serve Prometheus metrics at http://`HOST:PORT`/metrics (port 0 picks one)")
	level := fs.String("log-level", "warn", "log level of stderr: debug, info, warn, error")
	tlsF := addTLSFlags(fs)
	restartF := addRestartFlags(fs)
	socksF := addSocksFlag(fs)
	proxyF := addProxyFlags(fs)
	drain := fs.Duration("drain-timeout", 5*time.Second, "on SIGINT/SIGTERM: stop accepting, let connections end on their own for this long, then close the rest (flushing their writes)")
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	cfg := &serveConfig{name: *name, metrics: *metrics, drain: *drain, logLevel: *level, listenFlag: *listen, restart: restartF}
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
	}
	if *metrics != "" {
		if _, _, err = hostPort("metrics", *metrics); err != nil {
			return nil, err
		}
	}
	switch {
	case *maxPending < 1:
		return nil, badUsage("--max-pending %d: want at least 1", *maxPending)
	case *maxConns < 0:
		return nil, badUsage("--max-connections %d: want 0 (no cap) or more", *maxConns)
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
	cfg.opts = server.Options{MaxPendingConnections: *maxPending, MaxConnections: *maxConns}
	cfg.opts.Connection.IdleTimeout = *idle
	if cfg.opts.Connection.Handler, err = server.HandlerByName(*handler); err != nil {
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

// drain stops accepting, waits up to d for the live connections to end on
// their own, then closes the rest (each flushes its queued writes, then
// FIN) and gives them closeGrace to do so. A second signal cuts it short.
func drain(sys *actor.ActorSystem, srv *server.Server, conns *actor.PID, d time.Duration, sigs <-chan os.Signal) error {
	ctx, cancel := context.WithTimeout(context.Background(), server.DefaultTimeout)
	defer cancel()
	if err := srv.PauseAccepting(ctx); err != nil {
		return err
	}
	if waitIdle(ctx, srv, d, sigs) {
		res, err := sys.Root.RequestFuture(conns, &closeConns{}, server.DefaultTimeout).Result()
		if err == nil && res.(int) > 0 {
			waitIdle(ctx, srv, closeGrace, sigs)
		}
	}
	return srv.Close(ctx)
}

// waitIdle polls the server until it has no live connection, d passes or a
// signal comes. It reports whether connections are left.
func waitIdle(ctx context.Context, srv *server.Server, d time.Duration, sigs <-chan os.Signal) bool {
	deadline := time.Now().Add(d)
	for {
		st, err := srv.Status(ctx)
		if err != nil || st.Active == 0 {
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

// shutdownRemote stops remote gracefully, but not for longer than a few
// seconds (the pinned remote retries lost peers for ~10 s). The pinned
// remote's graceful stop can also panic ("send on closed channel") when a
// peer's stream closes at the same moment; the process is exiting anyway,
// so that panic is recovered rather than crashing the exit.
func shutdownRemote(r *remote.Remote) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }()
		r.Shutdown(true)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
}

// ---------------------------------------------------------------------------
// the connection tracker: knows the live connections, to close them at the end

// closeConns asks the tracker to Close every live connection; it answers with
// how many it told.
type closeConns struct{}

type tracker struct {
	conns map[string]*actor.PID
}

func startTracker(sys *actor.ActorSystem) *actor.PID {
	return sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &tracker{conns: map[string]*actor.PID{}}
	}))
}

func (t *tracker) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.NewConnection:
		t.conns[m.Connection.String()] = m.Connection
		ctx.Watch(m.Connection)
	case *actor.Terminated:
		delete(t.conns, m.Who.String())
	case *closeConns:
		for _, c := range t.conns {
			ctx.Send(c, &messages.Close{})
		}
		ctx.Respond(len(t.conns))
	}
}
