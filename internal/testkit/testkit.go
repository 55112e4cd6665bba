// Package testkit holds what the tests of several packages share: quiet
// actor systems, remote pairs on loopback, descriptor counts and the goleak
// options that name Proto.Actor's own long-lived goroutines.
package testkit

import (
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// QuietLogger discards Proto.Actor's logging so test output stays readable.
func QuietLogger(*actor.ActorSystem) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// SystemOptions make an actor system quiet. The dead-letter throttle starts a
// goroutine that lives for one throttle interval after a dead letter (1 s by
// default); a short interval lets goleak see it end instead of ignoring it.
func SystemOptions() []actor.ConfigOption {
	return []actor.ConfigOption{
		actor.WithLoggerFactory(QuietLogger),
		actor.WithDeadLetterThrottleInterval(10 * time.Millisecond),
	}
}

// NewSystem starts a quiet actor system and shuts it down when t ends.
func NewSystem(t testing.TB) *actor.ActorSystem {
	t.Helper()
	sys := actor.NewActorSystem(SystemOptions()...)
	t.Cleanup(sys.Shutdown)
	return sys
}

// LeakOptions are the goleak options every test package uses. A plain
// actor system leaves nothing behind; remote and cluster members do (gRPC
// client connections that keep retrying): each function ignored here must
// name the library goroutine and say why, and nothing is ignored broadly.
func LeakOptions() []goleak.Option {
	return nil
}

// OpenFDs counts this process's open file descriptors.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("read /proc/self/fd: %v", err)
	}
	return len(ents)
}

// NewRemoteSystem starts a quiet actor system with remote on 127.0.0.1 and a
// port the kernel picks, and shuts both down when t ends.
//
// Proto.Actor's Remote.Start writes gRPC's process-wide logger without
// synchronisation, and the gRPC server it starts reads that logger from its
// Serve goroutine. Under -race a second Start in the same process is a data
// race unless the first server's start-up read happens-before it. So each
// start waits for its own server to hand a connection to the transport
// credentials below (a goroutine Serve starts after its read), which orders
// the read before anything the test does next. Call it from one goroutine.
func NewRemoteSystem(t testing.TB, opts ...remote.ConfigOption) (*actor.ActorSystem, *remote.Remote) {
	t.Helper()
	sys := actor.NewActorSystem(SystemOptions()...)
	ready := &readyCreds{TransportCredentials: insecure.NewCredentials(), sig: &readySignal{ch: make(chan struct{})}}
	opts = append(opts, remote.WithServerOptions(grpc.Creds(ready)))
	r := remote.NewRemote(sys, remote.Configure("127.0.0.1", 0, opts...))
	r.Start()
	if c, err := net.DialTimeout("tcp", sys.Address(), 5*time.Second); err == nil {
		select {
		case <-ready.sig.ch:
		case <-time.After(5 * time.Second):
			t.Errorf("remote %s: gRPC server did not start", sys.Address())
		}
		c.Close()
	} else {
		t.Errorf("remote %s: %v", sys.Address(), err)
	}
	n := trackEndpoints(sys)
	t.Cleanup(func() {
		r.Shutdown(true)
		n.forget()
		sys.Shutdown()
	})
	return sys, r
}

// Proto.Actor's endpoint manager (pinned version) clears its connection map
// in Shutdown while an endpoint writer whose peer went away may still be
// reading it from its stream goroutine: a data race under -race. A node's
// Shutdown therefore first lets every other live node finish handling the
// loss of its endpoints: each node records the peers its writers connected
// to, and when one of them shuts down, the others wait for their own
// EndpointTerminatedEvent about it, which the writer goroutine publishes
// after the endpoint manager has handled it.
type endpointNode struct {
	addr       string
	mu         sync.Mutex
	connected  map[string]bool
	terminated chan string
}

var (
	nodesMu sync.Mutex
	nodes   = map[*endpointNode]bool{}
)

func trackEndpoints(sys *actor.ActorSystem) *endpointNode {
	n := &endpointNode{addr: sys.Address(), connected: map[string]bool{}, terminated: make(chan string, 64)}
	sys.EventStream.Subscribe(func(evt any) {
		switch e := evt.(type) {
		case *remote.EndpointConnectedEvent:
			n.mu.Lock()
			n.connected[e.Address] = true
			n.mu.Unlock()
		case *remote.EndpointTerminatedEvent:
			n.mu.Lock()
			was := n.connected[e.Address]
			delete(n.connected, e.Address)
			n.mu.Unlock()
			if was {
				n.terminated <- e.Address
			}
		}
	})
	nodesMu.Lock()
	nodes[n] = true
	nodesMu.Unlock()
	return n
}

// forget runs after n's Shutdown: the other nodes connected to n wait (at
// most five seconds) for the loss of their endpoint to n.
func (n *endpointNode) forget() {
	nodesMu.Lock()
	delete(nodes, n)
	var peers []*endpointNode
	for p := range nodes {
		peers = append(peers, p)
	}
	nodesMu.Unlock()
	for _, p := range peers {
		p.mu.Lock()
		waiting := p.connected[n.addr]
		p.mu.Unlock()
		deadline := time.After(5 * time.Second)
		for waiting {
			select {
			case a := <-p.terminated:
				waiting = a != n.addr
			case <-deadline:
				waiting = false
			}
		}
	}
}

// readyCreds are insecure transport credentials that report the first
// server handshake, which Serve's connection goroutine performs after the
// server's start-up logging.
type readyCreds struct {
	credentials.TransportCredentials
	sig *readySignal
}

type readySignal struct {
	once sync.Once
	ch   chan struct{}
}

// ServerHandshake takes the first connection — the probe NewRemoteSystem
// dials — away from gRPC (ErrConnDispatched makes gRPC neither log nor use
// it) and reports it; every later one is an ordinary insecure handshake.
func (c *readyCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	probe := false
	c.sig.once.Do(func() { probe = true })
	if probe {
		conn.Close()
		close(c.sig.ch)
		return nil, nil, credentials.ErrConnDispatched
	}
	return c.TransportCredentials.ServerHandshake(conn)
}

func (c *readyCreds) Clone() credentials.TransportCredentials {
	return &readyCreds{TransportCredentials: c.TransportCredentials.Clone(), sig: c.sig}
}
