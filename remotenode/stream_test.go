package remotenode_test

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/servertest"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/owner"
	"github.com/tcpactor/tcpactor/remotenode"
	"github.com/tcpactor/tcpactor/server"
)

// streamNodes are two shared nodes with their stream transports.
func streamNodes(t *testing.T) (a, b *actor.ActorSystem, ta, tb *remotenode.StreamTransport) {
	t.Helper()
	a, b = testkit.Remote(t, 0), testkit.Remote(t, 1)
	ta, tb = remotenode.StreamOf(a), remotenode.StreamOf(b)
	if ta == nil || tb == nil {
		t.Fatal("the shared nodes run no stream transport")
	}
	return a, b, ta, tb
}

// carried checks that both nodes' streams carried messages since the
// counts before.
func carried(t *testing.T, ta, tb *remotenode.StreamTransport, sentA, sentB uint64) {
	t.Helper()
	if ta.Sent() == sentA || tb.Sent() == sentB || ta.Received() == 0 || tb.Received() == 0 {
		t.Fatalf("the streams carried nothing: A sent %d → %d, B sent %d → %d", sentA, ta.Sent(), sentB, tb.Sent())
	}
}

// An owner on node B serves, through the streams, connections accepted on
// node A: echoes of every size come back byte for byte, and a request
// followed by a half-close is answered in full.
func TestStreamCarriesAnEchoOwnerOnAnotherNode(t *testing.T) {
	a, b, ta, tb := streamNodes(t)
	sentA, sentB := ta.Sent(), tb.Sent()
	srv, addr := servertest.Listening(t, a, server.Options{})
	view := servertest.ViewFrom(b, srv)
	own := b.Root.Spawn(owner.New(owner.Config{Server: view.PID(), Handler: owner.Echo()}))
	t.Cleanup(func() { _ = owner.Stop(b.Root, own, view.PID(), 5*time.Second) })
	for _, size := range []int{1, 100, 64 << 10, 4 << 20} {
		req := make([]byte, size)
		for i := range req {
			req[i] = byte(i * 7)
		}
		servertest.HalfClosedEcho(t, addr, req, 30*time.Second)
	}
	carried(t, ta, tb, sentA, sentB)
}

// counter is an owner handler that counts what it receives and reports
// the count with the connection's end.
type counter struct {
	n    int
	done chan<- counted
}

type counted struct {
	n   int
	err *messages.Error
}

func (c *counter) Connected(*owner.Owned)                            {}
func (c *counter) Received(o *owner.Owned, data []byte)              { c.n += len(data); o.Demand(1) }
func (c *counter) WriteAcked(*owner.Owned, uint64)                   {}
func (c *counter) WriteFailed(*owner.Owned, uint64, *messages.Error) {}
func (c *counter) Disconnected(_ *owner.Owned, err *messages.Error) {
	c.done <- counted{c.n, err}
}

// A connection's last Received and its Disconnected reach an owner on
// another node before the connection's Terminated: every client sends N
// bytes and closes, and the owner counts all N, then sees an orderly end.
// A lane that let Terminated overtake the data would end connections early
// ("connection lost") with bytes missing.
func TestStreamDeliversEveryByteBeforeTheConnectionsEnd(t *testing.T) {
	a, b, ta, tb := streamNodes(t)
	sentA, sentB := ta.Sent(), tb.Sent()
	srv, addr := servertest.Listening(t, a, server.Options{})
	view := servertest.ViewFrom(b, srv)
	const clients, size = 32, 256 << 10
	done := make(chan counted, clients)
	own := b.Root.Spawn(owner.New(owner.Config{Server: view.PID(),
		Handler: func() owner.Handler { return &counter{done: done} }}))
	t.Cleanup(func() { _ = owner.Stop(b.Root, own, view.PID(), 5*time.Second) })
	data := bytes.Repeat([]byte{'x'}, size)
	for range clients {
		c := servertest.Dial(t, addr)
		go func() {
			_, _ = c.Write(data)
			c.Close()
		}()
	}
	for i := range clients {
		select {
		case got := <-done:
			if got.n != size || got.err.Failed() {
				t.Fatalf("connection %d ended after %d of %d bytes: %v", i, got.n, size, got.err.GetMessage())
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%d of %d connections ended", i, clients)
		}
	}
	carried(t, ta, tb, sentA, sentB)
}

// A Write too large for a frame does not vanish: its sender gets
// WriteFailed, as from a connection that could not take it.
func TestStreamAnswersAWriteTooLargeForAFrameWithWriteFailed(t *testing.T) {
	a, b, _, tb := streamNodes(t)
	owner := testkit.NewProbe(t, b)
	before := tb.Unsendable()
	conn := actor.NewPID(a.Address(), "conn-somewhere")
	b.Root.RequestWithCustomSender(conn, &messages.Write{Data: make([]byte, remotenode.MaxRemoteMessage+1), AckId: 9}, owner.PID)
	wf := testkit.Next[*messages.WriteFailed](t, owner)
	if wf.AckId != 9 || wf.Error.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_RESOURCE || !wf.Connection.Equal(conn) {
		t.Fatalf("got %v, want WriteFailed for ack 9 with SocketResourceError", wf)
	}
	if tb.Unsendable() != before+1 {
		t.Fatalf("unsendable %d → %d, want one more", before, tb.Unsendable())
	}
}

// A burst of messages to another node goes out in batches: the frames that
// follow each other closely wait for the stream's writer, which gathers
// them, so the burst costs far fewer writes than frames (one write per
// frame made the two nodes of a busy stream spend most of a round trip in
// system calls, and woke the peer's reader for each).
func TestStreamGathersABurstOfMessagesIntoFewWrites(t *testing.T) {
	a, b, ta, _ := streamNodes(t)
	const n = 2000
	got := make(chan struct{})
	var count atomic.Int64
	sink := b.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*messages.Demand); ok {
			if count.Add(1) == n {
				close(got)
			}
		}
	}))
	t.Cleanup(func() { b.Root.Stop(sink) })
	target := actor.NewPID(b.Address(), sink.Id)
	sent, writes := ta.Sent(), ta.Writes()
	for range n {
		a.Root.Send(target, &messages.Demand{N: 1})
	}
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatalf("%d of %d messages arrived", count.Load(), n)
	}
	frames, w := ta.Sent()-sent, ta.Writes()-writes
	if frames < n || w > frames/2 {
		t.Fatalf("%d frames in %d writes, want at least %d frames in at most half as many writes", frames, w, n)
	}
	t.Logf("%d frames in %d writes", frames, w)
}
