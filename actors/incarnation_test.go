package actors

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// TestAStaleReportOfTheOwnersNodeLeavesTheConnectionsOfItsStartOpen: the
// remote reports node B lost (Terminated{AddressTerminated} for the owner,
// as after a stale endpoint writer's end when B was restarted on the same
// address) while B is up. A connection whose claim named B's start id
// (ClaimOptions.owner_start_id) stays open and serves its owner; one whose
// claim named another start of a node at B's address (the one before a
// restart) ends, and its owner still hears Disconnected.
func TestAStaleReportOfTheOwnersNodeLeavesTheConnectionsOfItsStartOpen(t *testing.T) {
	sysA, sysB := testkit.Remote(t, 0), testkit.Remote(t, 1)
	local := &testServer{t: t, sys: sysA, pid: sysA.Root.Spawn(NewServer(ServerOptions{}))}
	t.Cleanup(func() { _ = sysA.Root.StopFuture(local.pid).Wait() })
	addr := local.listen()
	fromB := &testServer{t: t, sys: sysB, pid: actor.NewPID(sysA.Address(), local.pid.Id)}
	owner := newInbox(t, sysB)
	claimAs := func(startID uint64) (net.Conn, *actor.PID) {
		t.Helper()
		c := dial(t, addr)
		local.waitStatus("a pending connection", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
		p := ask[*messages.PendingConnection](fromB, &messages.NextPendingConnection{Owner: owner.pid,
			Options: &messages.ClaimOptions{OwnerStartId: startID}})
		if p.Connection == nil {
			t.Fatalf("claim: %v", p)
		}
		if p.Info.GetNodeStartId() != StartID(sysA) {
			t.Fatalf("the claim's info names start %d of the server's node, want %d", p.Info.GetNodeStartId(), StartID(sysA))
		}
		return c, p.Connection
	}
	current, earlier := StartID(sysB), StartID(sysB)^0x5a5a
	liveClient, live := claimAs(current)
	goneClient, gone := claimAs(earlier)

	// The report as the remote's endpoint watcher hands it to the node's
	// owner watcher. (Publishing the remote's EndpointTerminatedEvent
	// instead starts the very cascade of endpoint ends that drops messages
	// in flight to B now and then: the crossnode tests go through it.)
	w, ok := sysA.ProcessRegistry.GetLocal(OwnerWatcherName)
	if !ok {
		t.Fatal("node A has no owner watcher")
	}
	w.SendSystemMessage(OwnerWatcher(sysA.Address()), &actor.Terminated{Who: owner.pid, Why: actor.TerminatedReason_AddressTerminated})

	// The connection of the earlier start ends; its owner is told why.
	d := expectNext[*messages.Disconnected](t, owner)
	if !d.Connection.Equal(gone) || !strings.Contains(d.Error.GetMessage(), "reported lost") {
		t.Fatalf("Disconnected of %v with %v, want %v's, saying its owner's node was reported lost", d.Connection, d.Error, gone)
	}
	if b, err := readAll(t, goneClient); len(b) != 0 || err != nil {
		t.Fatalf("the client of the earlier start's connection read %q, %v; want EOF", b, err)
	}
	// The connection of the start that answers serves on.
	if _, err := liveClient.Write([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	r := expectNext[*messages.Received](t, owner)
	if !r.Connection.Equal(live) || string(r.Data) != "still here" {
		t.Fatalf("Received %q from %v, want %q from %v", r.Data, r.Connection, "still here", live)
	}
	if a := call[*messages.Ack](t, sysB, live, &messages.Close{}); a.Error.Failed() {
		t.Fatalf("Close: %v", a.Error)
	}
	if d := expectNext[*messages.Disconnected](t, owner); !d.Connection.Equal(live) || d.Error.Failed() {
		t.Fatalf("Disconnected of %v with %v, want %v's, without error", d.Connection, d.Error, live)
	}
}

// TestAStaleReportOfASubscribersNodeLeavesItSubscribed: the remote reports
// node B lost (Terminated{AddressTerminated} for two subscribers there)
// while B is up. The subscriber that named B's start id
// (Subscribe.subscriber_start_id) still hears of the next connection; the
// one that named another start of a node at B's address is dropped.
func TestAStaleReportOfASubscribersNodeLeavesItSubscribed(t *testing.T) {
	sysA, sysB := testkit.Remote(t, 0), testkit.Remote(t, 1)
	local := &testServer{t: t, sys: sysA, pid: sysA.Root.Spawn(NewServer(ServerOptions{}))}
	t.Cleanup(func() { _ = sysA.Root.StopFuture(local.pid).Wait() })
	addr := local.listen()
	fromB := &testServer{t: t, sys: sysB, pid: actor.NewPID(sysA.Address(), local.pid.Id)}
	live, gone := newInbox(t, sysB), newInbox(t, sysB)
	current, earlier := StartID(sysB), StartID(sysB)^0x5a5a
	for _, s := range []struct {
		sub   *inbox
		start uint64
	}{{live, current}, {gone, earlier}} {
		if a := ask[*messages.Ack](fromB, &messages.Subscribe{Subscriber: s.sub.pid, SubscriberStartId: s.start}); a.Error.Failed() {
			t.Fatalf("Subscribe: %v", a.Error)
		}
	}

	// The reports as the remote's endpoint watcher hands them to a watcher.
	srv, ok := sysA.ProcessRegistry.GetLocal(local.pid.Id)
	if !ok {
		t.Fatal("the server is not registered on node A")
	}
	for _, sub := range []*inbox{live, gone} {
		srv.SendSystemMessage(local.pid, &actor.Terminated{Who: sub.pid, Why: actor.TerminatedReason_AddressTerminated})
	}

	// The subscribers are told of connections while the reports are being
	// checked; once the check is done, the one of the earlier start hears
	// of none. Each client leaves a connection pending (at most 10).
	dropped := false
	for i := 0; i < 10 && !dropped; i++ {
		dial(t, addr)
		expectNext[*messages.NewConnection](t, live)
		_, heard := gone.Receive(300 * time.Millisecond)
		dropped = !heard
	}
	if !dropped {
		t.Fatal("the subscriber of the earlier start still hears of every connection")
	}
	dial(t, addr)
	if nc := expectNext[*messages.NewConnection](t, live); nc.Connection == nil {
		t.Fatalf("NewConnection %v without a connection", nc)
	}
	gone.nothingFor(t, 300*time.Millisecond)
}
