// Threadedfortune is Qt's Threaded Fortune Server example on tcpactor. Qt's
// version overrides QTcpServer::incomingConnection() and serves each socket
// descriptor in a thread of its own; here the ServerActor's
// incomingConnection hook (server.Options.IncomingConnection) does the same:
// it runs in a goroutine of its own for each accepted connection, writes
// the fortune with a blocking write, closes the socket, and tells the server
// that nothing is left to queue.
//
//	go run ./examples/threadedfortune --listen 127.0.0.1:0
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/protocols"
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
		fmt.Fprintln(os.Stderr, "threadedfortune:", err)
		sys.Shutdown()
		os.Exit(1)
	}
}

// errServed tells the server that the hook served the connection itself:
// the server closes it (already closed) and queues nothing, as Qt's
// incomingConnection() override never calls addPendingConnection().
var errServed = errors.New("served by the incomingConnection hook")

// run serves fortunes on listen in sys until ctx ends. It prints
// "listening on HOST:PORT" once the server listens.
func run(ctx context.Context, sys *actor.ActorSystem, listen string, out io.Writer) error {
	l, err := messages.ParseListen(listen)
	if err != nil {
		return fmt.Errorf("--listen %w", err)
	}
	srv := server.Spawn(sys, server.Options{IncomingConnection: fortuneThread})
	defer srv.Stop()
	addr, bound, err := srv.Listen(ctx, l.Address, uint16(l.Port), nil)
	if err != nil {
		return fmt.Errorf("unable to start the server: %w", err)
	}
	fmt.Fprintf(out, "listening on %s\n", net.JoinHostPort(addr, strconv.Itoa(int(bound))))
	<-ctx.Done()
	return nil
}

// fortuneThread is FortuneThread::run(): blocking socket code, fine here
// because the hook has a goroutine of its own. ctx ends when the server
// stops (and the server closes conn then).
func fortuneThread(ctx context.Context, conn net.Conn) (net.Conn, error) {
	fortune := protocols.Fortunes[rand.IntN(len(protocols.Fortunes))]
	conn.SetWriteDeadline(time.Now().Add(30 * time.Second)) // waitForBytesWritten's time-out
	if _, err := conn.Write(protocols.QString(fortune)); err != nil {
		conn.Close()
		return nil, err
	}
	conn.Close() // disconnectFromHost(); waitForDisconnected()
	return nil, errServed
}

// warnings logs Proto.Actor's warnings and errors to stderr.
func warnings(*actor.ActorSystem) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
