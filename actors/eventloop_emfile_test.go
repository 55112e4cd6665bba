//go:build linux

package actors

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"golang.org/x/sys/unix"
)

// TestALoopModeServerWhoseFirstAcceptsHitEMFILEServesThroughItsLoops: a
// loop-mode server whose first accepts take the last descriptors of the
// process, the next failing with EMFILE, serves the connections it
// accepted, each raw in an event loop: the loops were made when it
// listened, and a connection joins one without a descriptor. (Made by the
// first connection, the loops found no descriptor for their epoll
// instances; the goroutine reader's promotion found none for its
// duplicate either, and the connection was closed as soon as claimed: the
// server cycled at the limit without serving anyone.) Once descriptors are
// free again the clients left in the backlog are accepted and served as
// well, and no connection was promoted. It runs alone in a child process:
// it takes every descriptor the process may open, and it must start with
// no loop running.
func TestALoopModeServerWhoseFirstAcceptsHitEMFILEServesThroughItsLoops(t *testing.T) {
	if !aloneWithoutLoops(t, false) {
		return
	}
	s := startServer(t, ServerOptions{Connection: ConnectionConfig{ReadMode: ReadLoop}})
	addr := s.listen()
	if loopsRunning() == 0 {
		t.Error("no event loop runs once a loop-mode server listens")
	}

	// The clients wait in the backlog while the descriptors are taken.
	const clients, first = 4, 2
	ask[*messages.Ack](s, &messages.PauseAccepting{})
	byPort := map[uint32]net.Conn{}
	var cs []net.Conn
	for range clients {
		c := dial(t, addr)
		byPort[dialedPort(c)] = c
		cs = append(cs, c)
	}
	fill := takeEveryDescriptor(t)
	defer fill.restore()
	fill.free(t, first) // for the first accepts; the next fails with EMFILE
	ask[*messages.Ack](s, &messages.ResumeAccepting{})
	s.waitStatus(fmt.Sprintf("%d pending and an accept failed", first), func(st *messages.ServerStatus) bool {
		return st.Pending == first && st.AcceptErrors > 0
	})
	for i := range first {
		serveOneRound(t, s, byPort, fmt.Sprintf("out of descriptors %d", i))
	}

	fill.restore()
	s.waitStatus("the rest of the clients pending", pendingIs(clients-first))
	for i := range clients - first {
		serveOneRound(t, s, byPort, fmt.Sprintf("after the shortage %d", i))
	}
	for i, c := range cs {
		fd := oneServerSide(t, c, fmt.Sprintf("client %d", i))
		if rt, loops := epollSets(t, fd); rt != 0 || loops != 1 {
			t.Errorf("client %d's connection is in %d runtime epoll sets and %d loops: want it raw, in one loop", i, rt, loops)
		}
	}
}

// TestALoopModeServerThatCannotMakeItsLoopsAtListenSaysSoAndServes: out of
// descriptors at Listen but for the listening socket's, a loop-mode server
// listens all the same and says at WARN that it has no event loops; it
// accepts plain net.TCPConns (a goroutine can read one without a
// duplicate descriptor). Once descriptors are free, its next accept makes
// the loops (TestALoopModeServerWithoutLoopsAtListenAcceptsRawSocketsOnce…)
// and the connection it accepted is read by one; its next Listen holds
// them and accepts raw sockets from the start.
func TestALoopModeServerThatCannotMakeItsLoopsAtListenSaysSoAndServes(t *testing.T) {
	if !aloneWithoutLoops(t, true) {
		return
	}
	log := &testkit.SyncBuffer{}
	sys := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.NewTextHandler(log, nil)) }),
		actor.WithDeadLetterThrottleInterval(10*time.Millisecond))
	t.Cleanup(sys.Shutdown)
	s := &testServer{t: t, sys: sys, pid: sys.Root.Spawn(NewServer(ServerOptions{Connection: ConnectionConfig{ReadMode: ReadLoop}}))}
	t.Cleanup(func() { _ = sys.Root.StopFuture(s.pid).Wait() })

	fill := takeEveryDescriptor(t)
	defer fill.restore()
	fill.free(t, 1) // the listening socket's
	addr := s.listen()
	fill.restore()
	if got := log.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "no event loops") || !strings.Contains(got, "too many open files") {
		t.Errorf("the log after a Listen without descriptors for the loops:\n%s\nwant a warning that there are no event loops, and why", got)
	}
	byPort := map[uint32]net.Conn{}
	c := dial(t, addr)
	byPort[dialedPort(c)] = c
	s.waitStatus("the client pending", pendingIs(1))
	serveOneRound(t, s, byPort, "without loops at Listen")
	if rt, loops := epollSets(t, oneServerSide(t, c, "the client")); rt != 1 || loops != 1 {
		t.Errorf("the connection is in %d runtime epoll sets and %d loops: want a net.TCPConn read by a loop", rt, loops)
	}

	ask[*messages.Closed](s, &messages.Close{})
	addr = s.listen()
	c = dial(t, addr)
	byPort[dialedPort(c)] = c
	s.waitStatus("the client pending", pendingIs(1))
	serveOneRound(t, s, byPort, "after a Listen with descriptors")
	if rt, loops := epollSets(t, oneServerSide(t, c, "the second client")); rt != 0 || loops != 1 {
		t.Errorf("the connection is in %d runtime epoll sets and %d loops: want it raw, in one loop", rt, loops)
	}
	if n := strings.Count(log.String(), "no event loops"); n != 1 {
		t.Errorf("%d warnings of no event loops, want the first Listen's alone", n)
	}
}

// TestALoopModeServerWithoutLoopsAtListenAcceptsRawSocketsOnceItCanMakeThem:
// a loop-mode server that could not make its event loops at Listen (out of
// descriptors) tries again when it next accepts, and once they are made
// accepts raw sockets into them without waiting for its next Listen. The
// connection whose accept made the loops was accepted before they ran, a
// net.TCPConn, and is read by a loop all the same; the next is raw, in one
// loop. (The server used to accept net.TCPConns until its next Listen.)
func TestALoopModeServerWithoutLoopsAtListenAcceptsRawSocketsOnceItCanMakeThem(t *testing.T) {
	if !aloneWithoutLoops(t, true) {
		return
	}
	s := startServer(t, ServerOptions{Connection: ConnectionConfig{ReadMode: ReadLoop}})
	fill := takeEveryDescriptor(t)
	defer fill.restore()
	fill.free(t, 1) // the listening socket's
	addr := s.listen()
	fill.restore()
	if n := loopsRunning(); n != 0 {
		t.Fatalf("%d event loops run after a Listen without descriptors for them", n)
	}

	byPort := map[uint32]net.Conn{}
	for i, want := range []struct {
		what     string
		rt, loop int
	}{
		{"the connection whose accept made the loops", 1, 1},
		{"the next connection", 0, 1},
	} {
		c := dial(t, addr)
		byPort[dialedPort(c)] = c
		s.waitStatus("the client pending", pendingIs(1))
		serveOneRound(t, s, byPort, want.what)
		if rt, loops := epollSets(t, oneServerSide(t, c, want.what)); rt != want.rt || loops != want.loop {
			t.Errorf("%s (%d) is in %d runtime epoll sets and %d loops, want %d and %d", want.what, i, rt, loops, want.rt, want.loop)
		}
	}
}

// serveOneRound claims the server's next pending connection for an owner
// and has one round trip through it: the client's bytes reach the owner as
// Received, the owner's Write reaches the client and is acknowledged.
func serveOneRound(t *testing.T, s *testServer, byPort map[uint32]net.Conn, what string) {
	t.Helper()
	in := newInbox(t, s.sys)
	pc := claimNext(s, in.pid)
	c := byPort[pc.Info.GetPeerPort()]
	if pc.Connection == nil || c == nil {
		t.Fatalf("%s: claimed %v, peer port %d: not one of the clients", what, pc.Connection, pc.Info.GetPeerPort())
	}
	question, answer := "question "+what, "answer "+what
	if _, err := c.Write([]byte(question)); err != nil {
		t.Fatal(err)
	}
	if r := expectNext[*messages.Received](t, in); string(r.Data) != question {
		t.Fatalf("%s: the owner received %q, want %q", what, r.Data, question)
	}
	s.sys.Root.RequestWithCustomSender(pc.Connection, &messages.Write{Data: []byte(answer), AckId: 1}, in.pid)
	if a := expectNext[*messages.WriteAck](t, in); a.AckId != 1 {
		t.Fatalf("%s: WriteAck %d, want 1", what, a.AckId)
	}
	_ = c.SetReadDeadline(time.Now().Add(connWait))
	if got := readN(t, c, len(answer)); string(got) != answer {
		t.Fatalf("%s: the client read %q, want %q", what, got, answer)
	}
}

// descriptorFill holds every descriptor the process may open, under a
// lowered soft RLIMIT_NOFILE (takeEveryDescriptor).
type descriptorFill struct {
	fds   []int
	saved unix.Rlimit
}

// takeEveryDescriptor lowers the soft RLIMIT_NOFILE a little above what is
// open and opens /dev/null until the next open fails: no descriptor is
// left for anything in the process until free or restore.
func takeEveryDescriptor(t *testing.T) *descriptorFill {
	t.Helper()
	d := &descriptorFill{}
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &d.saved); err != nil {
		t.Fatal(err)
	}
	rl := d.saved
	rl.Cur = uint64(openFDs(t) + 64)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	for range rl.Cur {
		f, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		d.fds = append(d.fds, f)
	}
	return d
}

// free closes n of the descriptors held: exactly n are free then.
func (d *descriptorFill) free(t *testing.T, n int) {
	t.Helper()
	if n > len(d.fds) {
		t.Fatalf("%d descriptors to free, %d held", n, len(d.fds))
	}
	for _, f := range d.fds[len(d.fds)-n:] {
		_ = unix.Close(f)
	}
	d.fds = d.fds[:len(d.fds)-n]
}

// restore closes every descriptor held and puts the limit back; more than
// once is harmless.
func (d *descriptorFill) restore() {
	for _, f := range d.fds {
		_ = unix.Close(f)
	}
	d.fds = nil
	_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &d.saved)
}

// loopsRunning is how many event loops the process runs.
func loopsRunning() int {
	eventLoops.mu.Lock()
	defer eventLoops.mu.Unlock()
	return len(eventLoops.loops)
}

// aloneWithoutLoops runs the calling test in a child process of its own
// (runAlone) and reports false, the parent's part being done; in the child
// it checks that no event loop runs yet and reports true. listenFirst
// has the child open and close a listener, so that what the first listen
// of a process reads (somaxconn) is read before the test takes descriptors.
func aloneWithoutLoops(t *testing.T, listenFirst bool) bool {
	t.Helper()
	if os.Getenv(aloneEnv) == "" {
		runAlone(t)
		return false
	}
	if n := loopsRunning(); n != 0 {
		t.Fatalf("%d event loops run before any server: the test needs a process without", n)
	}
	if listenFirst {
		if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
			l.Close()
		}
	}
	return true
}
