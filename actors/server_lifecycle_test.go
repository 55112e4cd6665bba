package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// Tests of close() and of what a ServerActor leaves behind when it stops.
// Finding numbers refer to docs/qt-behaviour.md (real Qt 6.4).

// stillOpenWait is how long a connection that must stay open is watched.
const stillOpenWait = 200 * time.Millisecond

// As Qt (6a-6e): close() closes the unclaimed pending connections (EOF),
// resets those the kernel still holds, then closes the listener; claimed
// connections live on; listening again works, on the same port too.
func TestCloseClosesUnclaimedConnectionsThenTheListener(t *testing.T) {
	s := startServer(t, ServerOptions{MaxPendingConnections: 2})
	addr := s.listen()
	claimedClient, unclaimed1 := dial(t, addr), dial(t, addr)
	s.waitStatus("two pending", func(st *messages.ServerStatus) bool { return st.Pending == 2 })
	owner := newProbe(t, s.sys)
	pc := ask[*messages.PendingConnection](s, &messages.NextPendingConnection{Owner: owner.pid})
	if pc.Connection == nil {
		t.Fatal("nothing to claim")
	}
	if port := clientPort(claimedClient); pc.Info.GetPeerPort() != port {
		claimedClient, unclaimed1 = unclaimed1, claimedClient // FIFO says otherwise, but be sure
	}
	unclaimed2 := dial(t, addr)
	s.waitStatus("two pending again", func(st *messages.ServerStatus) bool { return st.Pending == 2 && st.AcceptedTotal == 3 })
	inBacklog := dial(t, addr) // the queue is full: the kernel holds it

	ask[*messages.Closed](s, &messages.Close{})

	mustReadEOF(t, unclaimed1)
	mustReadEOF(t, unclaimed2)
	unclaimed1.Close() // they linger until their peers close
	unclaimed2.Close()
	mustSeeServerClose(t, inBacklog) // Qt's client sees a reset here (6c)
	mustBeRefused(t, addr)
	mustStayOpen(t, claimedClient)

	st := s.status()
	if st.Listening || st.Address != "" || st.Port != 0 || st.SocketDescriptor != -1 || st.Pending != 0 || st.HasPendingConnections {
		t.Fatalf("status after close: %v", st)
	}
	st = s.waitStatus("only the claimed connection active", func(st *messages.ServerStatus) bool { return st.Active == 1 })

	// Listening again works, on the same port.
	_, port, _ := net.SplitHostPort(addr)
	r := ask[*messages.ListenResult](s, &messages.Listen{Address: "127.0.0.1", Port: portNumber(t, port)})
	if !r.Ok {
		t.Fatalf("listen again on %s: %v", addr, r.Error)
	}
	dial(t, addr)
	s.waitStatus("a new pending connection", func(now *messages.ServerStatus) bool {
		return now.Pending == 1 && now.AcceptedTotal == st.AcceptedTotal+1
	})
}

// As Qt (6d): a connection claimed before close() stays usable: the server's
// close does not reach it, and writes still get to the client.
func TestCloseLeavesClaimedConnectionsWorking(t *testing.T) {
	s := startServer(t, ServerOptions{})
	client := dial(t, s.listen())
	s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
	owner := newProbe(t, s.sys)
	pc := ask[*messages.PendingConnection](s, &messages.NextPendingConnection{Owner: owner.pid})
	if pc.Connection == nil {
		t.Fatal("nothing to claim")
	}
	ask[*messages.Closed](s, &messages.Close{})
	mustStayOpen(t, client)

	res, err := s.sys.Root.RequestFuture(pc.Connection, &messages.Write{Data: []byte("still here"), AckId: 1}, replyTimeout).Result()
	if err != nil {
		t.Fatalf("write after the server closed: %v", err)
	}
	if _, ok := res.(*messages.WriteAck); !ok {
		t.Fatalf("write after the server closed answered %T %v", res, res)
	}
	buf := make([]byte, len("still here"))
	_ = client.SetReadDeadline(time.Now().Add(replyTimeout))
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "still here" {
		t.Fatalf("client read %q, %v", buf, err)
	}
}

// Unlike Qt (19), where claimed sockets are the server's children and
// deleting the server closes them (the client sees EOF), stopping the
// ServerActor leaves a claimed connection to its owner and one a local
// handler serves to the handler, as close() does: a connection belongs to
// whoever serves it, perhaps on another node, and ends when that owner
// stops. A server stopped for a restart, a move to another cluster member or
// a drain (server.Listener's Close, like net.Listener's, leaves accepted
// connections alone) must not cut the connections being served.
func TestStoppingTheServerLeavesServedConnectionsWorking(t *testing.T) {
	stops := []struct {
		name string
		stop func(s *testServer)
	}{
		{"stop", func(s *testServer) { _ = s.sys.Root.StopFuture(s.pid).Wait() }},
		{"poison", func(s *testServer) { _ = s.sys.Root.PoisonFuture(s.pid).Wait() }},
	}
	for _, st := range stops {
		t.Run(st.name+", claimed by an owner", func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			client := dial(t, s.listen())
			s.waitStatus("one pending", pendingIs(1))
			pc := claimNext(s, newProbe(t, s.sys).pid)
			st.stop(s)
			mustStayOpen(t, client)
			res, err := s.sys.Root.RequestFuture(pc.Connection, &messages.Write{Data: []byte("still here"), AckId: 1}, replyTimeout).Result()
			if _, ok := res.(*messages.WriteAck); err != nil || !ok {
				t.Fatalf("write after the server stopped answered %T %v, %v", res, res, err)
			}
			expectRead(t, client, "still here")
		})
		t.Run(st.name+", served by a local handler", func(t *testing.T) {
			s := startServer(t, ServerOptions{Connection: ConnectionConfig{Handler: EchoHandler()}})
			client := dial(t, s.listen())
			s.waitStatus("one active", func(st *messages.ServerStatus) bool { return st.Active == 1 })
			st.stop(s)
			mustStayOpen(t, client)
			if _, err := client.Write([]byte("echo")); err != nil {
				t.Fatal(err)
			}
			expectRead(t, client, "echo")
		})
	}
}

// expectRead reads len(want) bytes from c and compares them with want.
func expectRead(t testing.TB, c net.Conn, want string) {
	t.Helper()
	buf := make([]byte, len(want))
	_ = c.SetReadDeadline(time.Now().Add(replyTimeout))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != want {
		t.Fatalf("client read %q, %v; want %q", buf, err, want)
	}
}

func TestCloseOfAServerThatIsNotListeningIsHarmless(t *testing.T) {
	s := startServer(t, ServerOptions{})
	before := s.status()
	for range 2 {
		ask[*messages.Closed](s, &messages.Close{})
	}
	st := s.status()
	if st.Listening || st.SocketDescriptor != -1 || st.Error.Failed() || st.Backlog != before.Backlog {
		t.Fatalf("status after closing a server that never listened: %v", st)
	}
	dial(t, s.listen())
	s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
}

// A WaitForNewConnection still waiting is answered (with an error) when the
// server closes or stops: no request goes unanswered.
func TestWaitersAreAnsweredWhenTheServerClosesOrStops(t *testing.T) {
	for _, c := range []struct {
		name string
		end  func(s *testServer)
	}{
		{"close", func(s *testServer) { ask[*messages.Closed](s, &messages.Close{}) }},
		{"poison", func(s *testServer) { _ = s.sys.Root.PoisonFuture(s.pid).Wait() }},
		{"stop", func(s *testServer) { _ = s.sys.Root.StopFuture(s.pid).Wait() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			s.listen()
			waits := []*actor.Future{
				s.sys.Root.RequestFuture(s.pid, &messages.WaitForNewConnection{TimeoutMs: -1}, replyTimeout),
				s.sys.Root.RequestFuture(s.pid, &messages.WaitForNewConnection{TimeoutMs: 60_000}, replyTimeout),
			}
			s.status() // both waits are queued at the server
			c.end(s)
			for i, f := range waits {
				res, err := f.Result()
				if err != nil {
					t.Fatalf("wait %d: %v", i, err)
				}
				w, ok := res.(*messages.WaitResult)
				if !ok || w.Available || !w.Error.Failed() {
					t.Fatalf("wait %d answered %T %v; want a WaitResult with an error", i, res, res)
				}
			}
		})
	}
}

// However a server actor ends — Poison, Stop, its parent stopping, or its
// actor system shutting down (which in Proto.Actor stops no actor by itself:
// the server registers for it) — it closes its listener, every pending
// connection and every connection the kernel holds for it.
func TestStoppingTheServerClosesItsListenerAndUnclaimedConnections(t *testing.T) {
	spawn := func(parent actor.SpawnerContext) *actor.PID {
		return parent.Spawn(NewServer(ServerOptions{MaxPendingConnections: 1}))
	}
	cases := []struct {
		name string
		// start spawns the server and returns how to end it; shutdown shuts
		// the actor system down (once).
		start func(t *testing.T, sys *actor.ActorSystem, shutdown func()) (server *actor.PID, end func())
	}{
		{"poison", func(t *testing.T, sys *actor.ActorSystem, _ func()) (*actor.PID, func()) {
			pid := spawn(sys.Root)
			return pid, func() { _ = sys.Root.PoisonFuture(pid).Wait() }
		}},
		{"stop", func(t *testing.T, sys *actor.ActorSystem, _ func()) (*actor.PID, func()) {
			pid := spawn(sys.Root)
			return pid, func() { _ = sys.Root.StopFuture(pid).Wait() }
		}},
		{"parent stops", func(t *testing.T, sys *actor.ActorSystem, _ func()) (*actor.PID, func()) {
			child := make(chan *actor.PID, 1)
			parent := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
				if _, ok := ctx.Message().(*actor.Started); ok {
					child <- spawn(ctx) // a child of this actor
				}
			}))
			return <-child, func() { _ = sys.Root.StopFuture(parent).Wait() }
		}},
		{"actor system shuts down", func(t *testing.T, sys *actor.ActorSystem, shutdown func()) (*actor.PID, func()) {
			pid := spawn(sys.Root)
			return pid, func() {
				ended := make(chan struct{})
				watcher := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
					switch ctx.Message().(type) {
					case *actor.Started:
						ctx.Watch(pid)
					case *actor.Terminated:
						close(ended)
					case *messages.GetStatus:
						ctx.Respond(&messages.ServerStatus{}) // Started, and so the watch, came first
					}
				}))
				_, _ = sys.Root.RequestFuture(watcher, &messages.GetStatus{}, replyTimeout).Result()
				shutdown()
				select {
				case <-ended:
				case <-time.After(replyTimeout):
					t.Fatal("the server did not stop with its actor system")
				}
				_ = sys.Root.StopFuture(watcher).Wait()
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sys := actor.NewActorSystem(testkit.SystemOptions()...)
			var once sync.Once
			shutdown := func() { once.Do(sys.Shutdown) }
			t.Cleanup(shutdown)
			pid, end := c.start(t, sys, shutdown)
			t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
			s := &testServer{t: t, sys: sys, pid: pid}
			addr := s.listen()
			pending := dial(t, addr)
			s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
			inBacklog := dial(t, addr)

			end()

			mustBeRefused(t, addr)
			mustReadEOF(t, pending)
			mustSeeServerClose(t, inBacklog)
		})
	}
}

// A listening socket cannot be restarted: a ServerActor that panics in
// Receive (here on a broken connection an incomingConnection hook returned,
// a user's bug) logs the panic at ERROR and stops, closing its listener,
// its unclaimed connections and the connection it failed on; its watchers
// get Terminated. Proto.Actor's
// default supervision would instead restart it as a fresh server that
// listens on nothing, silently.
func TestAServerThatPanicsLogsItAndStopsClosingWhatItOwns(t *testing.T) {
	type brokenConn struct{ net.Conn } // nil inside: every method panics
	var accepted atomic.Int32
	logs := &errorLog{}
	sys := actor.NewActorSystem(append(testkit.SystemOptions(),
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(logs) }))...)
	t.Cleanup(sys.Shutdown)
	pid := sys.Root.Spawn(NewServer(ServerOptions{IncomingConnection: func(_ context.Context, c net.Conn) (net.Conn, error) {
		if accepted.Add(1) == 1 {
			return c, nil
		}
		return brokenConn{}, nil // c is still the server's to close
	}}))
	t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
	s := &testServer{t: t, sys: sys, pid: pid}
	// Watching a server that has already stopped gets Terminated too.
	ended := make(chan *actor.Terminated, 1)
	watcher := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Watch(pid)
		case *actor.Terminated:
			ended <- m
		}
	}))
	t.Cleanup(func() { _ = sys.Root.StopFuture(watcher).Wait() })
	addr := s.listen()
	pending := dial(t, addr)
	s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })

	broken := dial(t, addr) // the hook breaks this one: the server panics

	select {
	case <-ended:
	case <-time.After(replyTimeout):
		t.Fatalf("the server did not stop after its panic; status: %v", s.status())
	}
	mustBeRefused(t, addr)
	mustReadEOF(t, pending)
	mustReadEOF(t, broken)
	if !logs.has("panic") {
		t.Errorf("no ERROR log of the panic; logged at ERROR: %q", logs.lines())
	}
}

// errorLog is a slog.Handler that keeps the messages logged at ERROR.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) Enabled(_ context.Context, level slog.Level) bool { return level >= slog.LevelError }

func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, b.String())
	return nil
}

func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *errorLog) WithGroup(string) slog.Handler      { return l }

func (l *errorLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

func (l *errorLog) has(word string) bool {
	for _, m := range l.lines() {
		if strings.Contains(m, word) {
			return true
		}
	}
	return false
}

// Nothing a server opened outlives it: after 20 clients and a close or a
// stop, the process has no more descriptors open than before the server.
func TestServerLeavesNoDescriptorsBehind(t *testing.T) {
	listen := func(s *testServer) { s.listen() }
	adopt := func(s *testServer) {
		fd := rawSocket(s.t, syscall.AF_INET, syscall.SOCK_STREAM, true, true)
		if r := ask[*messages.ListenResult](s, &messages.SetSocketDescriptor{SocketDescriptor: int64(fd)}); !r.Ok {
			syscall.Close(fd)
			s.t.Fatalf("setSocketDescriptor: %v", r.Error)
		}
		syscall.Close(fd) // the server listens on its own duplicate
	}
	closeIt := func(s *testServer) { ask[*messages.Closed](s, &messages.Close{}) }
	stopIt := func(s *testServer) { _ = s.sys.Root.StopFuture(s.pid).Wait() }
	cases := []struct {
		name        string
		start, end  func(*testServer)
		claimAndEnd bool // claim half the clients and end them through their owner
	}{
		{"listen, stop", listen, stopIt, false},
		{"listen, close", listen, closeIt, false},
		{"setSocketDescriptor, stop", adopt, stopIt, false},
		{"setSocketDescriptor, close", adopt, closeIt, false},
		{"listen, claim half, stop", listen, stopIt, true},
	}
	warmUpPoller(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			baseline := testkit.OpenFDs(t)
			sys := actor.NewActorSystem(testkit.SystemOptions()...)
			s := &testServer{t: t, sys: sys, pid: sys.Root.Spawn(NewServer(ServerOptions{}))}
			defer sys.Shutdown()
			defer func() { _ = sys.Root.StopFuture(s.pid).Wait() }()
			c.start(s)
			st := s.status()
			addr := net.JoinHostPort(st.Address, itoa(st.Port))
			var clients []net.Conn
			for range 20 {
				conn, err := net.DialTimeout("tcp", addr, replyTimeout)
				if err != nil {
					t.Fatal(err)
				}
				clients = append(clients, conn)
			}
			s.waitStatus("20 pending", func(st *messages.ServerStatus) bool { return st.Pending == 20 })
			var owner *actor.PID
			if c.claimAndEnd {
				owner = sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
				for range 10 {
					ask[*messages.PendingConnection](s, &messages.NextPendingConnection{Owner: owner})
				}
			}
			c.end(s)
			if owner != nil {
				_ = sys.Root.StopFuture(owner).Wait() // its connections close with it
			}
			for _, conn := range clients {
				conn.Close()
			}
			deadline := time.Now().Add(5 * time.Second)
			for testkit.OpenFDs(t) > baseline {
				if time.Now().After(deadline) {
					t.Fatalf("%d descriptors open, %d before the server", testkit.OpenFDs(t), baseline)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// helpers

// mustReadEOF expects the server to close c in order: the client reads EOF.
func mustReadEOF(t testing.TB, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(replyTimeout))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("client %s read %d bytes, %v; want EOF", c.LocalAddr(), n, err)
	}
}

// mustSeeServerClose expects the server side of c to close: the client
// reads EOF (a FIN) or a reset.
func mustSeeServerClose(t testing.TB, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(replyTimeout))
	n, err := c.Read(make([]byte, 1))
	if n == 0 && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		return
	}
	t.Fatalf("client %s read %d bytes, %v; want EOF or a reset from the server", c.LocalAddr(), n, err)
}

// mustStayOpen expects c to see neither data, EOF nor reset for a short while.
func mustStayOpen(t testing.TB, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(stillOpenWait))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("client %s read %d bytes, %v; want the connection to stay open and quiet", c.LocalAddr(), n, err)
	}
	_ = c.SetReadDeadline(time.Time{})
}

func clientPort(c net.Conn) uint32 { return uint32(c.LocalAddr().(*net.TCPAddr).Port) }

func portNumber(t testing.TB, s string) uint32 {
	t.Helper()
	p, err := net.LookupPort("tcp", s)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(p)
}

// warmUpPoller opens what the runtime opens once per process on first use (the
// network poller), so that descriptor counts compare like with like.
func warmUpPoller(t testing.TB) {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	l.Close()
}
