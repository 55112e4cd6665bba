package actors

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// answeringOwner answers each Received with answer(data), as a request from
// itself (so that an ended connection still answers it), and closes on
// PeerClosed: the plain owner actor of a request/response protocol, claiming
// with default ClaimOptions.
func answeringOwner(answer func([]byte) []byte, outcomes chan<- any) *actor.Props {
	return actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.Received:
			ctx.Request(m.Connection, &messages.Write{Data: answer(m.Data), AckId: 1, Demand: 1})
		case *messages.PeerClosed:
			ctx.Send(m.Connection, &messages.Close{})
		case *messages.WriteAck, *messages.WriteFailed, *messages.Disconnected:
			outcomes <- m
		}
	})
}

// A request followed by a half-close (HTTP/1.0, nc -N) is answered in full:
// the peer's FIN does not close the connection under the owner's answer.
func TestAHalfClosedRequestToAnOwnerActorIsAnsweredInFull(t *testing.T) {
	sys := testkit.NewSystem(t)
	for _, size := range []int{1, 100, 64 << 10, 1 << 20} {
		cc, sc := socketPair(t)
		conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
		outcomes := make(chan any, 64)
		owner := sys.Root.Spawn(answeringOwner(func(b []byte) []byte { return bytes.Repeat([]byte{'a'}, size) }, outcomes))
		t.Cleanup(func() { _ = sys.Root.StopFuture(owner).Wait() })
		claim(t, sys, conn, owner, nil)
		if _, err := cc.Write([]byte("q")); err != nil {
			t.Fatal(err)
		}
		_ = cc.CloseWrite()
		got, err := readAll(t, cc)
		if err != nil || len(got) != size {
			t.Fatalf("answer of %d bytes: the client read %d bytes, %v", size, len(got), err)
		}
	}
}

// A Write that reaches a connection whose actor has stopped is answered with
// WriteFailed, here and from another node; the other requests get their
// error replies.
func TestAWriteToAnEndedConnectionIsAnsweredWithWriteFailedLocallyAndAcrossNodes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		connSys    *actor.ActorSystem
		senderSys  *actor.ActorSystem
		senderNode func(*actor.PID) *actor.PID
	}{
		{"local", testkit.NewSystem(t), nil, func(p *actor.PID) *actor.PID { return p }},
		{"from another node", testkit.Remote(t, 0), testkit.Remote(t, 1), remotePID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			senderSys := tc.senderSys
			if senderSys == nil {
				senderSys = tc.connSys
			}
			_, sc := socketPair(t)
			conn := startConn(t, tc.connSys, sc, 1, nil, ConnectionConfig{})
			// The connection must have started (that installs the answer).
			info(t, tc.connSys, conn)
			if err := tc.connSys.Root.StopFuture(conn).Wait(); err != nil {
				t.Fatal(err)
			}
			got := make(chan any, 8)
			sender := senderSys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
				switch m := ctx.Message().(type) {
				case *actor.Started:
					target := tc.senderNode(conn)
					ctx.Request(target, &messages.Write{Data: []byte("too late"), AckId: 42})
					ctx.Request(target, &messages.CloseWrite{})
				case *messages.WriteFailed, *messages.Ack:
					got <- m
				}
			}))
			t.Cleanup(func() { _ = senderSys.Root.StopFuture(sender).Wait() })
			var failed *messages.WriteFailed
			var ack *messages.Ack
			for failed == nil || ack == nil {
				select {
				case m := <-got:
					switch m := m.(type) {
					case *messages.WriteFailed:
						failed = m
					case *messages.Ack:
						ack = m
					}
				case <-time.After(connWait):
					t.Fatalf("no answer within %v: WriteFailed %v, Ack %v", connWait, failed, ack)
				}
			}
			if failed.AckId != 42 || !failed.Error.Failed() || failed.Connection.GetId() != conn.Id {
				t.Fatalf("WriteFailed %v", failed)
			}
			if !ack.Error.Failed() {
				t.Fatalf("CloseWrite to an ended connection answered %v, want an error", ack)
			}
		})
	}
}

// Close on a connection whose peer reads slowly and keeps sending: every
// byte acknowledged by WriteAck reaches the peer, then EOF, not a reset.
func TestCloseDeliversEveryAcknowledgedByteToASlowReaderThatKeepsSendingThenEOF(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	end := watchEnd(t, sys, conn)
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, &messages.ClaimOptions{InitialCredit: 1})

	// The peer sends all the time (the connection reads one chunk, then has
	// no credit: the rest waits unread in the kernel) ...
	var stop atomic.Bool
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		chunk := make([]byte, 4<<10)
		for i := 0; i < 4096 && !stop.Load(); i++ {
			_ = cc.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := cc.Write(chunk); err != nil && !errors.Is(err, syscall.EAGAIN) && !isTimeout(err) {
				return
			}
		}
	}()
	// ... while the owner writes far more than the socket buffers hold.
	const writes, size = 64, 32 << 10
	for id := uint64(1); id <= writes; id++ {
		sys.Root.Send(conn, &messages.Write{Data: bytes.Repeat([]byte{byte(id)}, size), AckId: id})
	}
	closed := sys.Root.RequestFuture(conn, &messages.Close{}, connWait)

	// The peer reads slowly, 16 KiB every 5 ms.
	var got []byte
	buf := make([]byte, 16<<10)
	var readErr error
	deadline := time.Now().Add(connWait)
	for time.Now().Before(deadline) {
		_ = cc.SetReadDeadline(deadline)
		n, err := cc.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			readErr = err
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop.Store(true)
	<-sendDone
	if readErr != io.EOF {
		t.Fatalf("the peer read %d bytes then %v, want EOF", len(got), readErr)
	}
	acked := 0
	for done := false; !done; {
		switch m := owner.next(t).(type) {
		case *messages.Received: // the first chunk, before the Close
		case *messages.WriteAck:
			acked++
		case *messages.WriteFailed:
			t.Fatalf("write %d failed: %v", m.AckId, m.Error)
		case *messages.Disconnected:
			if m.Error.Failed() {
				t.Fatalf("Disconnected: %v", m.Error)
			}
			done = true
		default:
			t.Fatalf("owner got %s", describe(m))
		}
	}
	if len(got) != writes*size || acked != writes {
		t.Fatalf("the peer read %d bytes, %d writes acknowledged (%d bytes)", len(got), acked, acked*size)
	}
	if res, err := closed.Result(); err != nil || res.(*messages.Ack).Error.Failed() {
		t.Fatalf("Close answered %v, %v", res, err)
	}
	cc.Close()
	waitClosed(t, end, "the connection's end once the peer closed")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A half-closing peer that reads slowly gets the whole answer, then EOF.
func TestAHalfClosingPeerGetsTheWholeAnswerThenEOF(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	outcomes := make(chan any, 64)
	owner := sys.Root.Spawn(answeringOwner(func([]byte) []byte { return bytes.Repeat([]byte{'z'}, 900<<10) }, outcomes))
	t.Cleanup(func() { _ = sys.Root.StopFuture(owner).Wait() })
	claim(t, sys, conn, owner, nil)
	if _, err := cc.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = cc.CloseWrite()
	time.Sleep(50 * time.Millisecond) // the owner's answer is queued behind a slow reader
	got, err := readAll(t, cc)
	if err != nil || len(got) != 900<<10 {
		t.Fatalf("the client read %d bytes, %v; want %d then EOF", len(got), err, 900<<10)
	}
}

// As Qt's readChannelFinished after a reset: ErrorOccurred, PeerClosed, then
// Disconnected, with Qt's words.
func TestAPeerResetIsErrorOccurredThenPeerClosedThenDisconnectedInQtsWords(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, nil)
	_ = cc.SetLinger(0)
	cc.Close()
	e := expectNext[*messages.ErrorOccurred](t, owner).Error
	if e.GetCode() != messages.SocketError_SOCKET_ERROR_REMOTE_HOST_CLOSED || !bytes.HasPrefix([]byte(e.GetMessage()), []byte(messages.RemoteHostClosedText)) {
		t.Fatalf("ErrorOccurred after a reset: %v, want RemoteHostClosedError %q", e, messages.RemoteHostClosedText)
	}
	expectNext[*messages.PeerClosed](t, owner)
	if d := expectNext[*messages.Disconnected](t, owner); d.Error.GetCode() != messages.SocketError_SOCKET_ERROR_REMOTE_HOST_CLOSED {
		t.Fatalf("Disconnected after a reset: %v", d.Error)
	}
}

// An owner that neither answers nor closes after PeerClosed is closed for,
// gracefully, after its time-out.
func TestAnOwnerThatDoesNotCloseAfterPeerClosedIsClosedForAfterItsTimeOut(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, &messages.ClaimOptions{PeerCloseTimeoutMs: 200})
	sys.Root.Send(conn, &messages.Write{Data: []byte("partial answer")})
	_ = cc.CloseWrite()
	expectNext[*messages.ErrorOccurred](t, owner)
	expectNext[*messages.PeerClosed](t, owner)
	if d := expectNext[*messages.Disconnected](t, owner); d.Error.Failed() {
		t.Fatalf("Disconnected after the owner time-out: %v", d.Error)
	}
	if got, err := readAll(t, cc); err != nil || string(got) != "partial answer" {
		t.Fatalf("the client read %q, %v", got, err)
	}
}

// As Qt (which had read the bytes): close() of a server with an unclaimed
// connection whose client sent data ends it with FIN, not a reset.
func TestServerCloseEndsAnUnclaimedConnectionThatSentDataWithEOFNotAReset(t *testing.T) {
	for _, how := range []string{"Close", "Stop"} {
		t.Run(how, func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			c := dial(t, s.listen())
			if _, err := c.Write(bytes.Repeat([]byte("unread "), 1000)); err != nil {
				t.Fatal(err)
			}
			s.waitStatus("1 pending", pendingIs(1))
			if how == "Close" {
				ask[*messages.Closed](s, &messages.Close{})
			} else if err := s.sys.Root.StopFuture(s.pid).Wait(); err != nil {
				t.Fatal(err)
			}
			// The client still sends a little; the connection still reads.
			// (A reset would fail this write, or the read below.)
			if _, err := c.Write([]byte("more")); err != nil {
				t.Fatalf("the client's write after the close: %v", err)
			}
			mustReadEOF(t, c)
		})
	}
}

// blockingHandler holds its connection's Receive in Received until release
// is closed, so that messages pile up in the connection's mailbox.
type blockingHandler struct {
	BaseHandler
	inside  chan struct{}
	release chan struct{}
}

func (h *blockingHandler) Received(*Socket, []byte) {
	close(h.inside)
	<-h.release
}

// A Write that waits in the mailbox behind a Stop is not dropped: the
// connection has stopped when its turn comes, and its sender still gets
// WriteFailed, as it would had the Write come after the end. (Proto.Actor
// drops the user messages a stopped actor's mailbox still holds; the fuzz
// target found a Write with an ack_id that got no answer.)
func TestAWriteQueuedBehindAStopIsAnsweredWriteFailed(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	h := &blockingHandler{inside: make(chan struct{}), release: make(chan struct{})}
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{Handler: func() Handler { return h }})
	end := watchEnd(t, sys, conn)
	writer := newInbox(t, sys)
	if _, err := cc.Write([]byte("hold")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.inside:
	case <-time.After(connWait):
		t.Fatal("the handler got nothing")
	}
	sys.Root.RequestWithCustomSender(conn, &messages.Write{Data: []byte("late"), AckId: 7}, writer.pid)
	sys.Root.Stop(conn)
	close(h.release)
	waitClosed(t, end, "the connection's end")
	m := writer.next(t)
	if _, ok := m.(*actor.DeadLetterResponse); ok {
		m = writer.next(t) // Proto.Actor's answer to any request that reached no actor
	}
	wf, ok := m.(*messages.WriteFailed)
	if !ok || wf.AckId != 7 || !wf.Error.Failed() {
		t.Fatalf("the writer got %s, want WriteFailed with ack_id 7 and an error", describe(m))
	}
}
