package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/server"
)

// serve is the main job: one actor system, one ServerActor, a handler.
func serve(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	listen := fs.String("listen", "127.0.0.1:7070", "`HOST:PORT` to listen on (HOST may be Any, LocalHost, ...; port 0 picks one)")
	handler := fs.String("handler", "echo", "connection handler: echo, discard, or none (leave connections pending for other actors)")
	maxPending := fs.Int("max-pending", 30, "most connections waiting to be claimed")
	maxConns := fs.Int("max-connections", 0, "most live connections; 0 = no cap")
	idle := fs.Duration("idle-timeout", 0, "close connections idle this long; 0 = never")
	drain := fs.Duration("drain-timeout", 5*time.Second, "on SIGINT/SIGTERM, how long to let connections finish")
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	if err := parse(fs, args); err != nil {
		return err
	}
	host, portStr, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("--listen %q: want HOST:PORT", *listen)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return fmt.Errorf("--listen %q: port must be 0-65535", *listen)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	opts := server.Options{MaxPendingConnections: *maxPending, MaxConnections: *maxConns}
	opts.Connection.IdleTimeout = *idle
	if opts.Connection.Handler, err = server.HandlerByName(*handler); err != nil {
		return fmt.Errorf("--handler: %w", err)
	}

	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	defer sys.Shutdown()
	srv := server.Spawn(sys, opts)
	defer srv.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), server.DefaultTimeout)
	addr, bound, err := srv.Listen(ctx, host, uint16(port), nil)
	cancel()
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	fmt.Fprintf(stdout, "listening on %s\n", net.JoinHostPort(addr, strconv.Itoa(int(bound))))

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	<-sigs
	return drainAndStop(srv, *drain)
}

// drainAndStop stops accepting, then waits up to d for live connections to
// end before the server closes.
func drainAndStop(srv *server.Server, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d+server.DefaultTimeout)
	defer cancel()
	if err := srv.PauseAccepting(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		st, err := srv.Status(ctx)
		if err != nil {
			return err
		}
		if st.Active == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return srv.Close(ctx)
}
