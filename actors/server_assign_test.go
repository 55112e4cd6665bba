package actors

import (
	"io"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
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

// TestAnAssigneeThatClosesAtOnceIsAlreadyTheOwner: an assignee that answers
// NewConnection{assigned} with Close at once, on the goroutine that told it
// (an owner on OwnerDispatcher), finds the connection its own and gets its
// Disconnected. When the server sent the NewConnection itself, ahead of the
// SetOwner, such a Close reached a connection with no owner yet: it closed,
// refused the SetOwner, and the assignee never heard of the end.
func TestAnAssigneeThatClosesAtOnceIsAlreadyTheOwner(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	got := make(chan any, 16)
	owner := s.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.NewConnection:
			if m.Assigned {
				ctx.Send(m.Connection, &messages.Close{})
			}
			got <- m
		case *messages.Disconnected:
			got <- m
		}
	}, actor.WithDispatcher(OwnerDispatcher())))
	t.Cleanup(func() { _ = s.sys.Root.StopFuture(owner).Wait() })
	expectNoError(t, "Subscribe", ask[*messages.Ack](s, &messages.Subscribe{Subscriber: owner, Assign: true}).Error)

	c := dial(t, addr)
	defer c.Close()
	var assigned *messages.NewConnection
	for assigned == nil {
		select {
		case m := <-got:
			if ev, ok := m.(*messages.NewConnection); ok && ev.Assigned {
				assigned = ev
			} else if ok {
				t.Fatalf("the assignee heard %v before its assignment", ev)
			}
		case <-time.After(testkit.ProbeTimeout):
			t.Fatal("no NewConnection{assigned}")
		}
	}
	select {
	case m := <-got:
		if d, ok := m.(*messages.Disconnected); !ok || !d.Connection.Equal(assigned.Connection) {
			t.Fatalf("after its Close the assignee got %v, want Disconnected of %v", m, assigned.Connection)
		}
	case <-time.After(testkit.ProbeTimeout):
		t.Fatal("the assignee closed its connection at once and never got Disconnected")
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("the client's connection ended with %v, want EOF", err)
	}
}
