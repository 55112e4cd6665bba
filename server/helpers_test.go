package server_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/server"
)

// testCtx bounds a test's calls.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// listening spawns a server in sys listening on 127.0.0.1 and a free port;
// it stops when the test ends.
func listening(t testing.TB, sys *actor.ActorSystem, opts server.Options) (*server.Server, string) {
	t.Helper()
	srv := server.Spawn(sys, opts)
	t.Cleanup(func() { _ = srv.Stop() })
	_, port, err := srv.Listen(testCtx(t), "LocalHost", 0, nil)
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

// eventually polls cond every 5 ms for up to 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// noConnectionsLeft waits until the server has no live connection: every
// Conn released its ConnectionActor.
func noConnectionsLeft(t testing.TB, srv *server.Server) {
	t.Helper()
	eventually(t, "every connection to end", func() bool {
		st, err := srv.Status(testCtx(t))
		return err == nil && st.Active == 0
	})
}

func itoa(p uint16) string { return fmt.Sprint(p) }
