package remotenode_test

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// TestAStaleReportOfAPeersLossLeavesItsStreamAndWatches: an actor on node
// A watches one on node B through A's stream; Proto.Actor's remote on A
// reports B's endpoint terminated (an EndpointTerminatedEvent, as it
// reports a node restarted on the same address, after it is up) while B is
// up. B answers with the start id it named in its welcome: the stream and
// the watch it carries stay (no Terminated), and the watch still fires when
// B's actor stops.
func TestAStaleReportOfAPeersLossLeavesItsStreamAndWatches(t *testing.T) {
	a, b, ta, _ := streamNodes(t)
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
	// The Watch is on the lane before this message, which B's probe gets
	// once both went through the stream.
	sent := ta.Sent()
	a.Root.Send(remoteWatchee, &messages.Demand{N: 1})
	testkit.Next[*messages.Demand](t, watchee)
	if ta.Sent() == sent {
		t.Fatal("A's lane to B is not a stream")
	}

	stale := ta.StaleReports()
	a.EventStream.Publish(&remote.EndpointTerminatedEvent{Address: b.Address()})
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
