package actors

import (
	"io"
	"testing"

	"github.com/tcpactor/tcpactor/messages"
)

// TestAnAssigningSubscriberOwnsEachNewConnectionWithoutAClaim: a subscriber
// that takes connections (Subscribe.assign) is told each new connection is
// its own (NewConnection.assigned) and gets its bytes with the credit it
// subscribed with — no NextPendingConnection; nothing is left pending; a
// plain subscriber still hears of the connection; several assignees take
// the connections in turn, and one that stopped takes no more.
func TestAnAssigningSubscriberOwnsEachNewConnectionWithoutAClaim(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	a, b, plain := newProbe(t, s.sys), newProbe(t, s.sys), newProbe(t, s.sys)
	subscribe(s, plain.pid)
	for _, p := range []*probe{a, b} {
		expectNoError(t, "Subscribe", ask[*messages.Ack](s, &messages.Subscribe{Subscriber: p.pid, Assign: true,
			Options: &messages.ClaimOptions{InitialCredit: 1}}).Error)
	}
	neg := ask[*messages.Ack](s, &messages.Subscribe{Subscriber: a.pid, Assign: true, Options: &messages.ClaimOptions{InitialCredit: -1}})
	if !neg.Error.Failed() {
		t.Fatal("Subscribe with assign and initial_credit -1 was accepted")
	}

	for i, owner := range []*probe{a, b, a} {
		c := dial(t, addr)
		port := dialedPort(c)
		ev := nextAssigned(t, owner)
		if !ev.Assigned || ev.Connection == nil || ev.Info.GetPeerPort() != port {
			t.Fatalf("connection %d: %v, want it assigned, with its info (peer port %d)", i, ev, port)
		}
		if pe := next[*messages.NewConnection](t, plain); pe.Assigned || !pe.Connection.Equal(ev.Connection) {
			t.Fatalf("connection %d: the plain subscriber heard %v", i, pe)
		}
		if _, err := io.WriteString(c, "hello"); err != nil {
			t.Fatal(err)
		}
		if r := next[*messages.Received](t, owner); string(r.Data) != "hello" || !r.Connection.Equal(ev.Connection) {
			t.Fatalf("connection %d: owner got %q from %v", i, r.Data, r.Connection)
		}
		c.Close()
		s.sys.Root.Send(ev.Connection, &messages.Close{}) // as an owner does at PeerClosed
		next[*messages.Disconnected](t, owner)
	}
	if st := s.status(); st.HasPendingConnections {
		t.Fatalf("assigned connections left pending: %v", st)
	}

	// b stops: the connections go to a alone.
	if err := s.sys.Root.StopFuture(b.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	s.status() // a round trip: b's Terminated, sent before its stop completed, is handled by now
	for i := range 2 {
		c := dial(t, addr)
		ev := nextAssigned(t, a)
		if !ev.Assigned {
			t.Fatalf("connection %d after b stopped: %v, want it assigned to a", i, ev)
		}
		c.Close()
		s.sys.Root.Send(ev.Connection, &messages.Close{})
		next[*messages.Disconnected](t, a)
	}
}

// nextAssigned is the next NewConnection that assigns a connection to p,
// skipping those about connections assigned to others (an assignee is a
// subscriber too), at most a few.
func nextAssigned(t *testing.T, p *probe) *messages.NewConnection {
	t.Helper()
	for range 8 {
		if ev := next[*messages.NewConnection](t, p); ev.Assigned {
			return ev
		}
	}
	t.Fatal("no NewConnection assigning a connection among the last 8")
	return nil
}
