// Command tcpactor runs tcpactor servers and tools:
//
//	tcpactor serve [flags]    a server (echo, discard, fortune, chat or none) on one actor system
//	tcpactor handle [flags]   serve the connections of a server that runs on another node
//	tcpactor status [flags]   ask a running server for its state, over remote
//	tcpactor node [flags]     a member of a deployment: remote, optional cluster
//	                          membership, a server, an owner-actor handler
//
// Run `tcpactor COMMAND --help` for the flags of each. Errors are one line on
// stderr; stdout carries only the lines a script may wait for
// ("listening on HOST:PORT", "remote on HOST:PORT", "metrics on HOST:PORT",
// and node's milestones) and the output of status. The benchmark is a command
// of its own, cmd/tcpactor-bench.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/internal/cliflag"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/remotenode"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "tcpactor: no command given (try tcpactor --help)")
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stdout, stderr)
	case "handle":
		err = handle(args[1:], stdout, stderr)
	case "status":
		err = status(args[1:], stdout, stderr)
	case "node":
		err = node(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "tcpactor: unknown command %q (try tcpactor --help)\n", args[0])
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		if err != errUsage {
			fmt.Fprintf(stderr, "tcpactor %s: %s\n", args[0], oneLine(err.Error()))
		}
		return 2
	default:
		fmt.Fprintf(stderr, "tcpactor %s: %s\n", args[0], oneLine(err.Error()))
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `tcpactor: Qt's QTcpServer as Proto.Actor actors

usage:
  tcpactor serve  [--listen HOST:PORT] [--handler echo|discard|fortune|chat|none]
                  [--remote HOST:PORT] [--name NAME] [--metrics HOST:PORT] ...
  tcpactor handle --server HOST:PORT/NAME [--handler echo|discard] [--remote HOST:PORT]
  tcpactor status --server HOST:PORT/NAME [--json]
  tcpactor node   --remote HOST:PORT [--cluster NAME (--members HOST:PORT,... | --etcd HOST:PORT,...)]
                  [--listen HOST:PORT] [--handler echo|discard] [--server HOST:PORT/NAME] ...

Every command with a remote takes --remote-cert FILE --remote-key FILE
--remote-ca FILE (mutual TLS between nodes) and --advertise HOST.

Run 'tcpactor COMMAND --help' for the flags of a command.
`)
}

// hostPort splits a HOST:PORT flag value (messages.SplitHostPort, the parser
// of Listen addresses too), naming the flag in its usage error.
func hostPort(flagName, v string) (string, int, error) {
	host, port, err := messages.SplitHostPort(v)
	if err != nil {
		return "", 0, badUsage("--%s %v", flagName, err)
	}
	return host, int(port), nil
}

// serverPID parses HOST:PORT/NAME, the address of a server on another node.
func serverPID(flagName, v string) (*actor.PID, error) {
	addr, name, ok := strings.Cut(v, "/")
	if !ok || name == "" || v == "" {
		return nil, badUsage("--%s %q: want HOST:PORT/NAME, e.g. 127.0.0.1:8090/tcpserver", flagName, v)
	}
	if _, port, err := hostPort(flagName, addr); err != nil || port == 0 {
		return nil, badUsage("--%s %q: want HOST:PORT/NAME with a port from 1 to 65535", flagName, v)
	}
	return actor.NewPID(addr, name), nil
}

// reachable checks that a node's remote port answers before any remote
// traffic: the pinned remote would retry an unreachable node for ~10 s,
// logging each attempt.
func reachable(pid *actor.PID) error {
	c, err := net.DialTimeout("tcp", pid.Address, 3*time.Second)
	if err != nil {
		return fmt.Errorf("cannot reach node %s: %w", pid.Address, err)
	}
	return c.Close()
}

// logLevel parses --log-level.
func logLevel(v string) (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(v)); err != nil {
		return 0, badUsage("--log-level %q: want debug, info, warn or error", v)
	}
	return level, nil
}

// newSystem makes an actor system whose logging (Proto.Actor logs through
// slog) goes to stderr at level, so stdout stays clean. A peer node going
// away is logged at INFO, not ERROR (remotenode.QuietPeerLoss).
func newSystem(stderr io.Writer, level slog.Level) *actor.ActorSystem {
	h := slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	logger := slog.New(remotenode.QuietPeerLoss(h))
	return actors.CompactRegistry(actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger })))
}

// startRemote starts Proto.Actor remote on host:port with the transport
// security of rf. remote.Start panics when it cannot listen, so the address
// is tried first and a clean error returned instead.
func startRemote(sys *actor.ActorSystem, host string, port int, rf *remoteFlags) (*remote.Remote, error) {
	probe, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("remote cannot listen on %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
	}
	probe.Close()
	// The guard keeps the node up when a peer sends a message it cannot
	// decode, and lets batches of Received through gRPC's default 4 MiB
	// limit (see remotenode.Guard).
	guard := newGuard(sys)
	cfg, err := rf.config(guard, host, port)
	if err != nil {
		return nil, err
	}
	if err := rf.installStream(sys); err != nil {
		return nil, err
	}
	r := remote.NewRemote(sys, cfg)
	r.Start()
	guard.Started(sys) // what a remote peer may send: remotenode/guard_authz.go
	if err := listenStream(sys); err != nil {
		stopStream(sys)
		r.Shutdown(false)
		return nil, err
	}
	return r, nil
}

// startPeer starts this process's node for a command that talks to a server
// on another node (status, handle), from its --server HOST:PORT/NAME,
// --remote, transport-security and --log-level flags. It checks them, then
// that the server's node answers, before any remote traffic. stop shuts the
// node down.
func startPeer(target, remoteAddr string, rf *remoteFlags, level string, stderr io.Writer) (srv *actor.PID, sys *actor.ActorSystem, stop func(), err error) {
	if target == "" {
		return nil, nil, nil, badUsage("--server is required (HOST:PORT/NAME)")
	}
	if srv, err = serverPID("server", target); err != nil {
		return nil, nil, nil, err
	}
	host, port, err := hostPort("remote", remoteAddr)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := rf.check("remote", host, port); err != nil {
		return nil, nil, nil, err
	}
	lvl, err := logLevel(level)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := reachable(srv); err != nil {
		return nil, nil, nil, err
	}
	sys = newSystem(stderr, lvl)
	rem, err := startRemote(sys, host, port, rf)
	if err != nil {
		sys.Shutdown()
		return nil, nil, nil, err
	}
	return srv, sys, func() {
		shutdownRemote(sys, rem)
		sys.Shutdown()
	}, nil
}

// intVar and intFlagOf are range-checked integer flags (internal/cliflag).
var (
	intVar    = cliflag.IntVar
	intFlagOf = cliflag.Int
)

// The command line's plumbing, shared with the other command (internal/cliflag).
var (
	errUsage = cliflag.ErrUsage
	badUsage = cliflag.BadUsage
	oneLine  = cliflag.OneLine
	parse    = cliflag.Parse
)

// newFlags makes the flag set of a command.
func newFlags(name string, w io.Writer) *flag.FlagSet { return cliflag.NewFlags("tcpactor "+name, w) }
