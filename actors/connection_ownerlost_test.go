package actors

import (
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// TestAConnectionWhoseOwnersNodeIsReportedLostStillTellsItsOwner: a
// report that the owner's node is lost (Terminated{AddressTerminated}, as
// the remote's endpoint watcher and the owner watcher deliver it) closes
// the connection, but may be false — Proto.Actor reports an address lost
// when a stale endpoint to a node restarted there ends — so the owner is
// still told, as after its own Close: its writes are flushed and
// acknowledged, and Disconnected comes last, saying why.
func TestAConnectionWhoseOwnersNodeIsReportedLostStillTellsItsOwner(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	end := watchEnd(t, sys, conn)
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, nil)
	sys.Root.Send(conn, &messages.Write{Data: []byte("last words"), AckId: 7})
	if a := expectNext[*messages.WriteAck](t, owner); a.AckId != 7 {
		t.Fatalf("WriteAck %d, want 7", a.AckId)
	}

	p, ok := sys.ProcessRegistry.GetLocal(conn.Id)
	if !ok {
		t.Fatal("the connection is not registered")
	}
	p.SendSystemMessage(conn, &actor.Terminated{Who: owner.pid, Why: actor.TerminatedReason_AddressTerminated})

	got, err := readAll(t, cc)
	if err != nil || string(got) != "last words" {
		t.Fatalf("the peer read %q, %v; want the owner's write, then EOF", got, err)
	}
	d := expectNext[*messages.Disconnected](t, owner)
	if d.Error.GetCode() != messages.SocketError_SOCKET_ERROR_NETWORK || !strings.Contains(d.Error.GetMessage(), "reported lost") {
		t.Fatalf("Disconnected with %v, want a network error saying the owner's node was reported lost", d.Error)
	}
	cc.Close()
	waitClosed(t, end, "the connection's end")
	owner.nothingFor(t, 100*time.Millisecond)
}
