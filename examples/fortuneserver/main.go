// Fortuneserver is Qt's Fortune Server example on tcpactor: each client
// that connects gets one random fortune, written exactly as Qt's
// `QDataStream << QString` writes it (a quint32 byte length, then UTF-16
// big-endian), and the server disconnects. Qt's Fortune Client reads it.
//
//	go run ./examples/fortuneserver --listen 127.0.0.1:0
//	go run ./examples/fortuneserver --tls-cert server.pem --tls-key server.key   # Qt's QSslServer
package main

import (
	"context"
	"crypto/tls"
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

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/protocols"
	"github.com/tcpactor/tcpactor/server"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "`HOST:PORT` to listen on (port 0 picks one)")
	certFile := flag.String("tls-cert", "", "serve over TLS (QSslServer) with the certificate in PEM `FILE`")
	keyFile := flag.String("tls-key", "", "the private key of --tls-cert, PEM `FILE`")
	flag.Parse()
	var tlsCfg *tls.Config
	if *certFile != "" || *keyFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fortuneserver: --tls-cert/--tls-key:", err)
			os.Exit(2)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sys := actors.CompactRegistry(actor.NewActorSystem(actor.WithLoggerFactory(warnings)))
	defer sys.Shutdown()
	if err := run(ctx, sys, *listen, tlsCfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fortuneserver:", err)
		sys.Shutdown()
		os.Exit(1)
	}
}

// run serves fortunes on listen in sys until ctx ends, over TLS when
// tlsCfg is not nil. It prints "listening on HOST:PORT" once the server
// listens.
func run(ctx context.Context, sys *actor.ActorSystem, listen string, tlsCfg *tls.Config, out io.Writer) error {
	l, err := messages.ParseListen(listen)
	if err != nil {
		return fmt.Errorf("--listen %w", err)
	}

	// Qt's FortuneServer::sendFortune, as a tcpactor Handler: it runs
	// inside each connection's actor.
	// With TLS the server is QSslServer: each client shakes hands (off the
	// accept path, under the 5 s handshake time-out) before the handler
	// sees it, and the handler's bytes are encrypted.
	opts := server.Options{TLS: tlsCfg}
	opts.Connection.Handler = func() actors.Handler { return &fortuneHandler{} }
	srv := server.Spawn(sys, opts)
	defer srv.Stop()

	addr, bound, err := srv.Listen(ctx, l.Address, uint16(l.Port), nil)
	if err != nil {
		return fmt.Errorf("unable to start the server: %w", err)
	}
	fmt.Fprintf(out, "listening on %s\n", net.JoinHostPort(addr, strconv.Itoa(int(bound))))
	<-ctx.Done()
	return nil
}

// fortuneHandler serves one client: write a fortune, then disconnectFromHost
// (the queued bytes are flushed before the FIN).
type fortuneHandler struct{ actors.BaseHandler }

func (fortuneHandler) Connected(s *actors.Socket) {
	fortune := protocols.Fortunes[rand.IntN(len(protocols.Fortunes))]
	s.Write(protocols.QString(fortune), 0) // QDataStream out; out << fortune
	s.Close()                              // clientConnection->disconnectFromHost()
}

// warnings logs Proto.Actor's warnings and errors to stderr.
func warnings(*actor.ActorSystem) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
