package actors

import (
	"net"
	"strings"
	"testing"

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
