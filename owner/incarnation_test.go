package owner_test

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/owner"
	"github.com/tcpactor/tcpactor/server"
)

// endRecorder is a Handler that reports which connection ended, and how.
type endRecorder struct {
	connected chan *actor.PID
	ended     chan ending
}

type ending struct {
	pid *actor.PID
	err *messages.Error
}

func (r *endRecorder) Connected(c *owner.Owned)                          { r.connected <- c.PID() }
func (r *endRecorder) Received(*owner.Owned, []byte)                     {}
func (r *endRecorder) WriteAcked(*owner.Owned, uint64)                   {}
func (r *endRecorder) WriteFailed(*owner.Owned, uint64, *messages.Error) {}
func (r *endRecorder) Disconnected(c *owner.Owned, err *messages.Error) {
	r.ended <- ending{c.PID(), err}
}

// TestAnOwnerKeepsTheConnectionsOfTheStartThatAnswersALossReport: the
// server's node is reported lost (Terminated{AddressTerminated} for the
// server) while a node is up at its address — as Proto.Actor's remote
// reports a node restarted on the same address, after it is up. The owner
// asks that node which start of it runs (GetIncarnation): the connection
// whose info names that start (ConnectionInfo.node_start_id) lives on for
// its handler, the one of another start ends with a NetworkError.
func TestAnOwnerKeepsTheConnectionsOfTheStartThatAnswersALossReport(t *testing.T) {
	srvSys, ownerSys := testkit.Remote(t, 0), testkit.Remote(t, 1)
	srv, _ := listening(t, srvSys, server.Options{})
	fake := func() *actor.PID {
		pid, ok := srvSys.ProcessRegistry.Add(&watchCounter{watches: make(chan struct{}, 8), unwatches: make(chan struct{}, 8)}, "conn-"+rand.Text())
		if !ok {
			t.Fatal("a connection's name is taken")
		}
		t.Cleanup(func() { srvSys.ProcessRegistry.Remove(pid) })
		return pid
	}
	live, gone := fake(), fake()

	rec := &endRecorder{connected: make(chan *actor.PID, 2), ended: make(chan ending, 4)}
	subscribed := make(chan error, 1)
	view := viewFrom(ownerSys, srv)
	o := ownerSys.Root.Spawn(owner.New(owner.Config{Server: view.PID(), Handler: func() owner.Handler { return rec },
		OnServer: func(_ *actor.PID, err error) {
			select {
			case subscribed <- err:
			default:
			}
		}}))
	t.Cleanup(func() { _ = owner.Stop(ownerSys.Root, o, view.PID(), 5*time.Second) })
	if err := waitFor(t, subscribed); err != nil {
		t.Fatal(err)
	}
	ownerFromSrv := actor.NewPID(o.Address, o.Id)
	current := actors.StartID(srvSys)
	for _, c := range []struct {
		pid   *actor.PID
		start uint64
	}{{live, current}, {gone, current ^ 0x5a5a}} {
		srvSys.Root.Send(ownerFromSrv, &messages.NewConnection{Server: srv.PID(), Connection: c.pid, Assigned: true,
			Info: &messages.ConnectionInfo{Server: srv.PID(), NodeStartId: c.start}})
		waitFor(t, rec.connected)
	}

	p, _ := ownerSys.ProcessRegistry.GetLocal(o.Id)
	p.SendSystemMessage(o, &actor.Terminated{Who: view.PID(), Why: actor.TerminatedReason_AddressTerminated})
	if e := waitFor(t, rec.ended); !e.pid.Equal(gone) || e.err.GetCode() != messages.SocketError_SOCKET_ERROR_NETWORK {
		t.Fatalf("Disconnected(%v) of %v, want a NetworkError for %v, the connection of another start", e.err, e.pid, gone)
	}
	// The live one ends when it says so, and only then.
	srvSys.Root.Send(ownerFromSrv, &messages.Disconnected{Connection: live})
	if e := waitFor(t, rec.ended); !e.pid.Equal(live) || e.err.Failed() {
		t.Fatalf("Disconnected(%v) of %v, want the orderly end of %v", e.err, e.pid, live)
	}
	select {
	case e := <-rec.ended:
		t.Fatalf("another Disconnected(%v) of %v", e.err, e.pid)
	case pid := <-rec.connected:
		t.Fatalf("%v connected again", pid)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestAnOwnerReportedLostByAStaleReportStaysSubscribed: the server's node
// gets a report that the owner's node was lost (Terminated{AddressTerminated}
// for the owner, as Proto.Actor's remote reports a node restarted on the
// same address, after it is up). owner.New named its node's start id in its
// Subscribe, the node there answers with it: the server keeps the owner
// subscribed, and the owner serves the next client without subscribing
// again. The owner takes assigned connections, so no claim of its own in
// flight could find the client instead.
func TestAnOwnerReportedLostByAStaleReportStaysSubscribed(t *testing.T) {
	srvSys, ownerSys := testkit.Remote(t, 0), testkit.Remote(t, 1)
	srv, addr := listening(t, srvSys, server.Options{})
	rec := &endRecorder{connected: make(chan *actor.PID, 2), ended: make(chan ending, 2)}
	subscribed := make(chan error, 2)
	view := viewFrom(ownerSys, srv)
	o := ownerSys.Root.Spawn(owner.New(owner.Config{Server: view.PID(), Assign: true, Handler: func() owner.Handler { return rec },
		OnServer: func(_ *actor.PID, err error) { subscribed <- err }}))
	t.Cleanup(func() { _ = owner.Stop(ownerSys.Root, o, view.PID(), 5*time.Second) })
	if err := waitFor(t, subscribed); err != nil {
		t.Fatal(err)
	}
	serve := func() {
		t.Helper()
		c := dial(t, addr)
		waitFor(t, rec.connected)
		c.Close()
		if e := waitFor(t, rec.ended); e.err.Failed() {
			t.Fatalf("Disconnected(%v), want the orderly end", e.err)
		}
	}
	serve()

	p, ok := srvSys.ProcessRegistry.GetLocal(srv.PID().Id)
	if !ok {
		t.Fatal("the server is not registered on its node")
	}
	p.SendSystemMessage(srv.PID(), &actor.Terminated{Who: actor.NewPID(o.Address, o.Id), Why: actor.TerminatedReason_AddressTerminated})
	serve()
	select {
	case err := <-subscribed:
		t.Fatalf("the owner heard of its server again (%v): it should not have had to subscribe again", err)
	default:
	}
}
