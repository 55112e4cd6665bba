package remotenode

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// The reports are handed to the transport as its subscription to the
// remote's EndpointTerminatedEvent hands them (peerLost): a published event
// would also end the remote's own endpoint between the shared nodes, and
// the gRPC connections that follow would outlive the test.

// watchedAcross is an actor on node a that watches a probe on node b
// through a's stream to b: the probe, its PID as a names it, and the
// Terminated the watcher gets. The stream carries the watch when it returns.
func watchedAcross(t *testing.T, a, b *actor.ActorSystem) (*testkit.Probe, *actor.PID, <-chan *actor.Terminated) {
	t.Helper()
	ta := StreamOf(a)
	if ta == nil || StreamOf(b) == nil {
		t.Fatal("the shared nodes run no stream transport")
	}
	watchee := testkit.NewProbe(t, b)
	remoteWatchee := actor.NewPID(b.Address(), watchee.PID.Id)
	ended := make(chan *actor.Terminated, 4)
	watcher := a.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Watch(remoteWatchee)
		case *actor.Terminated:
			ended <- m
		}
	}))
	t.Cleanup(func() { _ = a.Root.StopFuture(watcher).Wait() })
	// The Watch is on the lane before this message, which the probe gets
	// once both went through the stream.
	sent := ta.Sent()
	a.Root.Send(remoteWatchee, &messages.Demand{N: 1})
	testkit.Next[*messages.Demand](t, watchee)
	if ta.Sent() == sent {
		t.Fatal("a's lane to b is not a stream")
	}
	return watchee, remoteWatchee, ended
}

// TestAStaleReportOfAPeersLossLeavesItsStreamAndWatches: an actor on node
// A watches one on node B through A's stream; the remote on A reports B's
// endpoint terminated (as it reports a node restarted on the same address,
// after it is up) while B is up. B answers with the start id it named in
// its welcome: the stream and the watch it carries stay (no Terminated),
// and the watch still fires, as a stop, when B's actor stops.
func TestAStaleReportOfAPeersLossLeavesItsStreamAndWatches(t *testing.T) {
	a, b := testkit.Remote(t, 0), testkit.Remote(t, 1)
	watchee, remoteWatchee, ended := watchedAcross(t, a, b)
	ta := StreamOf(a)

	stale := ta.StaleReports()
	ta.peerLost(b.Address())
	deadline := time.After(10 * time.Second)
	for ta.StaleReports() == stale {
		select {
		case m := <-ended:
			t.Fatalf("the watch fired on a stale report: %v", m)
		case <-deadline:
			t.Fatal("the report was not found stale within 10 s")
		case <-time.After(10 * time.Millisecond):
		}
	}
	select {
	case m := <-ended:
		t.Fatalf("the watch fired on a stale report: %v", m)
	case <-time.After(200 * time.Millisecond):
	}

	_ = b.Root.StopFuture(watchee.PID).Wait()
	select {
	case m := <-ended:
		if !m.Who.Equal(remoteWatchee) || m.Why == actor.TerminatedReason_AddressTerminated {
			t.Fatalf("Terminated %v, want %v stopped", m, remoteWatchee)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch carried by the stream did not fire when its actor stopped")
	}
}

// TestAConfirmedReportOfAPeersLossEndsItsStream is the mirror: A's stream
// to B names a start of B other than the one that answers (as after B
// restarted on the same address), and the remote reports B's endpoint
// terminated: the stream ends and the watch it carries fires
// (AddressTerminated); the next message sets a stream up again.
func TestAConfirmedReportOfAPeersLossEndsItsStream(t *testing.T) {
	a, b := testkit.Remote(t, 0), testkit.Remote(t, 1)
	watchee, remoteWatchee, ended := watchedAcross(t, a, b)
	ta := StreamOf(a)

	l := ta.lane(b.Address())
	l.mu.Lock()
	out := l.out
	if out == nil || out.start == 0 {
		l.mu.Unlock()
		t.Fatalf("A's lane to B has no stream that names B's start (%v)", out)
	}
	out.start ^= 0x5a5a // another start of a node at B's address
	l.mu.Unlock()

	stale := ta.StaleReports()
	ta.peerLost(b.Address())
	select {
	case m := <-ended:
		if !m.Who.Equal(remoteWatchee) || m.Why != actor.TerminatedReason_AddressTerminated {
			t.Fatalf("Terminated %v, want %v's node lost", m, remoteWatchee)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the watch did not fire on a confirmed report")
	}
	if ta.StaleReports() != stale {
		t.Fatal("a confirmed report was counted stale")
	}
	sent := ta.Sent()
	a.Root.Send(remoteWatchee, &messages.Demand{N: 2})
	testkit.Next[*messages.Demand](t, watchee)
	if ta.Sent() == sent {
		t.Fatal("the next message did not set a stream up again")
	}
}
