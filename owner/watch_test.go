package owner_test

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/owner"
	"github.com/tcpactor/tcpactor/server"
)

// watchCounter stands where a connection of the server's node would: a
// process in that node's registry, to which the remote delivers as to any
// actor. It counts the Watch and Unwatch it receives.
type watchCounter struct{ watches, unwatches chan struct{} }

func (w *watchCounter) SendUserMessage(*actor.PID, any) {}
func (w *watchCounter) Stop(*actor.PID)                 {}
func (w *watchCounter) SendSystemMessage(_ *actor.PID, m any) {
	switch m.(type) {
	case *actor.Watch:
		w.watches <- struct{}{}
	case *actor.Unwatch:
		w.unwatches <- struct{}{}
	}
}

// recorder is a Handler that reports its connections' start and end.
type recorder struct {
	connected chan *owner.Owned
	ended     chan *messages.Error
}

func (r *recorder) Connected(c *owner.Owned)                          { r.connected <- c }
func (r *recorder) Received(*owner.Owned, []byte)                     {}
func (r *recorder) WriteAcked(*owner.Owned, uint64)                   {}
func (r *recorder) WriteFailed(*owner.Owned, uint64, *messages.Error) {}
func (r *recorder) Disconnected(_ *owner.Owned, err *messages.Error)  { r.ended <- err }

// TestAnOwnerWatchesTheServerForTheConnectionsOfItsNode: an owner on
// another node does not watch each connection of a server it watches (a
// Watch, an Unwatch and a Terminated on the wire per connection); the loss
// of the server's node, which it learns from the server's Terminated,
// ends each of them for its handler with a NetworkError.
func TestAnOwnerWatchesTheServerForTheConnectionsOfItsNode(t *testing.T) {
	srvSys, ownerSys := testkit.Remote(t, 0), testkit.Remote(t, 1)
	srv, _ := listening(t, srvSys, server.Options{})
	counter := &watchCounter{watches: make(chan struct{}, 8), unwatches: make(chan struct{}, 8)}
	conn, ok := srvSys.ProcessRegistry.Add(counter, "conn-"+rand.Text())
	if !ok {
		t.Fatal("the counting connection's name is taken")
	}
	t.Cleanup(func() { srvSys.ProcessRegistry.Remove(conn) })

	rec := &recorder{connected: make(chan *owner.Owned, 1), ended: make(chan *messages.Error, 1)}
	subscribed := make(chan error, 1)
	view := viewFrom(ownerSys, srv)
	o := ownerSys.Root.Spawn(owner.New(owner.Config{Server: view.PID(), Handler: func() owner.Handler { return rec },
		OnServer: func(_ *actor.PID, err error) {
			select {
			case subscribed <- err:
			default:
			}
		}}))
	if err := waitFor(t, subscribed); err != nil {
		t.Fatal(err)
	}
	// The connection tells its owner of the assignment, as the server asks
	// it to (SetOwner.announce).
	ownerFromSrv := actor.NewPID(o.Address, o.Id)
	srvSys.Root.Send(ownerFromSrv, &messages.NewConnection{Server: srv.PID(), Connection: conn, Assigned: true})
	waitFor(t, rec.connected)

	// The server's node is lost: the owner's remote tells the server's
	// watchers so (its endpoint watcher; a peer cannot: the remote makes
	// any Terminated it carries a Stopped).
	p, _ := ownerSys.ProcessRegistry.GetLocal(o.Id)
	p.SendSystemMessage(o, &actor.Terminated{Who: view.PID(), Why: actor.TerminatedReason_AddressTerminated})
	if err := waitFor(t, rec.ended); err.GetCode() != messages.SocketError_SOCKET_ERROR_NETWORK {
		t.Fatalf("Disconnected(%v), want a NetworkError", err)
	}

	// Once the owner has stopped and unsubscribed, what it sent the
	// connection's node before has arrived (one stream, in order).
	if err := owner.Stop(ownerSys.Root, o, view.PID(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(counter.watches); n != 0 {
		t.Fatalf("the owner watched the connection %d times, want none: its server's watch covers it", n)
	}
}

// waitFor receives from ch, failing t after ten seconds.
func waitFor[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing came within 10 s")
		panic("unreachable")
	}
}
