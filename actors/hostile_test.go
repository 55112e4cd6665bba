package actors

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// Hostile peers: clients that flood without reading, reset in the middle of
// a transfer, trickle, or come while the server is out of descriptors.

// echoOnce sends msg on c and checks that exactly it comes back.
func echoOnce(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(connWait))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("echo %q: write: %v", msg, err)
	}
	back := make([]byte, len(msg))
	if _, err := io.ReadFull(c, back); err != nil || string(back) != msg {
		t.Fatalf("echo %q: read %q, %v", msg, back, err)
	}
	_ = c.SetDeadline(time.Time{})
}

// vmRSS is this process's resident set, in bytes.
func vmRSS(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// floodBoundPerConn is what one echo connection may pin while its peer
// sends without reading: the reads in flight (credit × chunk, 4 × 32 KiB)
// and the echo writes they became, which the echo handler holds to the same
// credit; doubled for the allocator's slack.
const floodBoundPerConn = 2 * 2 * DefaultInitialCredit * DefaultReadChunkSize

// TestFloodingClientsThatNeverReadPinBoundedMemory floods an echo server
// from 16 clients that never read what comes back. The server must stop
// reading once its echoes cannot be written (TCP pushes back on the
// flooders, who stall long before they have sent what they wanted), keep
// its heap and RSS within a bound proportional to the connections, not to
// the bytes sent, and still serve another client. Like the other memory
// test it runs alone in a child process: the heap is the process's.
func TestFloodingClientsThatNeverReadPinBoundedMemory(t *testing.T) {
	if os.Getenv(aloneEnv) == "" {
		runAlone(t)
		return
	}
	const floods, want = 16, int64(64 << 20)
	s := startServer(t, ServerOptions{Connection: ConnectionConfig{Handler: EchoHandler()}})
	addr := s.listen()
	heap0, rss0 := heapInUse(), vmRSS(t)
	var total func() int64
	var ends []<-chan []byte
	{
		var written []*counter
		for i := range floods {
			w, end := streamTo(dial(t, addr), want, uint64(i), 64<<10)
			written = append(written, w)
			ends = append(ends, end)
		}
		total = func() int64 {
			var n int64
			for _, w := range written {
				n += w.Load()
			}
			return n
		}
	}
	if !waitStalled(total) {
		t.Fatal("the flooders never stalled: the server reads whatever it is sent")
	}
	if sent := total(); sent >= floods*want/2 {
		t.Fatalf("the flooders sent %d MiB of %d: the server did not push back", sent>>20, floods*want>>20)
	}
	// Pushed back, not cut off: every flooder is still connected, waiting.
	for i, end := range ends {
		select {
		case <-end:
			t.Fatalf("flooder %d stopped sending: its connection failed instead of pushing back", i)
		default:
		}
	}
	if st := s.status(); st.Active != floods {
		t.Fatalf("%d live connections, want the %d flooders", st.Active, floods)
	}
	heapGrew, rssGrew := heapInUse()-heap0, vmRSS(t)-rss0
	t.Logf("%d flooders stalled after %d MiB; heap +%d KiB, RSS +%d KiB", floods, total()>>20, heapGrew>>10, rssGrew>>10)
	if bound := int64(floods*floodBoundPerConn + heapBound); heapGrew > bound {
		t.Fatalf("heap grew by %d KiB under %d flooders, bound %d KiB", heapGrew>>10, floods, bound>>10)
	}
	if bound := int64(floods*floodBoundPerConn + 4*heapBound); rssGrew > bound {
		t.Fatalf("RSS grew by %d KiB under %d flooders, bound %d KiB", rssGrew>>10, floods, bound>>10)
	}
	echoOnce(t, dial(t, addr), "still serving")
}

// TestAThousandResetsMidTransferLeakNothing has 1,000 clients each send a
// burst to an echo server and reset the connection (SO_LINGER 0) while the
// echo is on its way back, 20 at a time. Every connection must end, and
// the server's goroutines and descriptors come back to what they were; the
// server then serves a new client.
func TestAThousandResetsMidTransferLeakNothing(t *testing.T) {
	const clients, parallel = 1000, 20
	// The garbage collector closes the descriptor of a net.Conn nobody
	// references any more (a finalizer): with it off, a socket the
	// connection forgot to close stays counted.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	s := startServer(t, ServerOptions{Connection: ConnectionConfig{Handler: EchoHandler()}})
	addr := s.listen()
	fds0, g0 := testkit.OpenFDs(t), runtime.NumGoroutine()
	burst := bytes.Repeat([]byte("0123456789abcdef"), 4<<10) // 64 KiB: more than one read
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	next := make(chan int, clients)
	for i := range clients {
		next <- i
	}
	close(next)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs <- resetMidTransfer(addr, burst, i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := s.waitStatus("every reset connection to end", func(st *messages.ServerStatus) bool { return st.Active == 0 })
	if st.AcceptedTotal != clients {
		t.Fatalf("accepted %d connections, want %d", st.AcceptedTotal, clients)
	}
	waitFor(t, "descriptors back to the baseline", func() bool { return testkit.OpenFDs(t) <= fds0 })
	waitFor(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= g0 })
	echoOnce(t, dial(t, addr), "after a thousand resets")
}

// resetMidTransfer sends burst, reads a little of the echo, and resets.
func resetMidTransfer(addr string, burst []byte, i int) error {
	c, err := net.DialTimeout("tcp", addr, connWait)
	if err != nil {
		return fmt.Errorf("client %d: dial: %w", i, err)
	}
	tc := c.(*net.TCPConn)
	_ = tc.SetDeadline(time.Now().Add(connWait))
	if _, err := tc.Write(burst); err != nil {
		tc.Close()
		return fmt.Errorf("client %d: write: %w", i, err)
	}
	// Some of the echo has come back: the server is mid-transfer.
	if _, err := io.ReadFull(tc, make([]byte, 1+i%1024)); err != nil {
		tc.Close()
		return fmt.Errorf("client %d: read the echo: %w", i, err)
	}
	_ = tc.SetLinger(0)
	return tc.Close()
}

// waitFor polls cond every 10 ms for up to connWait.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(connWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The idle time-outs of the slowloris tests. The trickle that must be cut
// sends a byte every 4 × slowlorisIdle, the one that must not every
// trickleIdle/10, so that neither outcome depends on how promptly a loaded
// machine runs timers and goroutines.
const (
	slowlorisIdle = 150 * time.Millisecond
	trickleIdle   = 600 * time.Millisecond
)

// slowlorisServer is a server with an idle time-out whose connections are
// claimed by a test owner that grants a credit per Received, so only the
// peer's pace decides when they end.
func slowlorisServer(t *testing.T, idle time.Duration) (s *testServer, addr string, owner *actor.PID, ended chan *messages.Disconnected) {
	s = startServer(t, ServerOptions{Connection: ConnectionConfig{IdleTimeout: idle}})
	ended = make(chan *messages.Disconnected, 256)
	owner = s.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.NewConnection:
			ctx.Request(m.Server, &messages.NextPendingConnection{Owner: ctx.Self()})
		case *messages.Received:
			ctx.Send(m.Connection, &messages.Demand{N: 1})
		case *messages.Disconnected:
			ended <- m
		}
	}))
	t.Cleanup(func() { _ = s.sys.Root.StopFuture(owner).Wait() })
	subscribe(s, owner)
	return s, s.listen(), owner, ended
}

// trickled is what a trickling client did: bytes sent, and the longest
// time between two of them (a busy machine can stretch the gap).
type trickled struct {
	sent    int
	longest time.Duration
}

// trickle sends one byte every gap until stop closes or a write fails.
func trickle(c net.Conn, gap time.Duration, stop <-chan struct{}) <-chan trickled {
	out := make(chan trickled, 1)
	go func() {
		var r trickled
		defer func() { out <- r }()
		var last time.Time
		for {
			_ = c.SetWriteDeadline(time.Now().Add(connWait))
			if _, err := c.Write([]byte{'x'}); err != nil {
				return
			}
			now := time.Now()
			if r.sent > 0 {
				r.longest = max(r.longest, now.Sub(last))
			}
			last, r.sent = now, r.sent+1
			select {
			case <-stop:
				return
			case <-time.After(gap):
			}
		}
	}()
	return out
}

// TestSlowlorisClientsAreCutByTheIdleTimeout has 50 clients trickle a byte
// every 4 × IdleTimeout: each connection ends with SocketTimeoutError and
// its client sees the end, while a client that talks at a normal pace is
// still served.
func TestSlowlorisClientsAreCutByTheIdleTimeout(t *testing.T) {
	const clients = 50
	s, addr, _, ended := slowlorisServer(t, slowlorisIdle)
	stop := make(chan struct{})
	defer close(stop)
	for range clients {
		trickle(dial(t, addr), 4*slowlorisIdle, stop)
	}
	for i := range clients {
		select {
		case d := <-ended:
			if d.Error.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT {
				t.Fatalf("connection %d of %d ended with %v, want SocketTimeoutError", i+1, clients, d.Error)
			}
		case <-time.After(connWait):
			t.Fatalf("only %d of %d trickling connections were cut", i, clients)
		}
	}
	s.waitStatus("every slowloris connection to end", func(st *messages.ServerStatus) bool { return st.Active == 0 })
}

// TestTrickleFasterThanTheIdleTimeoutKeepsAConnectionOpen pins a limit of
// IdleTimeout (and of ReadTimeout, which is per read): any byte resets
// it, so a client that sends one byte a little more often than the
// time-out keeps its connection — and its descriptor — for as long as it
// likes. Here one byte every IdleTimeout/10 for 5 × IdleTimeout: the
// connection is still open, having received a byte at a time. A server
// that must bound a slow request's total time needs a deadline of its own
// in the handler (or a minimum rate, which tcpactor does not have).
func TestTrickleFasterThanTheIdleTimeoutKeepsAConnectionOpen(t *testing.T) {
	s, addr, _, ended := slowlorisServer(t, trickleIdle)
	c := dial(t, addr)
	stop := make(chan struct{})
	done := trickle(c, trickleIdle/10, stop)
	s.waitStatus("the trickling connection to be claimed", func(st *messages.ServerStatus) bool {
		return st.Active == 1 && st.Pending == 0
	})
	var cut *messages.Disconnected
	select {
	case cut = <-ended:
	case <-time.After(5 * trickleIdle):
	}
	close(stop)
	r := <-done
	// The trickle only counts if no gap between its bytes came near the
	// time-out: a starved test goroutine is not a slow client.
	if r.longest >= trickleIdle/2 || r.sent < 10 {
		t.Skipf("the machine is too busy to trickle: %d bytes, longest gap %v for a time-out of %v", r.sent, r.longest, trickleIdle)
	}
	if cut != nil {
		t.Fatalf("the connection trickled a byte every %v at most ended with %v", r.longest, cut.Error)
	}
	if st := s.status(); st.Active != 1 {
		t.Fatalf("active connections %d, want the trickling one still open", st.Active)
	}
}

// ---------------------------------------------------------------------------
// Out of descriptors, and back

const emfileEchoEnv = "TCPACTOR_TEST_EMFILE_ECHO"

// TestAServerOutOfDescriptorsServesAgainOnceConnectionsEnd goes beyond
// TestAcceptErrorIsReportedWithBackOffWhenOutOfDescriptors, where the
// descriptors are freed by the test behind the server's back: here the
// server's own connections use them up. An echo server in a child process
// with a limit of about 40 free descriptors gets 60 clients: the first are
// served while the rest wait in the backlog and the server reports
// AcceptError. When the served clients leave, the waiting ones are
// accepted and served, and so are new ones — nothing to restart.
func TestAServerOutOfDescriptorsServesAgainOnceConnectionsEnd(t *testing.T) {
	child := startEchoEMFILEChild(t)
	addr := net.JoinHostPort("127.0.0.1", child.expect("PORT")[0])
	const clients = 60
	conns := make([]net.Conn, clients)
	for i := range conns {
		conns[i] = dial(t, addr)
	}
	// NewConnection events reach the child's reporter before the
	// AcceptError that follows them: once it is out, the accepted are known.
	child.waitAcceptError()
	accepted := map[int]bool{}
	for _, p := range child.newConnections() {
		accepted[p] = true
	}
	if len(accepted) == 0 || len(accepted) >= clients {
		child.fatalf("%d of %d clients accepted before the descriptors ran out", len(accepted), clients)
	}
	var served, waiting []net.Conn
	for _, c := range conns {
		if accepted[c.LocalAddr().(*net.TCPAddr).Port] {
			served = append(served, c)
		} else {
			waiting = append(waiting, c)
		}
	}
	for i, c := range served {
		echoOnce(t, c, fmt.Sprintf("served %d", i))
	}
	for _, c := range served {
		c.Close()
	}
	for i, c := range waiting {
		echoOnce(t, c, fmt.Sprintf("waited %d", i))
	}
	for i := range 5 {
		c := dial(t, addr)
		echoOnce(t, c, fmt.Sprintf("new %d", i))
		waiting = append(waiting, c)
	}
	// The child's connections end with their clients, so that its server
	// stops with nothing left running.
	for _, c := range waiting {
		c.Close()
	}
	child.send("EXIT")
	child.wait()
}

// startEchoEMFILEChild starts TestHelperProcessEMFILEEcho behind the
// parent's view of TestAcceptErrorIsReportedWithBackOffWhenOutOfDescriptors'
// child (emfileChild), which reads any child's lines the same way.
func startEchoEMFILEChild(t *testing.T) *emfileChild {
	t.Helper()
	return startChild(t, "TestHelperProcessEMFILEEcho", emfileEchoEnv)
}

// newConnections are the peer ports of the child's NEWCONNECTION lines so
// far.
func (c *emfileChild) newConnections() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ports []int
	for _, l := range c.lines {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "NEWCONNECTION" {
			p, _ := strconv.Atoi(f[1])
			ports = append(ports, p)
		}
	}
	return ports
}

// TestHelperProcessEMFILEEcho is the child process of
// TestAServerOutOfDescriptorsServesAgainOnceConnectionsEnd: an echo server
// on 127.0.0.1 whose process may open only about 40 more descriptors. It
// prints "PORT n", "NEWCONNECTION peer-port" and "ACCEPTERROR code ms", and
// ends at "EXIT", at EOF, or after 30 s.
func TestHelperProcessEMFILEEcho(t *testing.T) {
	if os.Getenv(emfileEchoEnv) != "1" {
		t.Skip("the child process of TestAServerOutOfDescriptorsServesAgainOnceConnectionsEnd")
	}
	_, port := startReportingChild(t, "EMFILE echo child", ServerOptions{Connection: ConnectionConfig{Handler: EchoHandler()}}, 40)
	fmt.Printf("PORT %d\n", port)
	in := make([]byte, 64)
	for {
		n, err := os.Stdin.Read(in)
		if err != nil || strings.Contains(string(in[:n]), "EXIT") {
			return
		}
	}
}
