package actors

import (
	"net"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// watchCounter stands where an owner on another node would: a process in
// that node's registry, to which the remote delivers as to any actor. It
// reports each Watch and Unwatch it receives (an actor's context would
// keep them to itself) and ignores its user messages.
type watchCounter struct{ events chan any }

func (w *watchCounter) SendUserMessage(*actor.PID, any) {}
func (w *watchCounter) Stop(*actor.PID)                 {}
func (w *watchCounter) SendSystemMessage(_ *actor.PID, m any) {
	switch m.(type) {
	case *actor.Watch, *actor.Unwatch:
		w.events <- m
	}
}

// TestConnectionsShareOneWatchOfTheirOwnerOnAnotherNode: the connections
// of node A owned by one actor of node B watch it once between them, and
// that watch ends once the last of them has ended; the owner's end still
// closes every one of them.
func TestConnectionsShareOneWatchOfTheirOwnerOnAnotherNode(t *testing.T) {
	sysA, sysB := testkit.Remote(t, 0), testkit.Remote(t, 1)
	local := &testServer{t: t, sys: sysA, pid: sysA.Root.Spawn(NewServer(ServerOptions{}))}
	t.Cleanup(func() { _ = sysA.Root.StopFuture(local.pid).Wait() })
	addr := local.listen()
	fromB := &testServer{t: t, sys: sysB, pid: actor.NewPID(sysA.Address(), local.pid.Id)}
	claimFor := func(owner *actor.PID) (net.Conn, *actor.PID) {
		t.Helper()
		c := dial(t, addr)
		local.waitStatus("a pending connection", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
		p := ask[*messages.PendingConnection](fromB, &messages.NextPendingConnection{Owner: owner})
		if p.Connection == nil {
			t.Fatalf("claim: %v", p)
		}
		return c, p.Connection
	}

	// Three connections of one owner: one Watch between them, and one
	// Unwatch after the last has ended.
	counter := &watchCounter{events: make(chan any, 64)}
	owner, ok := sysB.ProcessRegistry.Add(counter, "watch-counter-"+connectionName())
	if !ok {
		t.Fatal("the counting owner's name is taken")
	}
	t.Cleanup(func() { sysB.ProcessRegistry.Remove(owner) })
	var clients []net.Conn
	var conns []*actor.PID
	for range 3 {
		c, conn := claimFor(owner)
		clients, conns = append(clients, c), append(conns, conn)
	}
	for i, conn := range conns { // as the owner would, from its node
		if a := call[*messages.Ack](t, sysB, conn, &messages.Close{}); a.Error.Failed() {
			t.Fatalf("Close: %v", a.Error)
		}
		clients[i].Close()
	}
	watches, unwatches := 0, 0
	deadline := time.After(10 * time.Second)
	for unwatches == 0 || unwatches < watches {
		select {
		case m := <-counter.events:
			switch m := m.(type) {
			case *actor.Watch:
				watches++
				if !m.Watcher.Equal(OwnerWatcher(sysA.Address())) {
					t.Errorf("watched by %v, want node A's owner watcher", m.Watcher)
				}
			case *actor.Unwatch:
				unwatches++
			}
		case <-deadline:
			t.Fatalf("after 10 s: %d watches, %d unwatches of the owner", watches, unwatches)
		}
	}
	if watches != 1 || unwatches != 1 {
		t.Fatalf("three connections of one owner: %d watches and %d unwatches of it, want one of each", watches, unwatches)
	}

	// The owner's end ends each of its connections.
	realOwner := newProbe(t, sysB)
	clients = clients[:0]
	for range 2 {
		c, _ := claimFor(realOwner.pid)
		clients = append(clients, c)
	}
	if err := sysB.Root.StopFuture(realOwner.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		if b, err := readAll(t, c); err != nil || len(b) != 0 {
			t.Fatalf("client %d after its owner stopped: %q, %v; want EOF", i, b, err)
		}
	}
}

// TestPidKeysOfDifferentPIDsDiffer: the owner watcher's and the server's
// maps are keyed by a PID's address and id; joined with a "/" these two
// PIDs shared a key.
func TestPidKeysOfDifferentPIDsDiffer(t *testing.T) {
	a, b := actor.NewPID("127.0.0.1:1/x", "y"), actor.NewPID("127.0.0.1:1", "x/y")
	if pidKey(a) == pidKey(b) {
		t.Fatalf("%v and %v share the key %v", a, b, pidKey(a))
	}
}
