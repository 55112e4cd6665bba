// Package servertest holds the helpers the tests of the Go face and of the
// packages built on it share: a listening server, a second node's view of
// it, a client that closes with the test.
package servertest

import (
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/server"
)

// Listening spawns a server in sys listening on 127.0.0.1 and a free port,
// and returns it with its HOST:PORT; it stops when the test ends.
func Listening(t testing.TB, sys *actor.ActorSystem, opts server.Options) (*server.Server, string) {
	t.Helper()
	srv := server.Spawn(sys, opts)
	t.Cleanup(func() { _ = srv.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, port, err := srv.Listen(ctx, "LocalHost", 0, nil)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	return srv, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
}

// ViewFrom is the same ServerActor seen from another actor system, through
// a PID of its own (a PID caches its route).
func ViewFrom(sys *actor.ActorSystem, srv *server.Server) *server.Server {
	return server.Wrap(sys, actor.NewPID(srv.PID().Address, srv.PID().Id))
}

// Dial connects to addr; the connection closes when the test ends.
func Dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// HalfClosedEcho sends req to an echo server at addr and then a half-close
// (nc -N, HTTP/1.0), and fails t unless the whole of req comes back, then EOF,
// within the time given.
func HalfClosedEcho(t testing.TB, addr string, req []byte, within time.Duration) {
	t.Helper()
	c := Dial(t, addr)
	defer c.Close()
	go func() {
		_, _ = c.Write(req)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	_ = c.SetReadDeadline(time.Now().Add(within))
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, req) {
		t.Fatalf("request of %d bytes then a half-close: the echo was %d bytes, %v", len(req), len(got), err)
	}
}
