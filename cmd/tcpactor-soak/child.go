package main

// The nodes under test, each a child process of the soak (this binary run
// as `tcpactor-soak node --role ROLE`), so that its memory, goroutines and
// descriptors are its own and not the load generator's.
//
// A node prints "ready ..." once it serves, then answers one line per
// command read on stdin: "stats" (a JSON nodeStats) and "gc" (a full
// collection that returns freed memory to the OS, then "ok"). It exits at
// EOF.

import (
	"bufio"
	"bytes"
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
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/actors"
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
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "stats":
			st := ownStats()
			st.Active, st.Accepted = counts()
			b, _ := json.Marshal(st)
			fmt.Printf("%s\n", b)
		case "gc":
			runtime.GC()
			debug.FreeOSMemory()
			fmt.Println("ok")
		default:
			fmt.Println("unknown command")
		}
	}
	return nil
}

// ownStats measures this process.
func ownStats() nodeStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := nodeStats{Goroutines: runtime.NumGoroutine(), Heap: int64(ms.HeapInuse)}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		st.FDs = len(ents)
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range bytes.Split(b, []byte("\n")) {
			f := strings.Fields(string(line))
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				st.RSS = v << 10
			case "VmHWM:":
				st.HWM = v << 10
			}
		}
	}
	return st
}

// node is the soak's handle on one node process.
type node struct {
	role  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout, line by line; closed at EOF
	ready []string    // the words after "ready"
	done  chan struct{}
	err   error
}

// startNode runs this binary as a node of role and waits until it is ready.
func startNode(role string, stderr io.Writer, extra ...string) (*node, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{"node", "--role", role}, extra...)...)
	cmd.Stderr = stderr
	n := &node{role: role, cmd: cmd, lines: make(chan string, 4), done: make(chan struct{})}
	if n.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the %s node: %w", role, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			n.lines <- sc.Text() // one line per command: never more than fit
		}
		close(n.lines)
		n.err = cmd.Wait() // after stdout is drained, as exec wants
		close(n.done)
	}()
	line, err := n.line(20 * time.Second)
	if err != nil {
		n.stop()
		return nil, fmt.Errorf("%s node: %w", role, err)
	}
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "ready" {
		n.stop()
		return nil, fmt.Errorf("%s node said %q, want \"ready ...\"", role, line)
	}
	n.ready = f[1:]
	return n, nil
}

func (n *node) line(timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l, ok := <-n.lines:
		if !ok {
			return "", fmt.Errorf("the %s node exited", n.role)
		}
		return l, nil
	case <-t.C:
		return "", fmt.Errorf("the %s node did not answer within %v", n.role, timeout)
	}
}

func (n *node) command(c string) (string, error) {
	if _, err := io.WriteString(n.stdin, c+"\n"); err != nil {
		return "", fmt.Errorf("%s node: %w", n.role, err)
	}
	return n.line(20 * time.Second)
}

func (n *node) stats() (nodeStats, error) {
	var st nodeStats
	l, err := n.command("stats")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(l), &st); err != nil {
		return st, fmt.Errorf("%s node stats %q: %w", n.role, l, err)
	}
	return st, nil
}

func (n *node) gc() error {
	l, err := n.command("gc")
	if err == nil && l != "ok" {
		err = fmt.Errorf("%s node: gc answered %q", n.role, l)
	}
	return err
}

// stop closes the node's stdin, which ends it; a node that does not end in
// 10 s is killed.
func (n *node) stop() error {
	n.stdin.Close()
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
		return fmt.Errorf("the %s node did not exit: killed", n.role)
	}
	return n.err
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
