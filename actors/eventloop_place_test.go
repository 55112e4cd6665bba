//go:build linux

package actors

import (
	"runtime"
	"testing"
	"time"
)

// TestFewConnectionsShareLoopsAndManySpreadOverMore: connections go to the
// loops loopConns at a time, over loopsSharedPerProc loops a P while they
// are few — a few busy connections (the bulk echo's 8) share loops, so a
// loop's wake-up serves more than one — and over more loops, up to
// loopsPerProc a P, as they grow — many connections (ping-pong's 100)
// spread, so a wake-up's batch, answered one socket after the other, stays
// short.
func TestFewConnectionsShareLoopsAndManySpreadOverMore(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	shared, all := loopsSharedPerProc*procs, loopsPerProc*procs
	if all <= shared {
		t.Fatalf("loopsPerProc %d, loopsSharedPerProc %d: want more loops than shared ones", loopsPerProc, loopsSharedPerProc)
	}
	// Connections of earlier tests may still be ending (a lingering close):
	// placement counts every live connection.
	deadline := time.Now().Add(connWait)
	for {
		eventLoops.mu.Lock()
		live := eventLoops.placed()
		eventLoops.mu.Unlock()
		if live == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections of earlier tests still in the loops", live)
		}
		time.Sleep(5 * time.Millisecond)
	}
	perLoop := map[*eventLoop]int{}
	var (
		readers []*loopReader
		socks   []interface{ Close() error }
	)
	defer func() {
		for i, r := range readers {
			if r != nil {
				r.stop()
				_ = socks[i].Close()
			}
		}
	}()
	add := func(n int) {
		t.Helper()
		for range n {
			_, sc := socketPair(t)
			raw, err := sc.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			r := newLoopReader(raw, 0, sinkFunc{func(any) {}, 64})
			if r == nil {
				_ = sc.Close()
				t.Fatal("no event loop")
			}
			socks = append(socks, sc)
			readers = append(readers, r)
			perLoop[r.loop]++
		}
	}
	add(loopConns * shared)
	if len(perLoop) != shared {
		t.Fatalf("%d connections went to %d loops: want %d (%d loops a P shared, %d connections each)",
			loopConns*shared, len(perLoop), shared, loopsSharedPerProc, loopConns)
	}
	for _, n := range perLoop {
		if n != loopConns {
			t.Fatalf("a loop took %d of the first %d connections: want %d each", n, loopConns*shared, loopConns)
		}
	}
	add(loopConns * (all - shared) * 2)
	if len(perLoop) != all {
		t.Fatalf("%d connections went to %d loops: want all %d (%d a P)", len(readers), len(perLoop), all, loopsPerProc)
	}
	lo, hi := len(readers), 0
	for _, n := range perLoop {
		lo, hi = min(lo, n), max(hi, n)
	}
	if hi > lo+1 {
		t.Fatalf("%d connections over %d loops: %d to %d a loop, want them spread evenly", len(readers), all, lo, hi)
	}
	// Connections that end leave room that the next ones fill first.
	first := readers[0].loop
	for i := range readers {
		if readers[i].loop == first {
			readers[i].stop()
			perLoop[first]--
			readers[i] = nil
			_ = socks[i].Close()
		}
	}
	add(1)
	if last := readers[len(readers)-1].loop; last != first {
		t.Fatalf("a loop whose connections ended has the fewest: want the next connection there")
	}
}
