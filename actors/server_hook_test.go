package actors

import (
	"context"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/messages"
)

// The incomingConnection() hook (ServerOptions.IncomingConnection): it sees
// every accepted net.Conn and may reject, wrap or replace it, taking as long
// as it likes without holding up the server.

// expectClosedByServer reads from a client until the server's side is gone:
// EOF or a reset, never a time-out (the connection still open) nor data.
func expectClosedByServer(t testing.TB, c net.Conn) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(replyTimeout)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(make([]byte, 64))
	switch {
	case n > 0:
		t.Fatalf("read %d bytes, want the connection closed", n)
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("connection still open after %v", replyTimeout)
	case err == nil:
		t.Fatal("read nothing and no error")
	}
}

// recordingConn is what a wrapping hook returns (as a TLS or PROXY-header
// wrapper would): it records that the server used it.
type recordingConn struct {
	net.Conn
	read   atomic.Int64
	closed atomic.Bool
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *recordingConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// blockingHook holds every connection until the test releases it (then it
// returns a wrapper of it) or the server stops.
type blockingHook struct {
	ignoreCtx bool                // a careless hook: waits for the release only
	entered   chan net.Conn       // a connection on entering the hook
	release   chan struct{}       // each send lets one hook return
	returned  chan *recordingConn // what a released hook returned
	cancelled chan struct{}       // a hook saw its ctx cancelled
	running   atomic.Int32
}

func newBlockingHook() *blockingHook {
	return &blockingHook{
		entered:   make(chan net.Conn, 16),
		release:   make(chan struct{}),
		returned:  make(chan *recordingConn, 16),
		cancelled: make(chan struct{}, 16),
	}
}

func (h *blockingHook) hook(ctx context.Context, c net.Conn) (net.Conn, error) {
	h.running.Add(1)
	defer h.running.Add(-1)
	h.entered <- c
	done := ctx.Done()
	if h.ignoreCtx {
		done = nil
	}
	select {
	case <-h.release:
		w := &recordingConn{Conn: c}
		h.returned <- w
		return w, nil
	case <-done:
		h.cancelled <- struct{}{}
		return nil, ctx.Err()
	}
}

func (h *blockingHook) waitEntered(t testing.TB) net.Conn {
	t.Helper()
	select {
	case c := <-h.entered:
		return c
	case <-time.After(replyTimeout):
		t.Fatal("no connection entered the hook")
		return nil
	}
}

func (h *blockingHook) releaseOne(t testing.TB) {
	t.Helper()
	select {
	case h.release <- struct{}{}:
	case <-time.After(replyTimeout):
		t.Fatal("no hook waiting to be released")
	}
}

func TestIncomingConnectionHookCanRejectAConnection(t *testing.T) {
	reject := errors.New("not welcome")
	cases := []struct {
		name string
		hook IncomingConnectionFunc
	}{
		{"an error", func(context.Context, net.Conn) (net.Conn, error) { return nil, reject }},
		{"an error with the connection", func(_ context.Context, c net.Conn) (net.Conn, error) { return c, reject }},
		{"no connection", func(context.Context, net.Conn) (net.Conn, error) { return nil, nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, ServerOptions{IncomingConnection: tc.hook})
			addr := s.listen()
			sub := newProbe(t, s.sys)
			expectNoError(t, "Subscribe", ask[*messages.Ack](s, &messages.Subscribe{Subscriber: sub.pid}).Error)

			expectClosedByServer(t, dial(t, addr))
			s.waitStatus("the rejected connection gone", func(st *messages.ServerStatus) bool {
				return st.AcceptedTotal == 1 && st.Pending == 0 && st.Active == 0
			})
			noMessage[*messages.NewConnection](t, sub)
		})
	}
}

func TestIncomingConnectionHookCanWrapTheConnection(t *testing.T) {
	cases := []struct {
		name string
		end  func(t *testing.T, s *testServer) // ends the connection one way or another
	}{
		{"claimed, then closed by its owner", func(t *testing.T, s *testServer) {
			owner := newProbe(t, s.sys)
			pc := claimNext(s, owner.pid)
			// The ConnectionActor reads through the wrapper...
			if r := next[*messages.Received](t, owner); string(r.Data) != "through the wrapper" {
				t.Fatalf("owner received %q", r.Data)
			}
			// ... and closes the wrapper.
			s.sys.Root.Send(pc.Connection, &messages.Close{})
		}},
		{"unclaimed when the server stops", func(t *testing.T, s *testServer) {
			if err := s.sys.Root.StopFuture(s.pid).Wait(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wrappers := make(chan *recordingConn, 1)
			s := startServer(t, ServerOptions{IncomingConnection: func(_ context.Context, c net.Conn) (net.Conn, error) {
				w := &recordingConn{Conn: c}
				wrappers <- w
				return w, nil
			}})
			c := dial(t, s.listen())
			if _, err := c.Write([]byte("through the wrapper")); err != nil {
				t.Fatal(err)
			}
			s.waitStatus("1 pending", pendingIs(1))
			w := <-wrappers

			tc.end(t, s)
			eventually(t, "the wrapper closed", w.closed.Load)
			expectClosedByServer(t, c)
		})
	}
}

func TestIncomingConnectionHookCanReplaceTheConnection(t *testing.T) {
	// The replacement is another TCP connection: to a "backend" the test
	// listens on, so both ends of it are in the test's hands.
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	backendPort := uint32(backend.Addr().(*net.TCPAddr).Port)
	s := startServer(t, ServerOptions{IncomingConnection: func(ctx context.Context, c net.Conn) (net.Conn, error) {
		c.Close() // the hook owns what it replaces
		var d net.Dialer
		return d.DialContext(ctx, "tcp", backend.Addr().String())
	}})
	client := dial(t, s.listen())
	expectClosedByServer(t, client)
	if err := backend.(*net.TCPListener).SetDeadline(time.Now().Add(replyTimeout)); err != nil {
		t.Fatal(err)
	}
	b, err := backend.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s.waitStatus("1 pending", pendingIs(1))

	owner := newProbe(t, s.sys)
	pc := claimNext(s, owner.pid)
	if pc.Info.GetPeerPort() != backendPort {
		t.Fatalf("pending connection's peer port %d, want the replacement's %d", pc.Info.GetPeerPort(), backendPort)
	}
	if _, err := b.Write([]byte("from the replacement")); err != nil {
		t.Fatal(err)
	}
	if r := next[*messages.Received](t, owner); string(r.Data) != "from the replacement" {
		t.Fatalf("owner received %q", r.Data)
	}
	s.sys.Root.Send(pc.Connection, &messages.Close{})
	expectClosedByServer(t, b)
}

func TestSlowIncomingConnectionHookDoesNotBlockTheServer(t *testing.T) {
	h := newBlockingHook()
	s := startServer(t, ServerOptions{IncomingConnection: h.hook})
	addr := s.listen()
	dial(t, addr)
	h.waitEntered(t)
	// A second connection is accepted and handed to the hook while the first
	// is still in it; the actor answers meanwhile.
	dial(t, addr)
	h.waitEntered(t)
	if st := s.status(); st.AcceptedTotal != 2 || st.Active != 2 || st.Pending != 0 {
		t.Fatalf("status while two hooks run: %v", st)
	}

	h.releaseOne(t)
	s.waitStatus("1 pending", pendingIs(1))
	h.releaseOne(t)
	s.waitStatus("2 pending", pendingIs(2))
}

// A hook that serves its connections itself, as Qt's Threaded Fortune
// Server does, serves as many at once as connect: the pending limit counts
// the queue only, as in Qt (18), where every incomingConnection() is
// followed by the next accept whatever the hook did with the descriptor.
func TestConnectionsHeldByTheHookAreNotCappedByThePendingLimit(t *testing.T) {
	const clients = DefaultMaxPendingConnections + 10
	release := make(chan struct{})
	var held atomic.Int32
	s := startServer(t, ServerOptions{IncomingConnection: func(ctx context.Context, c net.Conn) (net.Conn, error) {
		defer c.Close()
		held.Add(1)
		defer held.Add(-1)
		if _, err := c.Write([]byte{'!'}); err != nil {
			return nil, err
		}
		select { // keep serving until every client has been served
		case <-release:
		case <-ctx.Done():
		}
		return nil, errors.New("served by the hook")
	}})
	addr := s.listen()
	conns := make([]net.Conn, clients)
	for i := range conns {
		conns[i] = dial(t, addr)
	}
	for i, c := range conns {
		if err := c.SetReadDeadline(time.Now().Add(replyTimeout)); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil {
			t.Fatalf("client %d of %d not served while the hook holds the others: %v (%d held)", i+1, clients, err, held.Load())
		}
	}
	st := s.status()
	if st.AcceptedTotal != clients || st.Active != clients || st.Pending != 0 {
		t.Fatalf("status with %d connections in the hook: %v", clients, st)
	}
	close(release)
	s.waitStatus("the hook done with every connection", func(st *messages.ServerStatus) bool { return st.Active == 0 })
	eventually(t, "every hook returned", func() bool { return held.Load() == 0 })
}

// MaxConnections (Ranch's cap on live connections) is what bounds the
// connections in the hook.
func TestConnectionsInTheHookCountAgainstMaxConnections(t *testing.T) {
	h := newBlockingHook()
	s := startServer(t, ServerOptions{IncomingConnection: h.hook, MaxConnections: 2})
	addr := s.listen()
	for range 3 {
		dial(t, addr)
	}
	h.waitEntered(t)
	h.waitEntered(t)
	statusStays(s, "two in the hook reach the cap: the third client is not accepted", func(st *messages.ServerStatus) bool {
		return st.AcceptedTotal == 2 && st.Active == 2
	})

	h.releaseOne(t)
	s.waitStatus("1 pending", pendingIs(1))
	pc := claimNext(s, newProbe(t, s.sys).pid)
	s.sys.Root.Send(pc.Connection, &messages.Abort{}) // one connection ends: room for the third
	h.waitEntered(t)
	s.waitStatus("the third client accepted", func(st *messages.ServerStatus) bool {
		return st.AcceptedTotal == 3 && st.Active == 2
	})
	h.releaseOne(t)
	h.releaseOne(t)
	s.waitStatus("2 pending", pendingIs(2))
}

// What hooks hand back joins the queue even past the pending limit (nothing
// is dropped); accepting then stops until claims bring the queue under it.
func TestAQueueFilledByTheHookStopsAcceptingUntilClaimsMakeRoom(t *testing.T) {
	h := newBlockingHook()
	s := startServer(t, ServerOptions{IncomingConnection: h.hook, MaxPendingConnections: 2})
	addr := s.listen()
	for range 4 {
		dial(t, addr)
	}
	for range 4 {
		h.waitEntered(t) // the queue is empty: all four are accepted
	}
	for range 4 {
		h.releaseOne(t)
	}
	s.waitStatus("4 pending, over the limit of 2", pendingIs(4))
	dial(t, addr)
	statusStays(s, "a full queue: the fifth client is not accepted", func(st *messages.ServerStatus) bool {
		return st.AcceptedTotal == 4
	})

	owner := newProbe(t, s.sys)
	claimNext(s, owner.pid)
	claimNext(s, owner.pid)
	statusStays(s, "at the limit: the fifth client is still not accepted", func(st *messages.ServerStatus) bool {
		return st.AcceptedTotal == 4 && st.Pending == 2
	})
	claimNext(s, owner.pid)
	h.waitEntered(t)
	h.releaseOne(t)
	s.waitStatus("the fifth client pending", func(st *messages.ServerStatus) bool {
		return st.AcceptedTotal == 5 && st.Pending == 2
	})
}

func TestStoppingTheServerCancelsABlockedHookAndClosesItsConnection(t *testing.T) {
	h := newBlockingHook()
	s := startServer(t, ServerOptions{IncomingConnection: h.hook})
	c := dial(t, s.listen())
	h.waitEntered(t)

	if err := s.sys.Root.StopFuture(s.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.cancelled:
	case <-time.After(replyTimeout):
		t.Fatal("the hook's ctx was not cancelled")
	}
	expectClosedByServer(t, c)
	eventually(t, "the hook goroutine returned", func() bool { return h.running.Load() == 0 })
}

func TestCloseWhileAHookRunsClosesItsConnection(t *testing.T) {
	h := newBlockingHook()
	s := startServer(t, ServerOptions{IncomingConnection: h.hook})
	c := dial(t, s.listen())
	h.waitEntered(t)

	ask[*messages.Closed](s, &messages.Close{})
	expectClosedByServer(t, c)
	// What the hook returns after the close is closed, not queued.
	h.releaseOne(t)
	w := <-h.returned
	eventually(t, "what the hook returned closed", w.closed.Load)
	statusStays(s, "nothing pending or live", func(st *messages.ServerStatus) bool {
		return st.Pending == 0 && st.Active == 0
	})
}

func TestAConnectionAHookReturnsAfterTheServerStoppedIsClosed(t *testing.T) {
	h := newBlockingHook()
	h.ignoreCtx = true
	s := startServer(t, ServerOptions{IncomingConnection: h.hook})
	c := dial(t, s.listen())
	h.waitEntered(t)

	if err := s.sys.Root.StopFuture(s.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	expectClosedByServer(t, c)
	h.releaseOne(t)
	w := <-h.returned
	eventually(t, "what the hook returned closed", w.closed.Load)
}
