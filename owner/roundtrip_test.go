package owner_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/owner"
	"github.com/tcpactor/tcpactor/server"
)

// echoClient dials an owner.Echo served by owner.New on the server's node
// and returns a 64-byte round trip through it: the client's write, the
// connection's Received to the owner, the owner's Write (with demand) back
// into the connection, the echo read.
func echoClient(t testing.TB) func() {
	sys := testkit.NewSystem(t)
	srv, addr := listening(t, sys, server.Options{})
	own := sys.Root.Spawn(owner.New(owner.Config{Server: srv.PID(), Handler: owner.Echo(), Assign: true}))
	t.Cleanup(func() { _ = owner.Stop(sys.Root, own, srv.PID(), 2*time.Second) })
	cc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	_ = cc.SetDeadline(time.Now().Add(time.Minute))
	msg, got := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), make([]byte, 64)
	return func() {
		if _, err := cc.Write(msg); err != nil {
			t.Fatalf("write: %v", err)
		}
		if _, err := io.ReadFull(cc, got); err != nil || string(got) != string(msg) {
			t.Fatalf("echo %q, %v; want %q", got, err, msg)
		}
	}
}

// TestAnOwnerEchoRoundTripAllocatesFourObjects: a 64-byte message echoed
// through owner.New and owner.Echo on the connection's node costs four
// allocations — the Received and its copy of the bytes (the owner keeps
// them), the Write and the envelope that carries its sender — and none
// for the owner's mailbox (actors.OwnerMailbox: Proto.Actor's default
// allocates a closure per run), its map of connections or the small
// donated buffer that no read pool takes. (Under -race, sync.Pool drops a
// quarter of what it is given: hence a margin.)
func TestAnOwnerEchoRoundTripAllocatesFourObjects(t *testing.T) {
	roundTrip := echoClient(t)
	for range 100 { // the pools fill, the connection is assigned and served
		roundTrip()
	}
	most := 4.0
	if raceOn {
		most = 6
	}
	if n := testing.AllocsPerRun(500, roundTrip); n > most {
		t.Fatalf("%.1f allocations a round trip; want at most %.0f", n, most)
	}
}
