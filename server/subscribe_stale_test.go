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
// that named another start of B (WithSubscriberStartID, over the default
// of the Server's own system) is dropped, so the check is known done.
func TestASubscriberReportedLostByAStaleReportStaysSubscribed(t *testing.T) {
	nodeA, nodeB := testkit.Remote(t, 0), testkit.Remote(t, 1)
	srv, addr := listening(t, nodeA, server.Options{})
	view := viewFrom(nodeB, srv)
	live, gone := testkit.NewProbe(t, nodeB), testkit.NewProbe(t, nodeB)
	ctx := testCtx(t)
	if err := view.Subscribe(ctx, live.PID); err != nil {
		t.Fatal(err)
	}
	if err := view.Subscribe(ctx, gone.PID, server.WithSubscriberStartID(actors.StartID(nodeB)^0x5a5a)); err != nil {
		t.Fatal(err)
	}
	staleReportLeavesSubscribed(t, nodeA, srv, addr, live, gone, nil)
	for _, sub := range []*actor.PID{live.PID, gone.PID} {
		_ = view.Unsubscribe(ctx, sub)
	}
}

// TestASubscriberOnAnotherSystemThatNamedItsStartIDStaysSubscribed: as
// above, but the Server is node A's own and the subscribers are on node B:
// the one subscribed with WithSubscriberStartID naming B's start id stays
// subscribed through the stale report (Subscribe used to subscribe a
// subscriber of another system with no start id, and the report dropped
// it); one that named another start of B is dropped after the check, and
// one subscribed without the option (no start id: the Server's own start
// id is not B's) at once.
func TestASubscriberOnAnotherSystemThatNamedItsStartIDStaysSubscribed(t *testing.T) {
	nodeA, nodeB := testkit.Remote(t, 0), testkit.Remote(t, 1)
	srv, addr := listening(t, nodeA, server.Options{})
	live, gone, unnamed := testkit.NewProbe(t, nodeB), testkit.NewProbe(t, nodeB), testkit.NewProbe(t, nodeB)
	ctx := testCtx(t)
	for _, s := range []struct {
		sub  *testkit.Probe
		opts []server.SubscribeOption
	}{
		{live, []server.SubscribeOption{server.WithSubscriberStartID(actors.StartID(nodeB))}},
		{gone, []server.SubscribeOption{server.WithSubscriberStartID(actors.StartID(nodeB) ^ 0x5a5a)}},
		{unnamed, nil},
	} {
		if err := srv.Subscribe(ctx, s.sub.PID, s.opts...); err != nil {
			t.Fatal(err)
		}
	}
	staleReportLeavesSubscribed(t, nodeA, srv, addr, live, gone, unnamed)
	for _, sub := range []*actor.PID{live.PID, gone.PID, unnamed.PID} {
		_ = srv.Unsubscribe(ctx, sub)
	}
}

// staleReportLeavesSubscribed hands srv, the server on nodeA listening on
// addr, a report of the loss of the node of its subscribers live and gone
// (and unnamed, when not nil) as Proto.Actor's remote does, and fails t
// unless live still hears of connections while gone, subscribed with
// another start id of that node, stops hearing of them once the report is
// checked, and unnamed, subscribed with none, hears of none.
func staleReportLeavesSubscribed(t *testing.T, nodeA *actor.ActorSystem, srv *server.Server, addr string, live, gone, unnamed *testkit.Probe) {
	t.Helper()
	p, ok := nodeA.ProcessRegistry.GetLocal(srv.PID().Id)
	if !ok {
		t.Fatal("the server is not registered on node A")
	}
	subs := []*testkit.Probe{live, gone}
	if unnamed != nil {
		subs = append(subs, unnamed)
	}
	for _, sub := range subs {
		p.SendSystemMessage(srv.PID(), &actor.Terminated{Who: sub.PID, Why: actor.TerminatedReason_AddressTerminated})
	}

	// Each client leaves a connection pending (at most 10). The reports
	// are taken before the first client's NewConnection (system messages
	// first), so a subscriber that named no start id hears of none.
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
	if unnamed != nil {
		if m, heard := unnamed.Receive(300 * time.Millisecond); heard {
			t.Fatalf("the subscriber that named no start id was told %T after its node was reported lost", m)
		}
	}
}
