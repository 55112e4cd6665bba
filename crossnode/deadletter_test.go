package crossnode

import (
	"net"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// A Write sent from this process to a connection of a `tcpactor node`
// process after the connection ended is answered with WriteFailed, over
// the remote, by the node the connection lived on.
func TestAWriteToAConnectionThatEndedInAnotherProcessIsAnsweredWithWriteFailed(t *testing.T) {
	bin := buildTCPActor(t)
	srv := startNode(t, bin, "server", "--remote", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--name", "echo",
		"--log-level", logLevel())
	line, _ := srv.waitLine("listening on ", time.Time{}, 10*time.Second)
	addr := addrAfter(line, "listening on ")
	rline, _ := srv.waitLine("remote on ", time.Time{}, 10*time.Second)
	server := actor.NewPID(addrAfter(rline, "remote on "), "echo")

	sys := testkit.Remote(t, 0)
	got := make(chan any, 16)
	owner := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.PendingConnection:
			if m.Connection != nil {
				ctx.Watch(m.Connection)
			}
			got <- m
		case *actor.Terminated, *messages.Disconnected, *messages.WriteFailed, *messages.Ack:
			got <- m
		}
	}))
	t.Cleanup(func() { _ = sys.Root.StopFuture(owner).Wait() })
	next := func() any {
		t.Helper()
		select {
		case m := <-got:
			return m
		case <-time.After(20 * time.Second):
			t.Fatal("no message within 20 s")
			return nil
		}
	}

	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var conn *actor.PID
	for deadline := time.Now().Add(20 * time.Second); conn == nil && time.Now().Before(deadline); {
		sys.Root.RequestWithCustomSender(server, &messages.NextPendingConnection{Owner: owner}, owner)
		if p, ok := next().(*messages.PendingConnection); ok && p.Connection != nil {
			conn = p.Connection
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if conn == nil {
		t.Fatal("nothing to claim")
	}
	sys.Root.Send(conn, &messages.Abort{})
	// Both, in either order: the owner's mailbox takes Terminated (a system
	// message) ahead of a Disconnected that reached it at the same time.
	for disconnected, ended := false, false; !disconnected || !ended; {
		switch m := next().(type) {
		case *messages.Disconnected:
			disconnected = true
		case *actor.Terminated:
			ended = true // the actor has left its node's registry
		default:
			t.Fatalf("got %T while waiting for the connection's end", m)
		}
	}
	sys.Root.RequestWithCustomSender(conn, &messages.Write{Data: []byte("too late"), AckId: 9}, owner)
	for {
		switch m := next().(type) {
		case *messages.WriteFailed:
			if m.AckId != 9 || !m.Error.Failed() {
				t.Fatalf("WriteFailed %v", m)
			}
			return
		case *messages.Ack: // Abort's
		default:
			t.Fatalf("got %T, want WriteFailed", m)
		}
	}
}
