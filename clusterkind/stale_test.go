package clusterkind_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/test"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/clusterkind"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// member starts a cluster member in its own actor system on loopback,
// hosting kinds, and shuts it down when t ends.
func member(t *testing.T, agent *test.InMemAgent, kinds ...*cluster.Kind) *cluster.Cluster {
	t.Helper()
	sys := actor.NewActorSystem(testkit.SystemOptions()...)
	cfg := cluster.Configure("substale", test.NewTestProvider(agent), disthash.New(),
		remote.Configure("127.0.0.1", 0), cluster.WithKinds(kinds...))
	// No gossip while the test runs: the members come from the test
	// provider, and the pinned cluster's gossip sends a state that its
	// gossip actor goes on changing (GossipActor.onSetGossipState against
	// the endpoint writer's marshalling of the last GossipRequest), a data
	// race that the race detector reports in loaded runs of these tests.
	cfg.GossipInterval = time.Hour
	c := cluster.New(sys, cfg)
	c.StartMember()
	t.Cleanup(func() { c.Shutdown(false) }) // shuts sys down too; a graceful one races in the remote
	// remote.Start sets gRPC's global logger, which a gRPC server logs with
	// as it starts serving: the next member starts once this one's server
	// has sent its first HTTP/2 frame to a client (the race detector sees
	// the two otherwise). The client stays connected until the test ends.
	conn, err := net.DialTimeout("tcp", sys.Address(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		t.Fatalf("gRPC server of %s: %v", sys.Address(), err)
	}
	return c
}

// serverActorOf finds the ServerActor an activation spawned as its child.
func serverActorOf(t *testing.T, sys *actor.ActorSystem, activation *actor.PID) *actor.PID {
	t.Helper()
	for _, bucket := range sys.ProcessRegistry.LocalPIDs.LocalPIDs {
		for _, id := range bucket.Keys() {
			if strings.HasPrefix(id, activation.Id+"/") {
				return actor.NewPID(sys.Address(), id)
			}
		}
	}
	t.Fatalf("no child of activation %v on its member", activation)
	return nil
}

// TestAStaleReportOfASubscribersNodeLeavesItSubscribedToTheIdentity: a
// handler on member A keeps itself subscribed to a server identity hosted
// on member B (KeepSubscribedToServer, not again for the test's length);
// the remote on B reports A lost (Terminated{AddressTerminated} for A's
// subscribers) while A is up. The handler still hears of the next
// connection; a subscriber that named another start of A is dropped (so the
// check is known to be done).
//
// Two cluster members in one process do not end cleanly (the pinned
// remote's graceful shutdown races with its endpoint readers, and a hard one
// leaves gRPC connections retrying), so the test runs them in a child
// process of this binary, which exits once the members have done their part.
func TestAStaleReportOfASubscribersNodeLeavesItSubscribedToTheIdentity(t *testing.T) {
	if os.Getenv(staleChildEnv) == "" {
		runChild(t, "TestAStaleReportOfASubscribersNodeLeavesItSubscribedToTheIdentity")
		return
	}
	staleReportLeavesSubscribed(t, func(cA, _ *cluster.Cluster, identity string, pid *actor.PID) func() {
		return clusterkind.KeepSubscribedToServer(cA, identity, pid, time.Hour)
	})
}

// TestAStaleReportOfTheNodeOfASubscriberOnAnotherMemberLeavesItSubscribed:
// as TestAStaleReportOfASubscribersNodeLeavesItSubscribedToTheIdentity, but
// member B keeps the handler on member A subscribed, naming A's start id
// (WithSubscriberStartID): KeepSubscribedToServer used to subscribe a pid
// of another member without one, and the stale report dropped it.
func TestAStaleReportOfTheNodeOfASubscriberOnAnotherMemberLeavesItSubscribed(t *testing.T) {
	if os.Getenv(staleChildEnv) == "" {
		runChild(t, "TestAStaleReportOfTheNodeOfASubscriberOnAnotherMemberLeavesItSubscribed")
		return
	}
	staleReportLeavesSubscribed(t, func(cA, cB *cluster.Cluster, identity string, pid *actor.PID) func() {
		return clusterkind.KeepSubscribedToServer(cB, identity, pid, time.Hour,
			clusterkind.WithSubscriberStartID(actors.StartID(cA.ActorSystem)))
	})
}

// staleReportLeavesSubscribed runs the story of the two tests above in a
// child process: keep subscribes the handler on member A to the identity,
// which member B hosts, and keeps it subscribed (not again for the test's
// length).
func staleReportLeavesSubscribed(t *testing.T, keep func(cA, cB *cluster.Cluster, identity string, pid *actor.PID) (stop func())) {
	agent := test.NewInMemAgent()
	identity := net.JoinHostPort("127.0.0.1", strconv.Itoa(testkit.FreePort(t)))
	cB := member(t, agent, clusterkind.Kind(clusterkind.Config{Topic: func(string) string { return "" }}))
	cA := member(t, agent)
	sysA := cA.ActorSystem

	live, gone := testkit.NewProbe(t, sysA), testkit.NewProbe(t, sysA)
	t.Cleanup(keep(cA, cB, identity, live.PID))
	activation := cA.Get(identity, clusterkind.Name)
	if activation == nil {
		t.Fatalf("identity %s not activated", identity)
	}
	res, err := sysA.Root.RequestFuture(activation, &messages.Subscribe{Subscriber: gone.PID, SubscriberStartId: actors.StartID(sysA) ^ 0x5a5a}, 10*time.Second).Result()
	if a, ok := res.(*messages.Ack); err != nil || !ok || a.Error.Failed() {
		t.Fatalf("Subscribe: %v %v", res, err)
	}

	// Until the activation listens and the handler is subscribed (at most
	// 50 tries), then the next connection reaches both.
	heard := false
	for i := 0; i < 50 && !heard; i++ {
		c, err := net.Dial("tcp", identity)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		t.Cleanup(func() { c.Close() })
		_, heard = live.Receive(200 * time.Millisecond)
	}
	if !heard {
		t.Fatal("the handler never heard of a connection")
	}
	dialed := func() uint32 {
		c, err := net.Dial("tcp", identity)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return uint32(c.LocalAddr().(*net.TCPAddr).Port)
	}

	srv := serverActorOf(t, cB.ActorSystem, activation)
	p, ok := cB.ActorSystem.ProcessRegistry.GetLocal(srv.Id)
	if !ok {
		t.Fatal("the server is not registered on member B")
	}
	for _, sub := range []*actor.PID{live.PID, gone.PID} {
		p.SendSystemMessage(srv, &actor.Terminated{Who: sub, Why: actor.TerminatedReason_AddressTerminated})
	}

	// The check is done once the server has taken its answer: the server
	// asked A's incarnation actor when it took the reports (a request after
	// them is answered after that), the test's own ask goes the same way
	// after it and is answered after it, and the server takes the answer
	// (a continuation, a system message) before a request that comes later.
	// The clients' events may reach the two probes at different times, so
	// each looks for its own client's.
	status := func() {
		if _, err := cB.ActorSystem.Root.RequestFuture(srv, &messages.GetStatus{}, 10*time.Second).Result(); err != nil {
			t.Fatalf("GetStatus: %v", err)
		}
	}
	status()
	if _, err := cB.ActorSystem.Root.RequestFuture(actors.IncarnationOf(sysA.Address()), &messages.GetIncarnation{}, 10*time.Second).Result(); err != nil {
		t.Fatalf("GetIncarnation of member A: %v", err)
	}
	status()
	port := dialed()
	if !hearsOf(live, port, testkit.ProbeTimeout) {
		t.Fatal("the handler heard nothing of the connection after the stale report")
	}
	if hearsOf(gone, port, 300*time.Millisecond) {
		t.Fatal("the subscriber of the other start still hears of connections")
	}
	fmt.Println(childPassed)
	os.Exit(0) // the members are not shut down: see above
}

// hearsOf reports whether p is told of the connection of the client at
// port (NewConnection) within d, passing over what it was told before.
func hearsOf(p *testkit.Probe, port uint32, d time.Duration) bool {
	end := time.Now().Add(d)
	for range 1000 {
		m, ok := p.Receive(time.Until(end))
		if !ok {
			return false
		}
		if nc, ok := m.(*messages.NewConnection); ok && nc.Info.GetPeerPort() == port {
			return true
		}
	}
	return false
}

// staleChildEnv marks the child process that runs a test's members;
// childPassed is what the child prints when its test passed.
const (
	staleChildEnv = "TCPACTOR_CLUSTERKIND_CHILD"
	childPassed   = "clusterkind child: passed"
)

// runChild runs test in a child process of this test binary (bounded to
// two minutes) and fails t unless it passed.
func runChild(t *testing.T, test string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), staleChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), childPassed) {
		t.Fatalf("child process: %v\n%s", err, out)
	}
}
