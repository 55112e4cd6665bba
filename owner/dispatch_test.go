package owner_test

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/owner"
)

// goroutineID is the number in the first line of this goroutine's stack
// ("goroutine 42 [running]:").
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := bytes.Cut(bytes.TrimPrefix(buf, []byte("goroutine ")), []byte(" "))
	return string(id)
}

// goroutineOwner records the goroutine its Received runs on.
type goroutineOwner struct {
	owner.Handler
	ran chan string
}

func (g *goroutineOwner) Received(*owner.Owned, []byte) { g.ran <- goroutineID() }

// TestNewOwnerRunsItsHandlerOnTheSendersGoroutine: an owner actor made by
// NewOwner runs on the goroutine that sends to it (actors.OwnerDispatcher),
// so that a connection's reader goroutine carries a chunk through the owner
// and back into the connection without a hand-over — Proto.Actor's default
// dispatcher would run it on a goroutine of its own.
func TestNewOwnerRunsItsHandlerOnTheSendersGoroutine(t *testing.T) {
	sys := testkit.NewSystem(t)
	ran := make(chan string, 1)
	o := sys.Root.Spawn(owner.New(owner.Config{Handler: func() owner.Handler {
		return &goroutineOwner{Handler: owner.Echo()(), ran: ran}
	}}))
	t.Cleanup(func() { _ = sys.Root.StopFuture(o).Wait() })
	// A connection that never existed: the owner takes it on at its first
	// Received (and learns of its end from the watch).
	conn := actor.NewPID(sys.Address(), "no-such-connection")
	sys.Root.Send(o, &messages.Received{Connection: conn, Data: []byte("x")})
	select {
	case got := <-ran:
		if want := goroutineID(); got != want {
			t.Fatalf("the owner's Received ran on goroutine %s, want the sender's (%s)", got, want)
		}
	default:
		t.Fatal("Send returned before the owner's Received ran: the owner is not run on the sender's goroutine")
	}
}
