//go:build linux

package actors

import (
	"bytes"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// readOutcome is what one direct Read returned.
type readOutcome struct {
	data []byte
	err  error
}

// directRead reads once from d in a goroutine; the result comes on the
// channel.
func directRead(d *DirectIO, size int) <-chan readOutcome {
	ch := make(chan readOutcome, 1)
	go func() {
		b := make([]byte, size)
		n, err := d.Read(b)
		ch <- readOutcome{b[:n], err}
	}()
	return ch
}

func waitRead(t *testing.T, ch <-chan readOutcome) readOutcome {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(connWait):
		t.Fatalf("the direct Read did not return within %v", connWait)
		return readOutcome{}
	}
}

// An owner on the connection's node that claims with direct_io reads and
// writes the socket itself; the connection sends no Received and counts
// what the owner moved.
func TestAnOwnerLentTheSocketReadsAndWritesItAndTheConnectionCountsTheBytes(t *testing.T) {
	for _, mode := range []ReadMode{ReadLoop, ReadGoroutine} {
		t.Run(mode.String(), func(t *testing.T) {
			sys, c, conn, in, d := lentSocket(t, ConnectionConfig{ReadMode: mode})

			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			if r := waitRead(t, directRead(d, 64)); string(r.data) != "ping" || r.err != nil {
				t.Fatalf("direct Read = %q, %v; want ping", r.data, r.err)
			}
			if n := d.Write([]byte("pong")); n != 4 {
				t.Fatalf("direct Write = %d; want 4", n)
			}
			if got := readN(t, c, 4); string(got) != "pong" {
				t.Fatalf("the client read %q; want pong", got)
			}
			if i := info(t, sys, conn); i.BytesReceived != 4 || i.BytesSent != 4 {
				t.Errorf("ConnectionInfo counts %d received, %d sent; want 4 and 4", i.BytesReceived, i.BytesSent)
			}
			in.nothingFor(t, 50*time.Millisecond) // no Received, no WriteAck
		})
	}
}

// Close takes the socket back from a Read waiting in it; what the peer
// sends next is read and thrown away by the connection (a lingering
// close), and the owner hears Disconnected as ever.
func TestCloseTakesTheLentSocketBackFromAWaitingRead(t *testing.T) {
	sys, c, conn, in, d := lentSocket(t, ConnectionConfig{})
	pending := directRead(d, 64)
	time.Sleep(20 * time.Millisecond) // let the Read wait in the socket, most likely (either way it must end)

	ack := call[*messages.Ack](t, sys, conn, &messages.Close{})
	if r := waitRead(t, pending); !errors.Is(r.err, ErrNotLent) || len(r.data) != 0 {
		t.Fatalf("the waiting Read returned %q, %v; want ErrNotLent", r.data, r.err)
	}
	if ack.Error.Failed() {
		t.Fatalf("Close: %v", ack.Error)
	}
	expectNext[*messages.Disconnected](t, in)
	if n := d.Write([]byte("late")); n != 0 {
		t.Errorf("direct Write after Close wrote %d bytes; want 0 (writing goes through the connection)", n)
	}
	// The connection reads the peer's bytes again (and throws them away)
	// until the peer closes: the linger ends with the client's FIN.
	ended := watchEnd(t, sys, conn)
	if _, err := c.Write(bytes.Repeat([]byte("x"), 64<<10)); err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(t, c); len(got) != 0 || err != nil {
		t.Fatalf("the client read %q, %v; want EOF", got, err)
	}
	_ = c.CloseWrite()
	waitClosed(t, ended, "the connection's end after the peer's FIN")
}

// The peer's FIN read through the lent socket is told as ever
// (ErrorOccurred, PeerClosed) and writing goes on through Write messages.
func TestThePeersFINReadThroughTheLentSocketIsToldAsEver(t *testing.T) {
	sys := testkit.NewSystem(t)
	c, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	in := newInbox(t, sys)
	claim(t, sys, conn, in.pid, &messages.ClaimOptions{DirectIo: true, KeepOpenOnPeerClose: true})
	d := expectNext[*DirectIO](t, in)

	_, _ = c.Write([]byte("bye"))
	_ = c.CloseWrite()
	if r := waitRead(t, directRead(d, 64)); string(r.data) != "bye" || r.err != nil {
		t.Fatalf("direct Read = %q, %v; want bye", r.data, r.err)
	}
	if r := waitRead(t, directRead(d, 64)); !errors.Is(r.err, ErrNotLent) {
		t.Fatalf("direct Read at the FIN = %q, %v; want ErrNotLent", r.data, r.err)
	}
	if e := expectNext[*messages.ErrorOccurred](t, in); e.Error.GetCode() != messages.SocketError_SOCKET_ERROR_REMOTE_HOST_CLOSED {
		t.Errorf("ErrorOccurred %v; want RemoteHostClosed", e.Error)
	}
	expectNext[*messages.PeerClosed](t, in)
	sys.Root.RequestWithCustomSender(conn, &messages.Write{Data: []byte("answer"), AckId: 7}, in.pid)
	if a := expectNext[*messages.WriteAck](t, in); a.AckId != 7 {
		t.Fatalf("WriteAck %d; want 7", a.AckId)
	}
	if i := info(t, sys, conn); i.BytesReceived != 3 || i.BytesSent != 6 {
		t.Errorf("ConnectionInfo counts %d received, %d sent; want 3 and 6", i.BytesReceived, i.BytesSent)
	}
	sys.Root.Send(conn, &messages.Close{})
	if got, err := readAll(t, c); string(got) != "answer" || err != nil {
		t.Fatalf("the client read %q, %v; want answer, then EOF", got, err)
	}
}

// A Write message (from anyone) turns direct writing off until the
// connection has written it: bytes never overtake each other.
func TestAQueuedWriteTurnsDirectWritingOffUntilItIsWritten(t *testing.T) {
	sys, c, conn, in, d := lentSocket(t, ConnectionConfig{})

	big := bytes.Repeat([]byte("m"), 16<<20) // more than the kernel holds: it queues
	sys.Root.RequestWithCustomSender(conn, &messages.Write{Data: big, AckId: 1}, in.pid)
	if n := d.Write([]byte("direct")); n != 0 {
		t.Fatalf("direct Write with a Write queued wrote %d bytes; want 0", n)
	}
	got := readN(t, c, len(big))
	if !bytes.Equal(got, big) {
		t.Fatal("the client did not read the queued Write whole")
	}
	expectNext[*messages.WriteAck](t, in)
	// Writing is lent again once the queue is empty: after the message that
	// emptied it, which WriteAck follows.
	if n := d.Write([]byte("direct")); n != 6 {
		t.Fatalf("direct Write after the queue emptied wrote %d bytes; want 6", n)
	}
	if got := readN(t, c, 6); string(got) != "direct" {
		t.Fatalf("the client read %q; want direct", got)
	}
}

// A hand-over to another owner takes the lent socket back: the new owner
// gets Received.
func TestAHandOverTakesTheLentSocketBack(t *testing.T) {
	sys, c, conn, first, d := lentSocket(t, ConnectionConfig{})
	pending := directRead(d, 64)
	time.Sleep(20 * time.Millisecond) // let the Read wait in the socket, most likely (either way it must end)

	second := newInbox(t, sys)
	claim(t, sys, conn, second.pid, nil)
	if r := waitRead(t, pending); !errors.Is(r.err, ErrNotLent) {
		t.Fatalf("the first owner's waiting Read returned %q, %v; want ErrNotLent", r.data, r.err)
	}
	if n := d.Write([]byte("from the first")); n != 0 {
		t.Fatalf("the first owner wrote %d bytes directly after the hand-over; want 0", n)
	}
	sys.Root.RequestWithCustomSender(conn, &messages.Write{Data: []byte("second"), AckId: 1}, second.pid)
	expectNext[*messages.WriteAck](t, second)
	if got := readN(t, c, 6); string(got) != "second" {
		t.Fatalf("the client read %q; want only the second owner's bytes", got)
	}
	_, _ = c.Write([]byte("to the second"))
	if got := collect(t, sys, conn, second, len("to the second")); string(got) != "to the second" {
		t.Fatalf("the second owner got %q", got)
	}
	first.nothingFor(t, 50*time.Millisecond)
}

// Reads through the lent socket keep the connection out of its idle
// time-out; silence ends it as ever.
func TestReadsThroughTheLentSocketCountForTheIdleTimeOut(t *testing.T) {
	const idle = time.Second
	_, c, _, in, d := lentSocket(t, ConnectionConfig{IdleTimeout: idle})

	start := time.Now()
	for time.Since(start) < 5*idle/2 {
		_, _ = c.Write([]byte("x"))
		if r := waitRead(t, directRead(d, 8)); r.err != nil {
			t.Fatalf("direct Read after %v: %v (the idle time-out is %v)", time.Since(start), r.err, idle)
		}
		time.Sleep(idle / 10)
	}
	r := waitRead(t, directRead(d, 8))
	if !errors.Is(r.err, ErrNotLent) {
		t.Fatalf("direct Read of a silent connection = %q, %v; want ErrNotLent", r.data, r.err)
	}
	e := expectNext[*messages.ErrorOccurred](t, in)
	if e.Error.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT {
		t.Fatalf("ErrorOccurred %v; want the idle time-out", e.Error)
	}
	expectNext[*messages.Disconnected](t, in)
}

// A read deadline wakes a direct Read with os.ErrDeadlineExceeded; the
// socket stays lent.
func TestADeadlineWakesADirectRead(t *testing.T) {
	_, c, _, _, d := lentSocket(t, ConnectionConfig{})
	pending := directRead(d, 8)
	d.SetReadDeadline(time.Unix(1, 0))
	if r := waitRead(t, pending); !errors.Is(r.err, os.ErrDeadlineExceeded) {
		t.Fatalf("direct Read past its deadline = %q, %v; want os.ErrDeadlineExceeded", r.data, r.err)
	}
	d.SetReadDeadline(time.Time{})
	_, _ = c.Write([]byte("on"))
	if r := waitRead(t, directRead(d, 8)); string(r.data) != "on" || r.err != nil {
		t.Fatalf("direct Read after the deadline was cleared = %q, %v; want on", r.data, r.err)
	}
}

// Where the socket cannot be lent — an owner on another node, a connection
// with a ReadTimeout (which only its own reader keeps) — direct_io is
// ignored: the owner gets Received as ever.
func TestDirectIOIsNotLentWhereItCannotBe(t *testing.T) {
	for _, tc := range []struct {
		name     string
		connSys  *actor.ActorSystem
		ownerSys *actor.ActorSystem
		cfg      ConnectionConfig
	}{
		{"owner on another node", testkit.Remote(t, 0), testkit.Remote(t, 1), ConnectionConfig{}},
		{"ReadTimeout", testkit.NewSystem(t), nil, ConnectionConfig{ReadTimeout: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ownerSys := tc.ownerSys
			if ownerSys == nil {
				ownerSys = tc.connSys
			}
			c, sc := socketPair(t)
			conn := startConn(t, tc.connSys, sc, 1, nil, tc.cfg)
			in := newInbox(t, ownerSys)
			claim(t, tc.connSys, conn, remotePID(in.pid), &messages.ClaimOptions{DirectIo: true})
			_, _ = c.Write([]byte("hello"))
			if r := expectNext[*messages.Received](t, in); string(r.Data) != "hello" {
				t.Fatalf("Received %q; want hello", r.Data)
			}
		})
	}
}

// lentSocket starts a connection over a fresh socket pair with cfg and an
// owner (in) that claims it asking for direct I/O, and returns the lent
// socket (d) it got; c is the peer's end.
func lentSocket(t *testing.T, cfg ConnectionConfig) (sys *actor.ActorSystem, c *net.TCPConn, conn *actor.PID, in *inbox, d *DirectIO) {
	t.Helper()
	sys = testkit.NewSystem(t)
	c, sc := socketPair(t)
	conn = startConn(t, sys, sc, 1, nil, cfg)
	in = newInbox(t, sys)
	claim(t, sys, conn, in.pid, &messages.ClaimOptions{DirectIo: true})
	return sys, c, conn, in, expectNext[*DirectIO](t, in)
}
