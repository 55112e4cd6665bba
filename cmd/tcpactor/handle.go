package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/owner"
	"github.com/tcpactor/tcpactor/server"
)

// handle is a handler node: it serves the connections of a server that runs
// on another node (started with `tcpactor serve --handler none --remote ...`).
// Its owner actor (owner.New) subscribes to the server's
// newConnection() signal, claims each new connection, and the connections
// queued before it started, with NextPendingConnection{owner}, and speaks
// Received / Write / Demand with them across the nodes. Several handler
// nodes may serve one server: each connection goes to whichever claims it
// first.
//
// It checks first that the server's node answers, exits with an error when
// the server is missing or lost, and on exit unsubscribes (owner.Stop)
// so that the server does not try to reach a dead node.
func handle(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("handle", stdout)
	target := fs.String("server", "", "the server to serve, as `HOST:PORT/NAME` (its remote address and name)")
	handler := fs.String("handler", "echo", "what the owner actors do: echo or discard")
	remoteAddr := fs.String("remote", "127.0.0.1:0", "this node's remote `HOST:PORT` (port 0 picks one); the server's node must reach it")
	level := fs.String("log-level", "warn", "log level of stderr: debug, info, warn, error")
	var rf remoteFlags
	rf.add(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	h, err := owner.HandlerByName(*handler)
	if err != nil {
		return badUsage("--handler: %v", err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	srvPID, sys, stop, err := startPeer(*target, *remoteAddr, &rf, *level, stderr)
	if err != nil {
		return err
	}
	defer stop()

	// news carries the owner's standing with the server: nil once
	// subscribed, then an error when the server is lost. Its few reports
	// fit in the buffer; the owner never blocks on it.
	news := make(chan error, 4)
	ownerPID := sys.Root.Spawn(owner.New(owner.Config{
		Server:  srvPID,
		Handler: h,
		OnServer: func(_ *actor.PID, err error) {
			select {
			case news <- err:
			default:
			}
		},
		Notify: func(line string) { sys.Logger().Info("tcpactor handle: " + line) },
	}))
	subscribed := false
	// Before the remote shuts down, so that the server hears that the owner
	// is gone (its connections close) and forgets this node. A lost server
	// is not asked: the request would wait for a dead node.
	defer func() {
		unsubscribeFrom := srvPID
		if !subscribed {
			unsubscribeFrom = nil
		}
		if err := owner.Stop(sys.Root, ownerPID, unsubscribeFrom, 2*time.Second); err != nil {
			sys.Logger().Info("tcpactor handle: " + err.Error())
		}
	}()
	select {
	case err := <-news:
		if err != nil {
			return err
		}
	case <-time.After(server.DefaultTimeout):
		return fmt.Errorf("no answer from server %s within %v", *target, server.DefaultTimeout)
	}
	subscribed = true
	fmt.Fprintf(stdout, "remote on %s\n", sys.Address())
	for {
		select {
		case <-sigs:
			return nil
		case err := <-news:
			if err != nil {
				subscribed = false
				return err
			}
		}
	}
}
