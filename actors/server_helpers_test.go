package actors

import (
	"net"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

const replyTimeout = 5 * time.Second

// testServer is a ServerActor in a quiet actor system of its own.
type testServer struct {
	t   testing.TB
	sys *actor.ActorSystem
	pid *actor.PID
}

// startServer spawns a ServerActor and stops it when the test ends.
func startServer(t testing.TB, opts ServerOptions) *testServer {
	t.Helper()
	sys := testkit.NewSystem(t)
	pid := sys.Root.Spawn(NewServer(opts))
	t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
	return &testServer{t: t, sys: sys, pid: pid}
}

// ask sends a request and returns its reply, failing the test on time-out.
func ask[R any](s *testServer, msg any) R {
	s.t.Helper()
	res, err := s.sys.Root.RequestFuture(s.pid, msg, replyTimeout).Result()
	if err != nil {
		s.t.Fatalf("%T: %v", msg, err)
	}
	r, ok := res.(R)
	if !ok {
		s.t.Fatalf("%T answered %T (%v)", msg, res, res)
	}
	return r
}

// listen makes the server listen on 127.0.0.1 with a port the kernel picks.
func (s *testServer) listen() string {
	s.t.Helper()
	r := ask[*messages.ListenResult](s, &messages.Listen{Address: "127.0.0.1"})
	if !r.Ok {
		s.t.Fatalf("listen: %v", r.Error)
	}
	return net.JoinHostPort(r.Address, itoa(r.Port))
}

func (s *testServer) status() *messages.ServerStatus {
	s.t.Helper()
	return ask[*messages.ServerStatus](s, &messages.GetStatus{})
}

// waitStatus polls GetStatus until cond holds, for at most five seconds.
func (s *testServer) waitStatus(what string, cond func(*messages.ServerStatus) bool) *messages.ServerStatus {
	s.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := s.status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s; status: %v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dial connects a client and closes it when the test ends.
func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, replyTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// probe is testkit's Probe, with the pid field these tests use.
type probe struct {
	*testkit.Probe
	pid *actor.PID
}

func newProbe(t testing.TB, sys *actor.ActorSystem) *probe {
	t.Helper()
	p := testkit.NewProbe(t, sys)
	return &probe{Probe: p, pid: p.PID}
}

// next returns the next message of type T the probe got, skipping others.
func next[T any](t testing.TB, p *probe) T {
	t.Helper()
	return testkit.Next[T](t, p.Probe)
}
