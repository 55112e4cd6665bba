// Package testkit holds what the tests of several packages share: quiet
// actor systems, shared remote nodes on loopback, descriptor counts, and a
// TestMain with goleak.
package testkit

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/internal/registry"
	"github.com/tcpactor/tcpactor/internal/remotecfg"
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

// NewSystem starts a quiet actor system, its registry compacted as
// tcpactor's commands make theirs (actors.CompactRegistry), and shuts it
// down when t ends.
func NewSystem(t testing.TB) *actor.ActorSystem {
	t.Helper()
	sys := registry.Compact(actor.NewActorSystem(SystemOptions()...))
	t.Cleanup(sys.Shutdown)
	return sys
}

// LeakOptions are the goleak options every test package uses. A plain
// actor system leaves nothing behind; remote and cluster members do (gRPC
// client connections that keep retrying): each function ignored here must
// name the library goroutine and say why, and nothing is ignored broadly.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		// gnet (the bench's event-loop reference) starts its default ants
		// worker pool when its package initialises, in every binary that
		// links it, and never stops it; nothing of tcpactor runs there.
		goleak.IgnoreAnyFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreAnyFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
	}
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

// Remote nodes in tests.
//
// Two defects of the pinned Proto.Actor remote (and the gRPC it uses) are
// data races under -race, whatever tcpactor does:
//   - Remote.Start writes gRPC's process-wide logger without synchronisation,
//     while gRPC goroutines of every remote already running (servers, client
//     transports still closing) read it;
//   - a graceful Remote.Shutdown clears the endpoint manager's connection map
//     while endpoint-writer goroutines whose peer went away read it.
// So a test binary starts its remote nodes once, one after another, before
// any remote traffic — each start waiting until its gRPC server has done its
// start-up logging (see readyCreds) — shares them between its tests, and
// stops them non-gracefully after the last test (RunTests), which breaks the
// streams and lets every endpoint close on its own.

// RemoteNodes is how many shared remote nodes a test binary has.
const RemoteNodes = 3

var (
	remoteOnce  sync.Once
	remoteNodes []*remoteNode
)

type remoteNode struct {
	sys    *actor.ActorSystem
	r      *remote.Remote
	stream func() // stops the node's stream transport; nil without
}

// RemoteEnv is the environment variable that chooses the transport of the
// shared remote nodes: "stream" puts remotenode.Stream on each (when the
// binary links internal/testkit/remotestream), anything else leaves
// Proto.Actor's remote alone.
const RemoteEnv = "TCPACTOR_REMOTE"

// StreamStarter starts the stream transport on a node; set by importing
// internal/testkit/remotestream. (testkit cannot import remotenode itself:
// package actors' own tests use testkit, and remotenode uses actors.)
var StreamStarter func(*actor.ActorSystem) (stop func(), err error)

var streamNote sync.Once

// Remote returns shared actor system i (0 ≤ i < RemoteNodes) with remote on
// 127.0.0.1 and a port the kernel picked. Every test of the binary shares
// these nodes: spawn what the test needs and stop it before the test ends.
// The package's TestMain must be RunTests, which stops the nodes.
func Remote(t testing.TB, i int) *actor.ActorSystem {
	t.Helper()
	if i < 0 || i >= RemoteNodes {
		t.Fatalf("testkit.Remote(%d): only %d nodes", i, RemoteNodes)
	}
	remoteOnce.Do(func() {
		for range RemoteNodes {
			n, err := startRemote()
			if err != nil {
				t.Fatalf("start remote node: %v", err)
			}
			remoteNodes = append(remoteNodes, n)
		}
	})
	if len(remoteNodes) != RemoteNodes {
		t.Fatal("remote nodes failed to start")
	}
	return remoteNodes[i].sys
}

func startRemote() (*remoteNode, error) {
	sys := registry.Compact(actor.NewActorSystem(SystemOptions()...))
	ready := &readyCreds{TransportCredentials: insecure.NewCredentials(), sig: &readySignal{ch: make(chan struct{})}}
	cfg := remote.Configure("127.0.0.1", 0,
		remote.WithServerOptions(grpc.Creds(ready)), remote.WithDialOptions(remotecfg.DialOptions()...))
	// The shared nodes never come back once stopped: one attempt to reach a
	// stopped node is enough (the default, five two seconds apart, only
	// makes the binary's end wait for them).
	cfg.MaxRetryCount = 1
	r := remote.NewRemote(sys, cfg)
	r.Start()
	c, err := net.DialTimeout("tcp", sys.Address(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	select {
	case <-ready.sig.ch:
	case <-time.After(5 * time.Second):
		return nil, errors.New("gRPC server of " + sys.Address() + " did not start")
	}
	n := &remoteNode{sys: sys, r: r}
	if os.Getenv(RemoteEnv) == "stream" {
		if StreamStarter == nil {
			streamNote.Do(func() {
				fmt.Fprintf(os.Stderr, "testkit: %s=stream, but this test binary does not link internal/testkit/remotestream: Proto.Actor's remote only\n", RemoteEnv)
			})
			return n, nil
		}
		stop, err := StreamStarter(sys)
		if err != nil {
			return nil, fmt.Errorf("stream transport on %s: %w", sys.Address(), err)
		}
		n.stream = stop
	}
	return n, nil
}

// RunTests is a test binary's TestMain: it runs the tests, stops the shared
// remote nodes, and fails the run if any goroutine is left behind.
func RunTests(m *testing.M) {
	code := m.Run()
	for _, n := range remoteNodes {
		if n.stream != nil {
			n.stream()
		}
	}
	for _, n := range remoteNodes {
		n.r.Shutdown(false)
		n.sys.Shutdown()
	}
	if code == 0 {
		if err := findLeaks(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// leakPatience is how long RunTests lets goroutines end. The pinned
// remote's endpoint writer to a node that a test killed keeps reconnecting
// for about ten seconds (five attempts, two seconds apart) before it gives up
// and closes its gRPC connection; goleak's own retries stop after about two.
const leakPatience = 15 * time.Second

func findLeaks() error {
	deadline := time.Now().Add(leakPatience)
	for {
		err := goleak.Find(LeakOptions()...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(250 * time.Millisecond)
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
