package server_test

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
)

// TestASubscriberReportedLostByAStaleReportStaysSubscribed: an actor on
// node B subscribed with Server.Subscribe to a server on node A; A gets a
// report that B was lost (Terminated{AddressTerminated}, as Proto.Actor's
// remote reports a node restarted on the same address, after it is up)
// while B is up. The subscriber still hears of the next connection; one
// that named another start of B is dropped (so the check is known done).
func TestASubscriberReportedLostByAStaleReportStaysSubscribed(t *testing.T) {
	nodeA, nodeB := testkit.Remote(t, 0), testkit.Remote(t, 1)
	srv, addr := listening(t, nodeA, server.Options{})
	view := viewFrom(nodeB, srv)
	live, gone := testkit.NewProbe(t, nodeB), testkit.NewProbe(t, nodeB)
	ctx := testCtx(t)
	if err := view.Subscribe(ctx, live.PID); err != nil {
		t.Fatal(err)
	}
	res, err := nodeB.Root.RequestFuture(view.PID(), &messages.Subscribe{Subscriber: gone.PID, SubscriberStartId: actors.StartID(nodeB) ^ 0x5a5a}, 10*time.Second).Result()
	if a, ok := res.(*messages.Ack); err != nil || !ok || a.Error.Failed() {
		t.Fatalf("Subscribe: %v %v", res, err)
	}

	p, ok := nodeA.ProcessRegistry.GetLocal(srv.PID().Id)
	if !ok {
		t.Fatal("the server is not registered on node A")
	}
	for _, sub := range []*actor.PID{live.PID, gone.PID} {
		p.SendSystemMessage(srv.PID(), &actor.Terminated{Who: sub, Why: actor.TerminatedReason_AddressTerminated})
	}

	// Each client leaves a connection pending (at most 10).
	dropped := false
	for i := 0; i < 10 && !dropped; i++ {
		dial(t, addr)
		testkit.Next[*messages.NewConnection](t, live)
		_, heard := gone.Receive(300 * time.Millisecond)
		dropped = !heard
	}
	if !dropped {
		t.Fatal("the subscriber of the other start still hears of every connection")
	}
	dial(t, addr)
	testkit.Next[*messages.NewConnection](t, live)
	for _, sub := range []*actor.PID{live.PID, gone.PID} {
		_ = view.Unsubscribe(ctx, sub)
	}
}
