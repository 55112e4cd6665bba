package owner_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/servertest"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/owner"
	"github.com/tcpactor/tcpactor/server"
)

// A request followed by a half-close is echoed in full by owner.Echo, with
// default claim options, whether the owner runs on the server's node or on
// another one: the owner closes after its writes on PeerClosed.
func TestEchoOwnerAnswersAHalfClosedRequestInFullLocallyAndFromAnotherNode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		srvSys   *actor.ActorSystem
		ownerSys *actor.ActorSystem
	}{
		{"same node", testkit.Remote(t, 0), testkit.Remote(t, 0)},
		{"another node", testkit.Remote(t, 0), testkit.Remote(t, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := listening(t, tc.srvSys, server.Options{})
			view := viewFrom(tc.ownerSys, srv)
			own := tc.ownerSys.Root.Spawn(owner.New(owner.Config{Server: view.PID(), Handler: owner.Echo()}))
			t.Cleanup(func() { _ = owner.Stop(tc.ownerSys.Root, own, view.PID(), 2*time.Second) })
			for _, size := range []int{1, 100, 64 << 10, 1 << 20} {
				servertest.HalfClosedEcho(t, addr, bytes.Repeat([]byte{'q'}, size), 20*time.Second)
			}
		})
	}
}
