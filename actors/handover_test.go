package actors

import (
	"context"
	"errors"
	"net"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// mailboxPosts reports each message posted to a mailbox: a test learns that
// a message is queued at an actor without a guess at timing.
type mailboxPosts chan any

func (p mailboxPosts) MailboxStarted() {}
func (p mailboxPosts) MessagePosted(m any) {
	select {
	case p <- actor.UnwrapEnvelopeMessage(m):
	default:
	}
}
func (p mailboxPosts) MessageReceived(any) {}
func (p mailboxPosts) MailboxEmpty()       {}

// queuedThenStopped starts a ServerActor whose mailbox reports its posts
// and listens; runs before (with the address), suspends the mailbox
// (Proto.Actor's SuspendMailbox: system messages run, user messages wait),
// runs after, which must make the server's goroutines post a message of
// want's type, and stops the server once that message is queued: Stop
// overtakes it, and Proto.Actor drops it.
func queuedThenStopped(t *testing.T, opts ServerOptions, want any, before func(addr string), after func()) {
	t.Helper()
	sys := testkit.NewSystem(t)
	posts := make(mailboxPosts, 256)
	pid := sys.Root.Spawn(NewServer(opts).Configure(actor.WithMailbox(actor.Unbounded(posts))))
	res, err := sys.Root.RequestFuture(pid, &messages.Listen{Address: "127.0.0.1"}, replyTimeout).Result()
	if err != nil || !res.(*messages.ListenResult).Ok {
		t.Fatalf("listen: %v %v", res, err)
	}
	proc, ok := sys.ProcessRegistry.GetLocal(pid.Id)
	if !ok {
		t.Fatal("the server is not registered")
	}
	before(net.JoinHostPort("127.0.0.1", itoa(res.(*messages.ListenResult).Port)))
	proc.SendSystemMessage(pid, &actor.SuspendMailbox{})
	after()
	bound := time.NewTimer(replyTimeout)
	defer bound.Stop()
	for queued := false; !queued; {
		select {
		case m := <-posts:
			queued = reflect.TypeOf(m) == reflect.TypeOf(want)
		case <-bound.C:
			t.Fatalf("no %T reached the server's mailbox", want)
		}
	}
	if err := sys.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestAConnectionAcceptedAsTheServerStopsIsClosedByItsGate: the accept
// goroutine's acceptedConn is queued at the ServerActor when it stops; the
// client must see its connection end (the gate held it and closed it), not
// hang with the descriptor left to the garbage collector.
func TestAConnectionAcceptedAsTheServerStopsIsClosedByItsGate(t *testing.T) {
	var addr string
	var client net.Conn
	queuedThenStopped(t, ServerOptions{}, &acceptedConn{},
		func(a string) { addr = a },
		func() { client = dial(t, addr) })
	client.SetReadDeadline(time.Now().Add(replyTimeout))
	if _, err := client.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the client of a connection accepted as the server stopped read: %v; want its end", err)
	}
}

// TestAHookResultQueuedAsTheServerStopsIsClosed: the incomingConnection
// hook's connection (here a wrapper, as TLS and PROXY headers make one) is
// on its way to the ServerActor in hookDone as it stops: the server must
// close it, not only the raw socket under it.
func TestAHookResultQueuedAsTheServerStopsIsClosed(t *testing.T) {
	called, release := make(chan struct{}), make(chan struct{})
	wrapped := &closeRecorder{}
	opts := ServerOptions{IncomingConnection: func(_ context.Context, conn net.Conn) (net.Conn, error) {
		close(called)
		<-release
		wrapped.Conn = conn
		return wrapped, nil
	}}
	queuedThenStopped(t, opts, &hookDone{},
		func(addr string) { dial(t, addr); <-called },
		func() { close(release) })
	if !wrapped.isClosed() {
		t.Fatal("the hook's connection was left open when the server stopped with its hookDone queued")
	}
}

type closeRecorder struct {
	net.Conn
	mu     sync.Mutex
	closed bool
}

func (c *closeRecorder) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.Conn.Close()
}

func (c *closeRecorder) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}
