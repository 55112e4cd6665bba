package remotenode

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// TestAConfirmedReportOfAPeersLossEndsItsStream: the mirror of
// TestAStaleReportOfAPeersLossLeavesItsStreamAndWatches. A's stream to B
// names a start of B other than the one that answers (as after B restarted
// on the same address), and the remote reports B's endpoint terminated: the
// stream ends and the watch it carries fires (AddressTerminated); the next
// message sets a stream up again.
func TestAConfirmedReportOfAPeersLossEndsItsStream(t *testing.T) {
	a, b := testkit.Remote(t, 0), testkit.Remote(t, 1)
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
	a.Root.Send(remoteWatchee, &messages.Demand{N: 1})
	testkit.Next[*messages.Demand](t, watchee)

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
	a.EventStream.Publish(&remote.EndpointTerminatedEvent{Address: b.Address()})
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
