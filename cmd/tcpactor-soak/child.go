package main

// The nodes under test, each a child process of the soak (this binary run
// as `tcpactor-soak node --role ROLE`), so that its memory, goroutines and
// descriptors are its own and not the load generator's.
//
// A node prints "ready ..." once it serves, then answers one line per
// command read on stdin (internal/childproc's protocol): "stats" (a JSON
// nodeStats) and "gc" (a full collection that returns freed memory to the
// OS, then "ok"). It exits at EOF.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/internal/childproc"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/owner"
	"github.com/tcpactor/tcpactor/remotenode"
	"github.com/tcpactor/tcpactor/server"
)

// The roles of a node.
const (
	roleServer       = "server"        // ServerActor with the local echo handler
	roleRemoteServer = "remote-server" // ServerActor with no handler, on remote
	roleHandler      = "handler"       // owner actor (owner.Echo) serving a remote-server from a second node
)

// serverName is the remote-server's actor name.
const serverName = "soak"

// backlog is the soak servers' listen backlog: the load dials thousands of
// connections at once, and Qt's default of 50 would only measure SYN
// retries.
const backlog = 4096

// nodeStats is one node's answer to "stats".
type nodeStats struct {
	Goroutines int   `json:"goroutines"`
	FDs        int   `json:"fds"`
	RSS        int64 `json:"rss"`  // VmRSS, bytes
	HWM        int64 `json:"hwm"`  // VmHWM: peak RSS, bytes
	Heap       int64 `json:"heap"` // HeapInuse, bytes
	Active     int64 `json:"active"`
	Accepted   int64 `json:"accepted"`
}

// runNode is `tcpactor-soak node`.
func runNode(args []string) error {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	role := fs.String("role", roleServer, "server, remote-server or handler")
	target := fs.String("server", "", "handler: the remote-server as HOST:PORT/NAME")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	sys := actors.CompactRegistry(actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger })))
	defer sys.Shutdown()
	var counts func() (active, accepted int64)
	switch *role {
	case roleServer, roleRemoteServer:
		opts := server.Options{}
		var srv *server.Server
		if *role == roleServer {
			opts.Connection.Handler = actors.EchoHandler()
			srv = server.Spawn(sys, opts)
		} else {
			startRemote(sys, logger)
			var err error
			if srv, err = server.SpawnNamed(sys, serverName, opts); err != nil {
				return err
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), server.DefaultTimeout)
		defer cancel()
		_, port, err := srv.Listen(ctx, "127.0.0.1", 0, &messages.ListenOptions{Backlog: backlog})
		if err != nil {
			return err
		}
		counts = func() (int64, int64) {
			ctx, cancel := context.WithTimeout(context.Background(), server.DefaultTimeout)
			defer cancel()
			st, err := srv.Status(ctx)
			if err != nil {
				return -1, -1
			}
			return int64(st.Active), int64(st.AcceptedTotal)
		}
		fmt.Printf("ready 127.0.0.1:%d %s/%s\n", port, sys.Address(), serverName)
	case roleHandler:
		addr, name, ok := strings.Cut(*target, "/")
		if !ok {
			return fmt.Errorf("--server %q: want HOST:PORT/NAME", *target)
		}
		var claimed, ended atomic.Int64
		subscribed := make(chan string, 1)
		startRemote(sys, logger)
		sys.Root.Spawn(owner.New(owner.Config{
			Server:  actor.NewPID(addr, name),
			Handler: owner.Echo(),
			Notify: func(line string) { // runs in the owner actor: never blocks
				switch {
				case strings.HasPrefix(line, "claimed "):
					claimed.Add(1)
				case strings.HasPrefix(line, "ended "):
					ended.Add(1)
				case strings.HasPrefix(line, "subscribe"):
					select {
					case subscribed <- line:
					default:
					}
				}
			},
		}))
		select {
		case line := <-subscribed:
			if !strings.HasPrefix(line, "subscribed to ") {
				return errors.New(line)
			}
		case <-time.After(2 * server.DefaultTimeout):
			return fmt.Errorf("no answer from %s", *target)
		}
		counts = func() (int64, int64) { c := claimed.Load(); return c - ended.Load(), c }
		fmt.Println("ready")
	default:
		return fmt.Errorf("--role %q: want server, remote-server or handler", *role)
	}
	return childproc.Serve(os.Stdin, os.Stdout, childproc.Commands{
		"stats": func() (string, error) {
			st := ownStats()
			st.Active, st.Accepted = counts()
			b, _ := json.Marshal(st)
			return string(b), nil
		},
	})
}

// ownStats measures this process.
func ownStats() nodeStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := nodeStats{Goroutines: runtime.NumGoroutine(), Heap: int64(ms.HeapInuse)}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		st.FDs = len(ents)
	}
	st.RSS, st.HWM, _ = childproc.Memory(os.Getpid())
	return st
}

// node is the soak's handle on one node process.
type node struct {
	*childproc.Child
	role  string
	ready []string // the words after "ready"
}

// startNode runs this binary as a node of role and waits until it is ready.
func startNode(role string, stderr io.Writer, extra ...string) (*node, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{"node", "--role", role}, extra...)...)
	cmd.Stderr = stderr
	p, line, err := childproc.Start(cmd, "the "+role+" node", 20*time.Second)
	if err != nil {
		return nil, err
	}
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "ready" {
		_ = p.Stop()
		return nil, fmt.Errorf("%s node said %q, want \"ready ...\"", role, line)
	}
	return &node{Child: p, role: role, ready: f[1:]}, nil
}

func (n *node) stats() (nodeStats, error) {
	var st nodeStats
	l, err := n.Command("stats")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(l), &st); err != nil {
		return st, fmt.Errorf("%s node stats %q: %w", n.role, l, err)
	}
	return st, nil
}

// tcpAddr is the load's address of a server node.
func (n *node) tcpAddr() string {
	if len(n.ready) == 0 {
		return ""
	}
	if _, err := net.ResolveTCPAddr("tcp", n.ready[0]); err != nil {
		return ""
	}
	return n.ready[0]
}

// startRemote starts this child's remote node behind the remote guard, as
// every tcpactor node runs: unreadable and forged envelopes are dropped and
// what a remote peer may send is checked (remotenode.Guard).
func startRemote(sys *actor.ActorSystem, logger *slog.Logger) {
	guard := remotenode.NewGuard(logger)
	remote.NewRemote(sys, guard.Config("127.0.0.1", 0)).Start()
	guard.Started(sys)
}
