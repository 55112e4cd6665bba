package main

// The `remote` kind of the bench: the handler on a second node.
//
// The server child of kind remote runs a ServerActor with no Handler on an
// actor system with a remote endpoint (127.0.0.1, a port the kernel picks),
// and starts a second child process of its own — `tcpactor-bench server
// --kind remote-owner --owner-of HOST:PORT/NAME` — which runs the owner side:
// owner.New with owner.Echo, subscribed to that server over
// remote. Every Received, Write (carrying the next read's credit,
// Write.demand) and WriteAck crosses the two nodes' gRPC streams. The load
// generator talks to the server node only, as a client of a real deployment
// would; the owner node is stopped with the server node.
//
// The memory figures (bulk peak RSS, idle memory) are the server node's; the
// owner node's memory is not in them.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/owner"
	"github.com/tcpactor/tcpactor/remotenode"
	"github.com/tcpactor/tcpactor/server"
)

// The kinds of the remote bench.
const (
	kindRemote          = "remote"            // tcpactor server node + owner actor (owner.New) on a second node
	kindRemoteOwner     = "remote-owner"      // hidden: the owner node of kind remote
	kindRemoteStream    = "remote-stream"     // kind remote with remotenode.Stream on both nodes
	kindRemoteStreamTLS = "remote-stream-tls" // kind remote-tls with remotenode.Stream (mutual TLS) on both nodes
)

// isRemoteKind tells the kinds with an owner on a second node.
func isRemoteKind(k string) bool {
	return k == kindRemote || k == kindRemoteTLS || k == kindRemoteStream || k == kindRemoteStreamTLS
}

// startBenchStream starts the stream transport on a bench node whose
// remote has just started (mutual TLS with the certificates in tlsDir, when
// given).
func startBenchStream(sys *actor.ActorSystem, tlsDir string) error {
	s := remotenode.Stream{}
	if tlsDir != "" {
		t := benchTLS(tlsDir)
		s.TLS = &t
	}
	_, err := s.Start(sys)
	return err
}

// benchServerName is the actor name of the remote kind's ServerActor.
const benchServerName = "bench"

// benchRemoteConfig is the remote configuration of both nodes of the remote
// kinds: the guard every tcpactor node runs (remotenode.Guard, 64 MiB gRPC
// messages) on 127.0.0.1, a port the kernel picks, and with tlsDir (kind
// remote-tls) mutual TLS with the certificates there.
func benchRemoteConfig(sys *actor.ActorSystem, tlsDir string) (*remote.Config, error) {
	cfg := remotenode.NewGuard(sys.Logger()).Config("127.0.0.1", 0)
	if tlsDir != "" {
		if err := benchTLS(tlsDir).Apply(cfg); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// benchSystem is an actor system that logs nothing, as the other bench
// servers: the node that stops last would log its peer's loss, and the
// figures and errors the bench reports come from the load itself.
func benchSystem() *actor.ActorSystem {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	return actors.CompactRegistry(actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger })))
}

// remoteEcho is the server node of the remote kind.
type remoteEcho struct {
	*actorEcho
	owner  *child
	tlsDir string // kind remote-tls: the throwaway PKI, removed on stop
}

// startRemoteEcho starts the server node and its owner node, and returns once
// the owner is subscribed to the server. cpuprofile, when set, names the
// server node's profile; the owner node writes its own next to it
// (NAME-owner.pprof). With withTLS (kind remote-tls) the two nodes talk
// mutual TLS, with a CA and a certificate made for this run; withStream
// (kinds remote-stream, remote-stream-tls) puts remotenode.Stream on both.
func startRemoteEcho(backlog int, cpuprofile string, withTLS, withStream bool, stderr io.Writer) (*remoteEcho, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	var tlsDir string
	if withTLS {
		if tlsDir, err = writeBenchPKI(); err != nil {
			return nil, fmt.Errorf("make certificates: %w", err)
		}
	}
	sys := benchSystem()
	cfg, err := benchRemoteConfig(sys, tlsDir)
	if err != nil {
		os.RemoveAll(tlsDir)
		return nil, err
	}
	rem := remote.NewRemote(sys, cfg)
	rem.Start()
	if withStream {
		if err := startBenchStream(sys, tlsDir); err != nil {
			os.RemoveAll(tlsDir)
			return nil, err
		}
	}
	r := &remoteEcho{actorEcho: &actorEcho{sys: sys}, tlsDir: tlsDir}
	srv, err := server.SpawnNamed(sys, benchServerName, server.Options{})
	if err != nil {
		os.RemoveAll(tlsDir)
		return nil, err
	}
	r.srv = srv
	ctx, cancel := context.WithTimeout(context.Background(), server.DefaultTimeout)
	defer cancel()
	_, port, err := srv.Listen(ctx, "127.0.0.1", 0, &messages.ListenOptions{Backlog: int32(backlog)})
	if err != nil {
		r.stop()
		return nil, err
	}
	r.bind = int(port)
	var ownerProfile string
	if cpuprofile != "" {
		ownerProfile = strings.TrimSuffix(cpuprofile, ".pprof") + "-owner.pprof"
	}
	extra := []string{"--owner-of", sys.Address() + "/" + benchServerName}
	if tlsDir != "" {
		extra = append(extra, "--remote-tls-dir", tlsDir)
	}
	if withStream {
		extra = append(extra, "--remote-stream")
	}
	r.owner, err = startChild(self, kindRemoteOwner, ownerProfile, 0, stderr, extra...)
	if err != nil {
		r.stop()
		return nil, err
	}
	return r, nil
}

// stop ends the server, then the owner node (which thus hears of the
// connections' end instead of the server node retrying to reach it).
func (r *remoteEcho) stop() {
	r.actorEcho.stop()
	if r.owner != nil {
		_ = r.owner.Stop()
	}
	if t := remotenode.StreamOf(r.sys); t != nil {
		t.Stop()
	}
	if r.tlsDir != "" {
		os.RemoveAll(r.tlsDir)
	}
}

// ownerNode is the owner node of the remote kind (tcpactor-bench server
// --kind remote-owner). It has no port of its own for the load; stats counts
// the connections it claimed and serves.
type ownerNode struct {
	sys            *actor.ActorSystem
	claimed, ended atomic.Int64
}

// startOwnerNode starts an actor system with a remote endpoint (mutual TLS
// with the certificates in tlsDir, when given; remotenode.Stream too with
// withStream) and an owner actor
// (owner.New, owner.Echo) subscribed to the server at target, and
// returns once the subscription is acknowledged (owner.Config.OnServer).
func startOwnerNode(target, tlsDir string, withStream bool) (*ownerNode, error) {
	pid, err := ownerOf(target)
	if err != nil {
		return nil, err
	}
	o := &ownerNode{sys: benchSystem()}
	cfg, err := benchRemoteConfig(o.sys, tlsDir)
	if err != nil {
		return nil, err
	}
	rem := remote.NewRemote(o.sys, cfg)
	rem.Start()
	if withStream {
		if err := startBenchStream(o.sys, tlsDir); err != nil {
			return nil, err
		}
	}
	subscribed := make(chan error, 1)
	onServer := func(_ *actor.PID, err error) { // runs in the owner actor: never blocks
		select {
		case subscribed <- err:
		default:
		}
	}
	echo := owner.Echo()
	counted := func() owner.Handler { return &countedOwner{Handler: echo(), node: o} }
	// Assign: the server hands each connection over in one message (Subscribe.assign).
	o.sys.Root.Spawn(owner.New(owner.Config{Server: pid, Handler: counted, OnServer: onServer, Assign: true}))
	select {
	case err := <-subscribed:
		if err != nil {
			return nil, fmt.Errorf("owner node: %w", err)
		}
	case <-time.After(server.DefaultTimeout + 5*time.Second):
		return nil, fmt.Errorf("owner node: no answer from %s", target)
	}
	return o, nil
}

// ownerOf parses --owner-of HOST:PORT/NAME (the server node made it) and
// checks that the node answers before any remote traffic: the pinned remote
// would retry an unreachable node for ~10 s.
func ownerOf(v string) (*actor.PID, error) {
	addr, name, ok := strings.Cut(v, "/")
	if !ok || addr == "" || name == "" {
		return nil, badUsage("--owner-of %q: want HOST:PORT/NAME", v)
	}
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, fmt.Errorf("cannot reach node %s: %w", addr, err)
	}
	c.Close()
	return actor.NewPID(addr, name), nil
}

// countedOwner is an owner handler that counts, for the stats command, the
// connections its node claimed (Connected) and finished (Disconnected). It
// passes on the owner.Handler methods only: owner.Echo has no PeerClosed.
type countedOwner struct {
	owner.Handler
	node *ownerNode
}

func (c *countedOwner) Connected(o *owner.Owned) {
	c.node.claimed.Add(1)
	c.Handler.Connected(o)
}

func (c *countedOwner) Disconnected(o *owner.Owned, err *messages.Error) {
	c.node.ended.Add(1)
	c.Handler.Disconnected(o, err)
}

func (o *ownerNode) port() int { return 0 }

func (o *ownerNode) stats() (int64, int64, int64, error) {
	c := o.claimed.Load()
	return c, c - o.ended.Load(), 0, nil
}

// stop does nothing: the process exits right after, and the server node
// learns of it from its remote.
func (o *ownerNode) stop() {}
