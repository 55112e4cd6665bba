// Blockingserver is QTcpServer without an event loop, on tcpactor: the
// main goroutine calls WaitForNewConnection in a loop and, when one is
// pending, NextPendingConn, which claims it as a net.Conn; a goroutine per
// connection then serves it with plain blocking Read and Write (an echo
// server, one line at a time, "> " in front). No actor code and no callbacks
// here: the actors are behind server.Server and server.Conn.
//
//	go run ./examples/blockingserver --listen 127.0.0.1:0
package main

import (
	"bufio"
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
	"sync"
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
		fmt.Fprintln(os.Stderr, "blockingserver:", err)
		sys.Shutdown()
		os.Exit(1)
	}
}

// run listens on listen and serves until ctx ends. It prints
// "listening on HOST:PORT" once the server listens.
func run(ctx context.Context, sys *actor.ActorSystem, listen string, out io.Writer) error {
	l, err := messages.ParseListen(listen)
	if err != nil {
		return fmt.Errorf("--listen %w", err)
	}
	srv := server.Spawn(sys, server.Options{})
	defer srv.Stop()
	addr, bound, err := srv.Listen(ctx, l.Address, uint16(l.Port), nil)
	if err != nil {
		return fmt.Errorf("unable to start the server: %w", err)
	}
	fmt.Fprintf(out, "listening on %s\n", net.JoinHostPort(addr, strconv.Itoa(int(bound))))

	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	defer func() { // at the end, close what is still served
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	for ctx.Err() == nil {
		// waitForNewConnection(1000): the loop wakes each second to see
		// whether it should stop.
		ok, _, err := srv.WaitForNewConnection(ctx, 1000)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !ok {
			continue // timed out
		}
		conn, err := srv.NextPendingConn(ctx, server.ConnOptions{})
		if err != nil {
			return err
		}
		if conn == nil {
			continue // nothing after all
		}
		mu.Lock()
		conns[conn] = true
		mu.Unlock()
		wg.Go(func() {
			serve(conn)
			mu.Lock()
			delete(conns, conn)
			mu.Unlock()
		})
	}
	return nil
}

// serve is blocking socket code, as written for any net.Conn.
func serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		conn.SetReadDeadline(time.Now().Add(5 * time.Minute))
		line, err := r.ReadString('\n')
		if len(line) > 0 {
			if _, werr := io.WriteString(conn, "> "+line); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				slog.Debug("blockingserver: read", "error", err)
			}
			return
		}
	}
}

// warnings logs Proto.Actor's warnings and errors to stderr.
func warnings(*actor.ActorSystem) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
