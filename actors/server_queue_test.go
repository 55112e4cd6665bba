package actors

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// The pending queue, its limits, waiting for it, pausing it and adopting
// connections into it: nextPendingConnection(), setMaxPendingConnections(),
// waitForNewConnection(), pauseAccepting()/resumeAccepting(),
// addPendingConnection() and the cap on live connections.

// quietPeriod is how long a test watches for something that must not happen
// (an accept, an event): long enough for a loopback accept to have happened
// many times over, short enough to keep the suite quick.
const quietPeriod = 200 * time.Millisecond

// statusStays asserts that cond keeps holding for quietPeriod, polling the
// status: the way to check that something does not happen.
func statusStays(s *testServer, what string, cond func(*messages.ServerStatus) bool) {
	s.t.Helper()
	deadline := time.Now().Add(quietPeriod)
	for {
		if st := s.status(); !cond(st) {
			s.t.Fatalf("%s: no longer true; status: %v", what, st)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noMessage asserts that the probe gets no T for quietPeriod; other messages
// are consumed.
func noMessage[T any](t testing.TB, p *probe) {
	t.Helper()
	testkit.Quiet[T](t, p.Probe, quietPeriod)
}

// eventually polls cond for at most five seconds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(replyTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// claimNext is nextPendingConnection() on behalf of owner. Tests name the
// owner: the sender of ask is a future, and a connection closes when its
// owner stops.
func claimNext(s *testServer, owner *actor.PID) *messages.PendingConnection {
	s.t.Helper()
	pc := ask[*messages.PendingConnection](s, &messages.NextPendingConnection{Owner: owner})
	if pc.Error.Failed() {
		s.t.Fatalf("NextPendingConnection: %v", pc.Error)
	}
	return pc
}

// listenWith is listen() on 127.0.0.1 with Listen.options.
func listenWith(s *testServer, o *messages.ListenOptions) string {
	s.t.Helper()
	r := ask[*messages.ListenResult](s, &messages.Listen{Address: "127.0.0.1", Options: o})
	if !r.Ok {
		s.t.Fatalf("listen: %v", r.Error)
	}
	return net.JoinHostPort(r.Address, itoa(r.Port))
}

func expectNoError(t testing.TB, what string, e *messages.Error) {
	t.Helper()
	if e.Failed() {
		t.Fatalf("%s: %v", what, e)
	}
}

// dialedPort is the client's port: the peer port the server sees.
func dialedPort(c net.Conn) uint32 { return uint32(c.LocalAddr().(*net.TCPAddr).Port) }

func pendingIs(n int32) func(*messages.ServerStatus) bool {
	return func(st *messages.ServerStatus) bool { return st.Pending == n }
}

// ---------------------------------------------------------------------------
// nextPendingConnection()

func TestNextPendingConnectionReturnsConnectionsInDialOrder(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	owner := newProbe(t, s.sys)
	var ports []uint32
	for i := int32(1); i <= 4; i++ {
		ports = append(ports, dialedPort(dial(t, addr)))
		s.waitStatus(fmt.Sprintf("%d pending", i), pendingIs(i))
	}
	for i, want := range ports {
		pc := claimNext(s, owner.pid)
		if pc.Connection == nil || pc.Info.GetPeerPort() != want {
			t.Fatalf("claim %d: connection %v from peer port %d, want peer port %d (dial order %v)",
				i+1, pc.Connection, pc.Info.GetPeerPort(), want, ports)
		}
	}
}

func TestNextPendingConnectionReturnsEmptyWhenQueueIsEmpty(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, s *testServer, owner *actor.PID)
	}{
		{"not listening", func(*testing.T, *testServer, *actor.PID) {}},
		{"listening, nobody connected", func(_ *testing.T, s *testServer, _ *actor.PID) { s.listen() }},
		{"every connection claimed", func(t *testing.T, s *testServer, owner *actor.PID) {
			dial(t, s.listen())
			s.waitStatus("1 pending", pendingIs(1))
			claimNext(s, owner)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			owner := newProbe(t, s.sys)
			tc.setup(t, s, owner.pid)
			pc := ask[*messages.PendingConnection](s, &messages.NextPendingConnection{Owner: owner.pid})
			if pc.Connection != nil || pc.Error.Failed() {
				t.Fatalf("want an empty reply without error, got %v", pc)
			}
		})
	}
}

func TestNextPendingConnectionGivesTheConnectionToItsOwner(t *testing.T) {
	cases := []struct {
		name  string
		named bool // owner named in the request; otherwise the request's sender
	}{
		{"the sender", false},
		{"the named owner", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			dial(t, s.listen())
			s.waitStatus("1 pending", pendingIs(1))
			owner := newProbe(t, s.sys)
			var pc *messages.PendingConnection
			if tc.named {
				pc = claimNext(s, owner.pid)
			} else {
				s.sys.Root.RequestWithCustomSender(s.pid, &messages.NextPendingConnection{}, owner.pid)
				pc = next[*messages.PendingConnection](t, owner)
			}
			if pc.Connection == nil {
				t.Fatalf("nothing claimed: %v", pc)
			}
			res, err := s.sys.Root.RequestFuture(pc.Connection, &messages.GetInfo{}, replyTimeout).Result()
			if err != nil {
				t.Fatalf("GetInfo: %v", err)
			}
			if info := res.(*messages.ConnectionInfo); !info.Owner.Equal(owner.pid) {
				t.Fatalf("owner %v, want %v", info.Owner, owner.pid)
			}
		})
	}
}

func TestBytesSentBeforeTheClaimAreDeliveredAfterIt(t *testing.T) {
	s := startServer(t, ServerOptions{})
	c := dial(t, s.listen())
	// More than one read chunk, less than the kernel buffers: all of it is
	// sent before anybody reads.
	want := bytes.Repeat([]byte("0123456789abcdef"), 5000)
	if err := c.SetWriteDeadline(time.Now().Add(replyTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(want); err != nil {
		t.Fatalf("client write before the claim: %v", err)
	}
	s.waitStatus("1 pending", pendingIs(1))

	owner := newProbe(t, s.sys)
	claimNext(s, owner.pid)
	var got []byte
	for len(got) < len(want) {
		r := next[*messages.Received](t, owner)
		got = append(got, r.Data...)
		s.sys.Root.Send(r.Connection, &messages.Demand{N: 1})
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("owner received %d bytes that differ from the %d sent", len(got), len(want))
	}
}

// ---------------------------------------------------------------------------
// setMaxPendingConnections()

func TestMaxPendingConnectionsDefaultsTo30(t *testing.T) {
	s := startServer(t, ServerOptions{})
	if got := s.status().MaxPendingConnections; got != 30 {
		t.Fatalf("maxPendingConnections %d, want 30", got)
	}
	addr := s.listen()
	for range 31 {
		dial(t, addr) // the 31st completes in the kernel backlog
	}
	s.waitStatus("30 pending", pendingIs(30))
	statusStays(s, "the 31st client is not accepted", func(st *messages.ServerStatus) bool {
		return st.Pending == 30 && st.AcceptedTotal == 30
	})
}

func TestSetMaxPendingConnectionsLeavesTheRestInTheBacklogUntilAClaim(t *testing.T) {
	const limit = 2
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	expectNoError(t, "SetMaxPendingConnections", ask[*messages.Ack](s, &messages.SetMaxPendingConnections{Max: limit}).Error)
	for range limit + 1 {
		dial(t, addr)
	}
	s.waitStatus("a full queue", pendingIs(limit))
	statusStays(s, "the client over the limit waits in the backlog", func(st *messages.ServerStatus) bool {
		return st.Pending == limit && st.AcceptedTotal == limit
	})

	claimNext(s, newProbe(t, s.sys).pid)
	s.waitStatus("the waiting client accepted", func(st *messages.ServerStatus) bool {
		return st.Pending == limit && st.AcceptedTotal == limit+1
	})
}

func TestSetMaxPendingConnectionsBelowTheQueueLengthStopsAccepting(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	owner := newProbe(t, s.sys)
	for range 3 {
		dial(t, addr)
	}
	s.waitStatus("3 pending", pendingIs(3))
	expectNoError(t, "SetMaxPendingConnections", ask[*messages.Ack](s, &messages.SetMaxPendingConnections{Max: 1}).Error)
	dial(t, addr)
	statusStays(s, "over the new limit: the 4th client is not accepted", func(st *messages.ServerStatus) bool {
		return st.AcceptedTotal == 3
	})

	claimNext(s, owner.pid)
	claimNext(s, owner.pid)
	statusStays(s, "at the new limit: the 4th client is still not accepted", func(st *messages.ServerStatus) bool {
		return st.Pending == 1 && st.AcceptedTotal == 3
	})

	claimNext(s, owner.pid)
	s.waitStatus("the 4th client accepted", func(st *messages.ServerStatus) bool {
		return st.Pending == 1 && st.AcceptedTotal == 4
	})
}

func TestSetMaxPendingConnectionsRejectsLessThanOne(t *testing.T) {
	for _, n := range []int32{0, -1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			if a := ask[*messages.Ack](s, &messages.SetMaxPendingConnections{Max: n}); !a.Error.Failed() {
				t.Fatalf("SetMaxPendingConnections(%d) accepted", n)
			}
			if got := s.status().MaxPendingConnections; got != 30 {
				t.Fatalf("maxPendingConnections %d after a refused change, want 30", got)
			}
		})
	}
}

// Unlike Qt (17), where a raised limit takes effect only at the next claim
// (or resumeAccepting(), or a waitForNewConnection()), raising the limit
// accepts the clients waiting in the kernel backlog at once: the room is
// there, and nothing else is waited for.
func TestRaisingMaxPendingConnectionsAcceptsTheWaitingClientsAtOnce(t *testing.T) {
	s := startServer(t, ServerOptions{MaxPendingConnections: 1})
	addr := s.listen()
	for range 3 {
		dial(t, addr)
	}
	s.waitStatus("a full queue", pendingIs(1))
	statusStays(s, "the other two wait in the backlog", func(st *messages.ServerStatus) bool {
		return st.AcceptedTotal == 1
	})

	expectNoError(t, "SetMaxPendingConnections", ask[*messages.Ack](s, &messages.SetMaxPendingConnections{Max: 5}).Error)
	s.waitStatus("all three pending, nothing claimed", func(st *messages.ServerStatus) bool {
		return st.Pending == 3 && st.AcceptedTotal == 3
	})
}

// ---------------------------------------------------------------------------
// waitForNewConnection()

// startWait sends WaitForNewConnection with the probe as its sender, so the
// reply arrives at the probe whenever the server sends it.
func startWait(s *testServer, waiter *probe, timeoutMs int32) {
	s.sys.Root.RequestWithCustomSender(s.pid, &messages.WaitForNewConnection{TimeoutMs: timeoutMs}, waiter.pid)
}

func TestWaitForNewConnectionWithZeroPolls(t *testing.T) {
	cases := []struct {
		name    string
		clients int32
		want    *messages.WaitResult
	}{
		{"nothing pending", 0, &messages.WaitResult{TimedOut: true}},
		{"a connection pending", 1, &messages.WaitResult{Available: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			addr := s.listen()
			for range tc.clients {
				dial(t, addr)
			}
			s.waitStatus("clients pending", pendingIs(tc.clients))
			r := ask[*messages.WaitResult](s, &messages.WaitForNewConnection{TimeoutMs: 0})
			if r.Available != tc.want.Available || r.TimedOut != tc.want.TimedOut || r.Error.Failed() {
				t.Fatalf("got %v, want %v", r, tc.want)
			}
		})
	}
}

// Unlike Qt (16), which waits for a connection newer than those it has
// queued and times out with one pending, a wait with a connection pending is
// answered at once. Here connections queue while the caller is between two
// requests, not only inside the wait as in Qt's blocking use: waiting for a
// newer one would strand them (a loop claiming one per wait, or
// server.Listener's claim-then-wait, would leave a connection queued in
// between until the next client came).
func TestWaitForNewConnectionWithAConnectionAlreadyPendingIsAnsweredAtOnce(t *testing.T) {
	for _, ms := range []int32{-1, 60_000} { // both far longer than ask waits
		t.Run(fmt.Sprintf("%d ms", ms), func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			dial(t, s.listen())
			s.waitStatus("1 pending", pendingIs(1))
			r := ask[*messages.WaitResult](s, &messages.WaitForNewConnection{TimeoutMs: ms})
			if !r.Available || r.TimedOut || r.Error.Failed() {
				t.Fatalf("got %v, want available", r)
			}
			if e := s.status().Error; e.Failed() {
				t.Fatalf("serverError %v after a wait that did not time out", e)
			}
		})
	}
}

func TestWaitForNewConnectionWithoutTimeOutIsAnsweredWhenAClientConnects(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	waiter := newProbe(t, s.sys)
	startWait(s, waiter, -1)
	noMessage[*messages.WaitResult](t, waiter)

	dial(t, addr)
	r := next[*messages.WaitResult](t, waiter)
	if !r.Available || r.TimedOut || r.Error.Failed() {
		t.Fatalf("got %v, want available", r)
	}
}

func TestWaitForNewConnectionTimesOut(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	waiter := newProbe(t, s.sys)
	startWait(s, waiter, 100)
	r := next[*messages.WaitResult](t, waiter)
	if r.Available || !r.TimedOut || r.Error.Failed() {
		t.Fatalf("got %v, want timed out", r)
	}

	// A wait is answered once: a client after the time-out changes nothing.
	dial(t, addr)
	s.waitStatus("1 pending", pendingIs(1))
	noMessage[*messages.WaitResult](t, waiter)
}

// As Qt (docs/qt-behaviour.md, 9b): a wait that times out, a poll included,
// sets serverError() to SocketTimeoutError. Qt 6.4 does so only until its
// first accept (16): after that its time-outs report the last accept's
// EAGAIN, TemporaryError "Temporary error"; tcpactor stays with the
// time-out.
func TestWaitForNewConnectionTimeOutSetsTheServerError(t *testing.T) {
	for _, tc := range []struct {
		ms            int32
		afterAnAccept bool
	}{{0, false}, {50, false}, {0, true}, {50, true}} {
		t.Run(fmt.Sprintf("%d ms, after an accept %v", tc.ms, tc.afterAnAccept), func(t *testing.T) {
			ms := tc.ms
			s := startServer(t, ServerOptions{})
			addr := s.listen()
			if tc.afterAnAccept {
				dial(t, addr)
				s.waitStatus("1 pending", pendingIs(1))
				claimNext(s, newProbe(t, s.sys).pid)
			}
			if e := s.status().Error; e.Failed() {
				t.Fatalf("error before the wait: %v", e)
			}
			if r := ask[*messages.WaitResult](s, &messages.WaitForNewConnection{TimeoutMs: ms}); !r.TimedOut {
				t.Fatalf("got %v, want timed out", r)
			}
			if e := s.status().Error; e.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT || e.GetMessage() != "Network operation timed out" {
				t.Fatalf("serverError %v, want SocketTimeoutError \"Network operation timed out\"", e)
			}
		})
	}
}

func TestWaitForNewConnectionAnswersEveryWaiterWhenOneClientConnects(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	waiters := []*probe{newProbe(t, s.sys), newProbe(t, s.sys), newProbe(t, s.sys)}
	for i, w := range waiters {
		startWait(s, w, []int32{-1, 5000, 5000}[i])
	}
	s.status() // the waits are queued before this: all are registered now

	dial(t, addr)
	for i, w := range waiters {
		if r := next[*messages.WaitResult](t, w); !r.Available || r.TimedOut {
			t.Fatalf("waiter %d: got %v, want available", i, r)
		}
	}
}

func TestWaitForNewConnectionWhenNotListeningIsAnsweredAtOnceWithAnError(t *testing.T) {
	cases := []struct {
		name  string
		setup func(*testServer)
	}{
		{"never listened", func(*testServer) {}},
		{"closed", func(s *testServer) {
			s.listen()
			ask[*messages.Closed](s, &messages.Close{})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			tc.setup(s)
			// -1: a server that kept this waiter would never answer.
			r := ask[*messages.WaitResult](s, &messages.WaitForNewConnection{TimeoutMs: -1})
			if r.Available || !r.Error.Failed() {
				t.Fatalf("got %v, want an error and nothing available", r)
			}
		})
	}
}

func TestWaitForNewConnectionDoesNotBlockTheServer(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	waiter := newProbe(t, s.sys)
	startWait(s, waiter, -1)

	// A blocked actor would answer nothing until a client came: none comes.
	if st := s.status(); !st.Listening || st.Pending != 0 {
		t.Fatalf("status while a waiter waits: %v", st)
	}
	expectNoError(t, "SetMaxPendingConnections", ask[*messages.Ack](s, &messages.SetMaxPendingConnections{Max: 5}).Error)

	dial(t, addr)
	if r := next[*messages.WaitResult](t, waiter); !r.Available {
		t.Fatalf("got %v, want available", r)
	}
}

func TestCloseAnswersTheWaitersWithAnError(t *testing.T) {
	s := startServer(t, ServerOptions{})
	s.listen()
	waiters := []*probe{newProbe(t, s.sys), newProbe(t, s.sys)}
	startWait(s, waiters[0], -1)
	startWait(s, waiters[1], 5000)

	ask[*messages.Closed](s, &messages.Close{})
	for i, w := range waiters {
		if r := next[*messages.WaitResult](t, w); r.Available || !r.Error.Failed() {
			t.Fatalf("waiter %d: got %v, want an error and nothing available", i, r)
		}
	}
}

// ---------------------------------------------------------------------------
// pauseAccepting() / resumeAccepting()

func TestPauseAcceptingLeavesNewClientsInTheBacklogUntilResume(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	dial(t, addr)
	s.waitStatus("1 pending", pendingIs(1))
	// The accept goroutine went back into Accept after the first client; let
	// it get there, so that the pause has to interrupt an Accept in progress.
	time.Sleep(20 * time.Millisecond)

	expectNoError(t, "PauseAccepting", ask[*messages.Ack](s, &messages.PauseAccepting{}).Error)
	dial(t, addr)
	statusStays(s, "paused: the second client is not accepted", func(st *messages.ServerStatus) bool {
		return st.Paused && st.Listening && st.AcceptedTotal == 1
	})

	expectNoError(t, "ResumeAccepting", ask[*messages.Ack](s, &messages.ResumeAccepting{}).Error)
	s.waitStatus("the second client accepted", func(st *messages.ServerStatus) bool {
		return !st.Paused && st.AcceptedTotal == 2 && st.Pending == 2
	})
}

// An Accept that is past its deadline check when the room goes (a pause, a
// lower limit) can still return a connection: the accept gate holds it, as
// the kernel backlog would, until there is room again or the gate closes.
// The race is too narrow to provoke through sockets reliably, so this drives
// the gate the way the accept goroutine and the actor do.
func TestAcceptGateHoldsAConnectionThatArrivesAfterItsRoomWent(t *testing.T) {
	cases := []struct {
		name    string
		release func(*acceptGate)
		want    bool // the connection may go on to the actor
	}{
		{"room again", func(g *acceptGate) { g.update(1, 0) }, true},
		{"gate closed", func(g *acceptGate) { g.close() }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			g := newAcceptGate(l.(*net.TCPListener))
			g.update(1, 0)
			if _, ok := g.enter(); !ok {
				t.Fatal("enter refused with room for one")
			}
			g.update(0, 0) // the room goes while the Accept runs

			passed := make(chan bool, 1)
			go func() { passed <- g.leave(true) }()
			select {
			case <-passed:
				t.Fatal("a connection accepted after its room went was let through")
			case <-time.After(quietPeriod):
			}
			tc.release(g)
			select {
			case ok := <-passed:
				if ok != tc.want {
					t.Fatalf("leave reported %v, want %v", ok, tc.want)
				}
			case <-time.After(replyTimeout):
				t.Fatal("the held connection was never released")
			}
		})
	}
}

// Qt 6.4 crashes here (docs/qt-behaviour.md, 10d); tcpactor answers.
func TestPauseAndResumeAreAnsweredWhenNotListening(t *testing.T) {
	cases := []struct {
		name  string
		setup func(*testServer)
	}{
		{"never listened", func(*testServer) {}},
		{"closed", func(s *testServer) {
			s.listen()
			ask[*messages.Closed](s, &messages.Close{})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			tc.setup(s)
			for _, msg := range []any{&messages.PauseAccepting{}, &messages.ResumeAccepting{}} {
				expectNoError(t, fmt.Sprintf("%T", msg), ask[*messages.Ack](s, msg).Error)
			}
			// ... and keeps working.
			dial(t, s.listen())
			s.waitStatus("1 pending", pendingIs(1))
		})
	}
}

// Qt lifts a pause when nextPendingConnection() returns a socket
// (docs/qt-behaviour.md, 10b); in tcpactor a pause lasts until
// ResumeAccepting (README, "Where tcpactor differs from Qt 6.4").
func TestNextPendingConnectionDoesNotLiftAPause(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	dial(t, addr)
	s.waitStatus("1 pending", pendingIs(1))
	expectNoError(t, "PauseAccepting", ask[*messages.Ack](s, &messages.PauseAccepting{}).Error)
	dial(t, addr)

	if pc := claimNext(s, newProbe(t, s.sys).pid); pc.Connection == nil {
		t.Fatal("nothing claimed")
	}
	statusStays(s, "still paused after a claim", func(st *messages.ServerStatus) bool {
		return st.Paused && st.AcceptedTotal == 1
	})
}

// As Qt (docs/qt-behaviour.md, 10c): the pause belongs to the listening
// socket; listening again after close() accepts normally.
func TestPauseDoesNotCarryOverCloseAndListen(t *testing.T) {
	s := startServer(t, ServerOptions{})
	s.listen()
	expectNoError(t, "PauseAccepting", ask[*messages.Ack](s, &messages.PauseAccepting{}).Error)
	ask[*messages.Closed](s, &messages.Close{})

	dial(t, s.listen())
	s.waitStatus("the client accepted", func(st *messages.ServerStatus) bool {
		return !st.Paused && st.Pending == 1
	})
}

// ---------------------------------------------------------------------------
// addPendingConnection()

// spawnOutsideConnection makes a ConnectionActor the server knows nothing of.
func spawnOutsideConnection(t *testing.T, s *testServer) (*actor.PID, net.Conn) {
	t.Helper()
	client, conn := socketPair(t) // connection_helpers_test.go
	pid := s.sys.Root.Spawn(ConnectionProps(conn, 1000, nil, ConnectionConfig{}))
	t.Cleanup(func() { _ = s.sys.Root.StopFuture(pid).Wait() })
	return pid, client
}

func TestAddPendingConnectionAdoptsAConnectionMadeOutsideTheServer(t *testing.T) {
	s := startServer(t, ServerOptions{})
	s.listen()
	sub := newProbe(t, s.sys)
	expectNoError(t, "Subscribe", ask[*messages.Ack](s, &messages.Subscribe{Subscriber: sub.pid}).Error)
	pid, client := spawnOutsideConnection(t, s)

	expectNoError(t, "AddPendingConnection", ask[*messages.Ack](s, &messages.AddPendingConnection{Connection: pid}).Error)
	if st := s.status(); st.Pending != 1 || !st.HasPendingConnections {
		t.Fatalf("status after adding: %v", st)
	}
	if ev := next[*messages.NewConnection](t, sub); !ev.Connection.Equal(pid) || !ev.Server.Equal(s.pid) || ev.Pending != 1 {
		t.Fatalf("NewConnection %v, want connection %v on server %v with 1 pending", ev, pid, s.pid)
	}

	owner := newProbe(t, s.sys)
	if pc := claimNext(s, owner.pid); !pc.Connection.Equal(pid) {
		t.Fatalf("claimed %v, want the adopted %v", pc.Connection, pid)
	}
	// It is a real claim: the adopted connection now reads for its owner.
	if _, err := client.Write([]byte("adopted")); err != nil {
		t.Fatal(err)
	}
	if r := next[*messages.Received](t, owner); string(r.Data) != "adopted" {
		t.Fatalf("owner received %q", r.Data)
	}
}

func TestAddPendingConnectionRefusesBadRequests(t *testing.T) {
	cases := []struct {
		name string
		pid  func(t *testing.T, s *testServer) *actor.PID
	}{
		{"no connection", func(*testing.T, *testServer) *actor.PID { return nil }},
		{"the same connection twice", func(t *testing.T, s *testServer) *actor.PID {
			pid, _ := spawnOutsideConnection(t, s)
			expectNoError(t, "first AddPendingConnection", ask[*messages.Ack](s, &messages.AddPendingConnection{Connection: pid}).Error)
			return pid
		}},
		{"the server itself", func(_ *testing.T, s *testServer) *actor.PID { return s.pid }},
		{"a made-up PID", func(_ *testing.T, s *testServer) *actor.PID { return actor.NewPID(s.pid.Address, "conn-made-up") }},
		{"an actor that is not a connection", func(t *testing.T, s *testServer) *actor.PID { return newProbe(t, s.sys).pid }},
		{"a connection with a local handler", func(t *testing.T, s *testServer) *actor.PID {
			_, conn := socketPair(t)
			pid := s.sys.Root.Spawn(ConnectionProps(conn, 1000, nil, ConnectionConfig{Handler: EchoHandler()}))
			t.Cleanup(func() { _ = s.sys.Root.StopFuture(pid).Wait() })
			return pid
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			s.listen()
			pid := tc.pid(t, s)
			before := s.status().Pending
			if a := ask[*messages.Ack](s, &messages.AddPendingConnection{Connection: pid}); !a.Error.Failed() {
				t.Fatal("AddPendingConnection accepted")
			}
			if st := s.status(); st.Pending != before {
				t.Fatalf("pending %d after a refused add, want %d", st.Pending, before)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// the cap on live connections (Ranch's max_connections)

func TestMaxConnectionsPausesAcceptingUntilAConnectionEnds(t *testing.T) {
	cases := []struct {
		name   string
		opts   ServerOptions
		listen *messages.ListenOptions
	}{
		{"server option", ServerOptions{MaxConnections: 2}, nil},
		{"listen option", ServerOptions{}, &messages.ListenOptions{MaxConnections: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.opts)
			addr := listenWith(s, tc.listen)
			owner := newProbe(t, s.sys)
			for range 3 {
				dial(t, addr)
			}
			s.waitStatus("2 pending", pendingIs(2))
			claimed := claimNext(s, owner.pid)
			// Claimed connections still count: only an ending makes room.
			statusStays(s, "at the cap: the third client is not accepted", func(st *messages.ServerStatus) bool {
				return st.MaxConnections == 2 && st.AcceptedTotal == 2 && st.Active == 2 && st.Pending == 1
			})

			s.sys.Root.Stop(claimed.Connection)
			s.waitStatus("the third client accepted", func(st *messages.ServerStatus) bool {
				return st.AcceptedTotal == 3 && st.Active == 2 && st.Pending == 2
			})
		})
	}
}

// TestAClaimantThatOwnsHearsPendingConnectionBeforeTheFirstReceived: an
// actor that claims a connection for itself (NextPendingConnection with no
// owner, sent with ctx.Request) hears the claim's answer before the
// connection's first Received, even when the client's bytes wait in the
// kernel and the connection reads them the moment it has its owner. The
// connection answers the claim itself (SetOwner.claimant), so both come from
// it, in order; when the server answered, a read that won the race reached
// the owner first (the fuzzer found it).
func TestAClaimantThatOwnsHearsPendingConnectionBeforeTheFirstReceived(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	sub := newProbe(t, s.sys)
	subscribe(s, sub.pid)
	got := make(chan any, 64)
	claimant := s.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.NewConnection:
			ctx.Request(s.pid, &messages.NextPendingConnection{})
		case *messages.PendingConnection, *messages.Received:
			got <- m
		}
	}))
	t.Cleanup(func() { _ = s.sys.Root.StopFuture(claimant).Wait() })
	for i := range 20 {
		c := dial(t, addr)
		if _, err := io.WriteString(c, "hello"); err != nil {
			t.Fatal(err)
		}
		next[*messages.NewConnection](t, sub) // queued, its bytes in the kernel
		s.sys.Root.Send(claimant, &messages.NewConnection{})
		for _, want := range []string{"*messages.PendingConnection", "*messages.Received"} {
			select {
			case m := <-got:
				if g := fmt.Sprintf("%T", m); g != want {
					t.Fatalf("claim %d: the claimant heard %s first, want %s", i, g, want)
				}
			case <-time.After(testkit.ProbeTimeout):
				t.Fatalf("claim %d: no %s", i, want)
			}
		}
		c.Close()
	}
}

// TestAClaimOfAConnectionThatEndedMeanwhileIsAnswered: a connection that
// stopped after the server took it from the queue cannot answer the claim
// it was handed (SetOwner.claimant); the dead letters answer it, with the
// connection, whose end the claimant learns as any watcher does.
func TestAClaimOfAConnectionThatEndedMeanwhileIsAnswered(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	sub := newProbe(t, s.sys)
	subscribe(s, sub.pid)
	c := dial(t, addr)
	defer c.Close()
	next[*messages.NewConnection](t, sub) // a connection ran: the dead-letter answerer is in place
	claimant := newProbe(t, s.sys)
	gone := actor.NewPID(s.sys.Address(), "conn-ended-before-it-could-answer")
	s.sys.Root.Send(gone, &messages.SetOwner{Owner: claimant.pid, Claimant: claimant.pid, Reply: &messages.PendingConnection{}})
	if r := next[*messages.PendingConnection](t, claimant); !r.Connection.Equal(gone) {
		t.Fatalf("the claim was answered %v, want the connection %v", r, gone)
	}
}
