// Httpoveractors runs Go's own HTTP server on connections accepted by a
// tcpactor ServerActor: server.NewListener makes a net.Listener of the
// server, and http.Server.Serve takes it like any other. Here, on the
// connection's node, each Conn reads and writes the socket its connection
// lends it (direct I/O); the listener works the same when the ServerActor
// runs on another node, where requests come and go through the connection's
// actor (Received, Write).
//
//	go run ./examples/httpoveractors --listen 127.0.0.1:8080
//	curl http://127.0.0.1:8080/hello
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "`HOST:PORT` to listen on (port 0 picks one)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sys := actors.CompactRegistry(actor.NewActorSystem(actor.WithLoggerFactory(warnings)))
	defer sys.Shutdown()
	if err := run(ctx, sys, *listen, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "httpoveractors:", err)
		sys.Shutdown()
		os.Exit(1)
	}
}

// run serves HTTP on listen until ctx ends, then shuts the HTTP server down
// gracefully. It prints "listening on HOST:PORT" once the server listens.
func run(ctx context.Context, sys *actor.ActorSystem, listen string, out io.Writer) error {
	l, err := messages.ParseListen(listen)
	if err != nil {
		return fmt.Errorf("--listen %w", err)
	}
	srv := server.Spawn(sys, server.Options{})
	defer srv.Stop()
	if _, _, err := srv.Listen(ctx, l.Address, uint16(l.Port), nil); err != nil {
		return fmt.Errorf("unable to start the server: %w", err)
	}
	ln, err := server.NewListener(ctx, srv, server.ListenerOptions{})
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: routes(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "listening on %s\n", ln.Addr())

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = hs.Shutdown(sctx) // closes the listener (and the ServerActor's socket), then idle connections
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

func routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from an actor-owned connection, %s\n", r.RemoteAddr)
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, r.Body)
	})
	return mux
}

// warnings logs Proto.Actor's warnings and errors to stderr.
func warnings(*actor.ActorSystem) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
