package actors

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// A connection is never restarted, but should Proto.Actor's supervision
// restart one all the same (a panic escaping Receive's recovery), the
// server's shared Props have no connection to give: the connection still
// ends — its socket closed, its server and the registry of connections
// told — instead of a broken actor taking its place.
func TestAConnectionThatProtoActorRestartsEndsAndIsForgotten(t *testing.T) {
	s := startServer(t, ServerOptions{Connection: ConnectionConfig{Handler: EchoHandler()}})
	sub := newProbe(t, s.sys)
	subscribe(s, sub.pid)
	client := dial(t, s.listen())
	pid := next[*messages.NewConnection](t, sub).Connection
	s.waitStatus("one active", func(st *messages.ServerStatus) bool { return st.Active == 1 })

	proc, ok := s.sys.ProcessRegistry.Get(pid)
	if !ok {
		t.Fatalf("%s is not registered", pid)
	}
	proc.SendSystemMessage(pid, &actor.Restart{}) // what supervision sends

	_ = client.SetReadDeadline(time.Now().Add(replyTimeout))
	if _, err := client.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the client's read after the restart: %v, want the connection closed", err)
	}
	s.waitStatus("no connection active", func(st *messages.ServerStatus) bool { return st.Active == 0 })
	deadline := time.Now().Add(replyTimeout)
	for {
		if _, ok := liveConnections.load(connKey{s.sys, pid.Id}); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restarted connection is still in the registry of connections")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
