package owner_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/owner"
	"github.com/tcpactor/tcpactor/server"
)

// TestAnOwnerThatTakesAssignedConnectionsServesThemFromAnotherNode: an
// owner on another node subscribed with Assign gets each new connection
// from the server in one message, with the credit of its Claim options, and
// echoes it in full, leaving nothing pending.
func TestAnOwnerThatTakesAssignedConnectionsServesThemFromAnotherNode(t *testing.T) {
	srvSys, ownerSys := testkit.Remote(t, 0), testkit.Remote(t, 1)
	srv, addr := listening(t, srvSys, server.Options{})
	view := viewFrom(ownerSys, srv)
	subscribed := make(chan error, 1)
	o := ownerSys.Root.Spawn(owner.New(owner.Config{Server: view.PID(), Handler: owner.Echo(), Assign: true,
		OnServer: func(_ *actor.PID, err error) {
			select {
			case subscribed <- err:
			default:
			}
		}}))
	t.Cleanup(func() { _ = owner.Stop(ownerSys.Root, o, view.PID(), 2*time.Second) })
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the owner did not subscribe")
	}
	for i, size := range []int{1, 100, 64 << 10, 1 << 20} {
		c := dial(t, addr)
		req := bytes.Repeat([]byte{byte('a' + i)}, size)
		go func() { _, _ = c.Write(req) }()
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		got := make([]byte, size)
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, req) {
			t.Fatalf("connection %d: echo of %d bytes: %v", i, size, err)
		}
		c.Close()
	}
	if st, err := srv.Status(t.Context()); err != nil || st.Pending != 0 {
		t.Fatalf("status %v, %v: want nothing pending", st, err)
	}
}
