//go:build linux

package actors

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
)

// TestReadLoopServesConnectionsWithoutAGoroutineEachAndStopsWithTheLast
// serves 64 echo connections from the event loops: every one answers, the
// process holds far fewer extra goroutines than connections (the goroutine
// reader holds one each), and once they have ended the loops are gone too —
// their goroutines (goleak) and their epoll descriptors.
func TestReadLoopServesConnectionsWithoutAGoroutineEachAndStopsWithTheLast(t *testing.T) {
	sys := testkit.NewSystem(t)
	const n = 64
	fdsBefore := testkit.OpenFDs(t)
	goroutinesBefore := runtime.NumGoroutine()
	clients := make([]net.Conn, n)
	pids := make([]*actor.PID, n)
	for i := range n {
		cc, sc := socketPair(t)
		clients[i] = cc
		pids[i] = startConn(t, sys, sc, uint64(i+1), nil, ConnectionConfig{ReadMode: ReadLoop, Handler: EchoHandler()})
	}
	for i, cc := range clients {
		_ = cc.SetDeadline(time.Now().Add(connWait))
		if _, err := cc.Write([]byte("ping")); err != nil {
			t.Fatalf("connection %d: write: %v", i, err)
		}
		got := make([]byte, 4)
		if _, err := io.ReadFull(cc, got); err != nil || string(got) != "ping" {
			t.Fatalf("connection %d: echo %q, %v; want ping", i, got, err)
		}
	}
	if grown := runtime.NumGoroutine() - goroutinesBefore; grown >= n/2 {
		t.Fatalf("%d goroutines more for %d idle connections: want fewer than %d (one per loop, not per connection)", grown, n, n/2)
	}
	ends := make([]<-chan struct{}, n)
	for i, pid := range pids {
		ends[i] = watchEnd(t, sys, pid)
		clients[i].Close()
	}
	for i := range ends {
		waitClosed(t, ends[i], "the end of a connection whose peer closed")
	}
	// The last connection's teardown closes the loops' descriptors; each
	// goes once its loop wakes from its wait, which has no signal to wait on.
	deadline := time.Now().Add(connWait)
	for testkit.OpenFDs(t) > fdsBefore {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open after every connection ended: want %d (the loops' epoll descriptors closed)",
				testkit.OpenFDs(t), fdsBefore)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
