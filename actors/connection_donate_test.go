package actors

import (
	"crypto/sha256"
	"net"
	"runtime"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
)

// TestDonatingEchoOwnersReturnEveryByteOverManyConnections: owners that give
// each Received's memory back with its echo (Write.donate) get every byte
// back, in order, over many connections at once — the donated buffers go
// to a read pool all the connections share, and none is read into while
// its write is still going out.
func TestDonatingEchoOwnersReturnEveryByteOverManyConnections(t *testing.T) {
	sys := testkit.NewSystem(t)
	conns, each := echoTotals()
	reports := make(chan ownerReport, conns)
	clients := make([]*net.TCPConn, conns)
	for i := range clients {
		cc, sc := socketPair(t)
		clients[i] = cc
		conn := startConn(t, sys, sc, uint64(i), nil, ConnectionConfig{})
		owner := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
			return &echoOwner{h: sha256.New(), report: reports, donate: true}
		}, actor.WithDispatcher(OwnerDispatcher())))
		t.Cleanup(func() { _ = sys.Root.StopFuture(owner).Wait() })
		claim(t, sys, conn, owner, nil)
	}
	runEchoes(t, clients, each, reports)
}

// TestADonatedWriteIsReusedForTheNextReads: an echo owner that donates its
// Received data has it back as the connection's next read buffers, so an
// echo of N bytes allocates far less than N — without donation every read
// takes a new chunk from the pool (the owner keeps the last one), and the
// process allocates at least N. (sync.Pool drops some of what it is given,
// a quarter under -race: hence half, not zero.)
func TestADonatedWriteIsReusedForTheNextReads(t *testing.T) {
	sys := testkit.NewSystem(t)
	const total = 32 << 20
	reports := make(chan ownerReport, 1)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	owner := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &echoOwner{h: sha256.New(), report: reports, donate: true}
	}, actor.WithDispatcher(OwnerDispatcher())))
	t.Cleanup(func() { _ = sys.Root.StopFuture(owner).Wait() })
	claim(t, sys, conn, owner, nil)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	runEchoes(t, []*net.TCPConn{cc}, total, reports)
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > total/2 {
		t.Fatalf("echoing %d MiB through a donating owner allocated %d MiB, want under half", total>>20, got>>20)
	}
}
