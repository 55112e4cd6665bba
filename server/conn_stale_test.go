package server_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
)

// TestAConnAcrossNodesOutlivesStaleReportsOfEitherNodesLoss: a Conn on
// node B over a connection on node A. Each node gets a report that the
// other was lost (Terminated{AddressTerminated}, as Proto.Actor's remote
// reports a node restarted on the same address, after it is up) while both
// are up: B's for the connection, which the Conn watches itself, and A's
// for the Conn's owner actor, which the connection watches. The same start
// of each node answers the check, so the Conn and its connection go on.
// Both ways of making a Conn: a claim (NextPendingConn) and a connection
// announced to a subscriber (NewConn).
func TestAConnAcrossNodesOutlivesStaleReportsOfEitherNodesLoss(t *testing.T) {
	nodeA, nodeB := testkit.Remote(t, 0), testkit.Remote(t, 1)
	srv, addr := listening(t, nodeA, server.Options{})
	view := viewFrom(nodeB, srv)
	ctx := testCtx(t)
	for _, tc := range []struct {
		name string
		take func(t *testing.T) *server.Conn
	}{
		{"NextPendingConn", func(t *testing.T) *server.Conn {
			if ok, _, err := view.WaitForNewConnection(ctx, 10_000); !ok || err != nil {
				t.Fatalf("WaitForNewConnection = %v, %v", ok, err)
			}
			c, err := view.NextPendingConn(ctx, server.ConnOptions{})
			if c == nil || err != nil {
				t.Fatalf("NextPendingConn = %v, %v", c, err)
			}
			return c
		}},
		{"NewConn", func(t *testing.T) *server.Conn {
			pid, _, err := view.NextPendingConnection(ctx, testkit.NewProbe(t, nodeB).PID, &messages.ClaimOptions{})
			if pid == nil || err != nil {
				t.Fatalf("NextPendingConnection = %v, %v", pid, err)
			}
			c, err := server.NewConn(ctx, nodeB, pid, server.ConnOptions{})
			if err != nil {
				t.Fatalf("NewConn: %v", err)
			}
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := dial(t, addr)
			c := tc.take(t)
			t.Cleanup(func() { c.Close() })
			roundTrip(t, client, c, "before")

			conn := c.PID()
			p, ok := nodeB.ProcessRegistry.GetLocal(c.Owner().Id)
			if !ok {
				t.Fatal("the Conn's owner actor is not registered")
			}
			p.SendSystemMessage(c.Owner(), &actor.Terminated{Who: actor.NewPID(conn.Address, conn.Id), Why: actor.TerminatedReason_AddressTerminated})
			w, ok := nodeA.ProcessRegistry.GetLocal(actors.OwnerWatcherName)
			if !ok {
				t.Fatal("node A has no owner watcher")
			}
			w.SendSystemMessage(actors.OwnerWatcher(nodeA.Address()), &actor.Terminated{Who: actor.NewPID(c.Owner().Address, c.Owner().Id),
				Why: actor.TerminatedReason_AddressTerminated})

			roundTrip(t, client, c, "after the reports")
			// Each check asks the other node; so does this, behind them.
			for _, n := range []struct{ from, to *actor.ActorSystem }{{nodeA, nodeB}, {nodeB, nodeA}} {
				if _, err := n.from.Root.RequestFuture(actors.IncarnationOf(n.to.Address()), &messages.GetIncarnation{}, 5*time.Second).Result(); err != nil {
					t.Fatalf("GetIncarnation: %v", err)
				}
			}
			roundTrip(t, client, c, "once the reports are checked")
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if b, err := io.ReadAll(client); len(b) != 0 || err != nil {
				t.Fatalf("after Close the client read %q, %v; want EOF", b, err)
			}
		})
	}
}

// roundTrip sends a line each way between a client and its Conn.
func roundTrip(t *testing.T, client net.Conn, c *server.Conn, when string) {
	t.Helper()
	_ = client.SetDeadline(time.Now().Add(20 * time.Second))
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	for _, d := range []struct {
		from, to net.Conn
		what     string
	}{{client, c, "client → Conn"}, {c, client, "Conn → client"}} {
		msg := []byte("ping " + when)
		if _, err := d.from.Write(msg); err != nil {
			t.Fatalf("%s %s: Write: %v", d.what, when, err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(d.to, got); err != nil {
			t.Fatalf("%s %s: Read: %v", d.what, when, err)
		}
	}
}

// TestAConnEndsWhenTheNodeOfItsConnectionAnswersWithAnotherStart: a report
// that the connection's node was lost, while the node at that address
// answers with another start id (as a node restarted there would): the
// report is true, and the Conn ends with a NetworkError.
func TestAConnEndsWhenTheNodeOfItsConnectionAnswersWithAnotherStart(t *testing.T) {
	nodeA, nodeB := testkit.Remote(t, 0), testkit.Remote(t, 1)
	srv, addr := listening(t, nodeA, server.Options{})
	view := viewFrom(nodeB, srv)
	ctx := testCtx(t)
	client := dial(t, addr)
	if ok, _, err := view.WaitForNewConnection(ctx, 10_000); !ok || err != nil {
		t.Fatalf("WaitForNewConnection = %v, %v", ok, err)
	}
	c, err := view.NextPendingConn(ctx, server.ConnOptions{})
	if c == nil || err != nil {
		t.Fatalf("NextPendingConn = %v, %v", c, err)
	}
	t.Cleanup(func() { c.Close() })
	roundTrip(t, client, c, "before")

	// Node A answers for another start of itself, for this test.
	another := actors.StartID(nodeA) ^ 0x5a5a
	incarnation := actors.IncarnationOf(nodeA.Address())
	orig, ok := nodeA.ProcessRegistry.GetLocal(actors.IncarnationName)
	if !ok {
		t.Fatal("node A has no incarnation actor")
	}
	nodeA.ProcessRegistry.Remove(incarnation)
	fake, err := nodeA.Root.SpawnNamed(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*messages.GetIncarnation); ok {
			ctx.Respond(&messages.Incarnation{StartId: another})
		}
	}), actors.IncarnationName)
	if err != nil {
		t.Fatalf("spawn the stand-in incarnation actor: %v", err)
	}
	defer func() {
		_ = nodeA.Root.StopFuture(fake).Wait()
		nodeA.ProcessRegistry.Add(orig, actors.IncarnationName)
	}()

	conn := c.PID()
	p, ok := nodeB.ProcessRegistry.GetLocal(c.Owner().Id)
	if !ok {
		t.Fatal("the Conn's owner actor is not registered")
	}
	p.SendSystemMessage(c.Owner(), &actor.Terminated{Who: actor.NewPID(conn.Address, conn.Id), Why: actor.TerminatedReason_AddressTerminated})
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var se *messages.SocketErr
	if _, err := c.Read(make([]byte, 1)); !errors.As(err, &se) || se.Code != messages.SocketError_SOCKET_ERROR_NETWORK {
		t.Fatalf("Read after the report = %v, want a NetworkError", err)
	}
}
