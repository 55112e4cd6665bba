package owner_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/server"
)

// listening spawns a server in sys listening on 127.0.0.1 and a free port;
// it stops when the test ends.
func listening(t testing.TB, sys *actor.ActorSystem, opts server.Options) (*server.Server, string) {
	t.Helper()
	srv := server.Spawn(sys, opts)
	t.Cleanup(func() { _ = srv.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, port, err := srv.Listen(ctx, "LocalHost", 0, nil)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	return srv, net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
}

// viewFrom is the same ServerActor seen from another actor system (its own
// PID copy: a PID caches its route).
func viewFrom(sys *actor.ActorSystem, srv *server.Server) *server.Server {
	return server.Wrap(sys, actor.NewPID(srv.PID().Address, srv.PID().Id))
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
