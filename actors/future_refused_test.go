package actors

import (
	"strings"
	"testing"

	"github.com/tcpactor/tcpactor/messages"
)

// expectFutureRefused checks the invalid-argument error with which a
// future is refused as a subscriber or an owner.
func expectFutureRefused(t *testing.T, what string, e *messages.Error) {
	t.Helper()
	if e.GetCode() != messages.SocketError_SOCKET_ERROR_OPERATION || !strings.Contains(e.GetMessage(), "a future cannot") {
		t.Fatalf("%s: want the invalid-argument error refusing a future, got %v", what, e)
	}
}

// TestSubscribeWithoutSubscriberFromAFutureIsRefused asks a server, with
// RequestFuture, to subscribe the sender, many times: the sender is the
// future, which cannot be watched (it takes the Watch as its result and
// never reports its end), so each is refused with an invalid-argument
// error. FuzzServerRequests found
// the future answered with *actor.Watch instead (under -race within a few
// dozen rounds, with the future's result written twice).
func TestSubscribeWithoutSubscriberFromAFutureIsRefused(t *testing.T) {
	s := startServer(t, ServerOptions{})
	for round := range 2000 {
		res, err := s.sys.Root.RequestFuture(s.pid, &messages.Subscribe{}, replyTimeout).Result()
		if err != nil {
			t.Fatal(err)
		}
		ack, ok := res.(*messages.Ack)
		if !ok {
			t.Fatalf("round %d: Subscribe{} sent with RequestFuture answered %T %v, want *messages.Ack", round, res, res)
		}
		expectFutureRefused(t, "Subscribe{} from a future", ack.Error)
	}
	// A future may still name a subscriber.
	events := newProbe(t, s.sys)
	expectNoError(t, "Subscribe naming a subscriber", ask[*messages.Ack](s, &messages.Subscribe{Subscriber: events.pid}).Error)
	dial(t, s.listen())
	next[*messages.NewConnection](t, events)
}

// TestAFutureCannotOwnAConnection: NextPendingConnection without an owner
// sent with RequestFuture would hand the connection to the future (which
// the connection then watches for good); it is refused and the connection
// stays pending, for a request that names its owner. SetOwner without an
// owner, from a future, is refused by the connection alike.
func TestAFutureCannotOwnAConnection(t *testing.T) {
	s := startServer(t, ServerOptions{})
	dial(t, s.listen())
	s.waitStatus("1 pending", pendingIs(1))
	pc := ask[*messages.PendingConnection](s, &messages.NextPendingConnection{})
	if pc.Connection != nil {
		t.Fatalf("NextPendingConnection{} from a future handed out %v", pc.Connection)
	}
	expectFutureRefused(t, "NextPendingConnection{} from a future", pc.Error)
	owner := newProbe(t, s.sys)
	pc = claimNext(s, owner.pid)
	if pc.Connection == nil {
		t.Fatal("the connection did not stay pending for an owner")
	}
	res, err := s.sys.Root.RequestFuture(pc.Connection, &messages.SetOwner{}, replyTimeout).Result()
	if err != nil {
		t.Fatal(err)
	}
	ack, ok := res.(*messages.Ack)
	if !ok {
		t.Fatalf("SetOwner{} from a future answered %T %v", res, res)
	}
	expectFutureRefused(t, "SetOwner{} from a future", ack.Error)
}
