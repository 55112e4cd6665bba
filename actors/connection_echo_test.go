package actors

import (
	"bytes"
	"crypto/sha256"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// echoTotals: 64 connections × 2 MiB each way = 256 MiB through the
// connections, both directions counted. -short runs a sixteenth of it.
func echoTotals() (conns, each int) {
	if testing.Short() {
		return 16, 512 << 10
	}
	return 64, 2 << 20
}

// runEchoes runs one echo client per connection in parallel and checks that
// every byte came back, in order, and that the server side saw exactly what
// was sent.
func runEchoes(t *testing.T, clients []*net.TCPConn, each int, reports <-chan ownerReport) {
	t.Helper()
	results := make([]echoResult, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = echoClient(c, uint64(i+1), each)
			c.Close() // FIN: the server side then ends
		}()
	}
	wg.Wait()
	sent := map[string]bool{}
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("connection %d: %v", i, r.err)
		}
		if !bytes.Equal(r.sent, r.got) || r.n != int64(each) {
			t.Fatalf("connection %d: %d bytes came back, hash %x; sent %d, hash %x", i, r.n, r.got, each, r.sent)
		}
		sent[string(r.sent)] = true
	}
	for range clients {
		select {
		case rep := <-reports:
			if !sent[string(rep.sum)] || rep.n != int64(each) || rep.failed != 0 || rep.err.Failed() {
				t.Fatalf("server side saw %d bytes (hash %x), %d failed writes, ended with %v", rep.n, rep.sum, rep.failed, rep.err)
			}
		case <-time.After(connWait):
			t.Fatal("not every connection reported its end")
		}
	}
}

func TestEchoOwnerActorsReturnEveryByteOverManyConnections(t *testing.T) {
	sys := testkit.NewSystem(t)
	fds := testkit.OpenFDs(t)
	conns, each := echoTotals()
	reports := make(chan ownerReport, conns)
	clients := make([]*net.TCPConn, conns)
	for i := range clients {
		cc, sc := socketPair(t)
		clients[i] = cc
		conn := startConn(t, sys, sc, uint64(i), nil, ConnectionConfig{})
		owner := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return newEchoOwner(reports) }))
		t.Cleanup(func() { _ = sys.Root.StopFuture(owner).Wait() })
		claim(t, sys, conn, owner, nil)
	}
	runEchoes(t, clients, each, reports)
	if after := testkit.OpenFDs(t); after > fds {
		t.Fatalf("%d descriptors open after every connection ended, %d before", after, fds)
	}
}

func TestEchoHandlerReturnsEveryByteOverManyConnections(t *testing.T) {
	sys := testkit.NewSystem(t)
	conns, each := echoTotals()
	reports := make(chan ownerReport, conns)
	clients := make([]*net.TCPConn, conns)
	echo := EchoHandler()
	for i := range clients {
		cc, sc := socketPair(t)
		clients[i] = cc
		startConn(t, sys, sc, uint64(i), nil, ConnectionConfig{Handler: func() Handler {
			return &hashingHandler{Handler: echo(), h: sha256.New(), report: reports}
		}})
	}
	runEchoes(t, clients, each, reports)
}

func TestEchoOwnerOnAnotherNodeReturnsEveryByte(t *testing.T) {
	sysA := testkit.Remote(t, 0) // the connections live here
	sysB := testkit.Remote(t, 1) // their owners live here
	const conns, each = 16, 2 << 20
	reports := make(chan ownerReport, conns)
	clients := make([]*net.TCPConn, conns)
	for i := range clients {
		cc, sc := socketPair(t)
		clients[i] = cc
		conn := startConn(t, sysA, sc, uint64(i), nil, ConnectionConfig{})
		owner := sysB.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return newEchoOwner(reports) }))
		t.Cleanup(func() { _ = sysB.Root.StopFuture(owner).Wait() })
		if owner.Address == conn.Address {
			t.Fatalf("owner %v and connection %v on the same node", owner, conn)
		}
		// Claimed on A, as its server would (a connection without an owner
		// takes no requests from another node); the owner is on B.
		claim(t, sysA, conn, owner, &messages.ClaimOptions{InitialCredit: 8})
	}
	runEchoes(t, clients, each, reports)
}

func TestConnectionClosesWhenItsOwnerOnAnotherNodeStops(t *testing.T) {
	sysA, sysB := testkit.Remote(t, 0), testkit.Remote(t, 1)
	cc, sc := socketPair(t)
	conn := startConn(t, sysA, sc, 1, nil, ConnectionConfig{})
	end := watchEnd(t, sysA, conn)
	owner := sysB.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	claim(t, sysA, conn, owner, nil) // as its server would
	if err := sysB.Root.StopFuture(owner).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, cc); err != nil {
		t.Fatalf("peer read %v, want EOF", err)
	}
	cc.Close() // the connection lingers until the peer closes too
	waitClosed(t, end, "the connection's end after its remote owner stopped")
}

// remotePID is a copy of pid for use by another actor system of this
// process: a *PID caches the route the first system that used it found, so
// two systems must not share one PID object (separate processes never do).
func remotePID(pid *actor.PID) *actor.PID { return actor.NewPID(pid.Address, pid.Id) }
