package actors

import (
	"bytes"
	"context"
	"crypto/sha256"
	"hash"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// heapBound is how much the heap may grow while a connection streams: the
// reads in flight are credit × chunk (4 × 32 KiB); the rest is slack for
// the actor system and the test's own buffers.
const heapBound = 16 << 20

// heapInUse is HeapInuse after a full collection.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// sink is an owner that hashes what it receives and grants credit only once
// told to (a startGranting message), then one per Received.
type sink struct {
	h        hash.Hash
	n        int64
	granting bool
	got      *counter
	done     chan []byte
	want     int64
}

type startGranting struct{ conn *actor.PID }

func (s *sink) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *startGranting:
		s.granting = true
		ctx.Send(m.conn, &messages.Demand{N: 4})
	case *messages.Received:
		s.h.Write(m.Data)
		s.n += int64(len(m.Data))
		s.got.Store(s.n)
		if s.granting {
			ctx.Send(m.Connection, &messages.Demand{N: 1})
		}
		if s.n == s.want {
			s.done <- s.h.Sum(nil)
		}
	}
}

// The heap is the process's: other tests of this binary (their garbage,
// the shared remote nodes) would move it. So the measuring test runs alone,
// in a child process of its own.
func TestConnectionToAnOwnerWithoutCreditPinsOnlyCreditTimesChunkThenEveryByteArrives(t *testing.T) {
	if os.Getenv(aloneEnv) == "" {
		runAlone(t)
		return
	}
	total := int64(200 << 20)
	if testing.Short() {
		total = 32 << 20
	}
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	got := &counter{}
	done := make(chan []byte, 1)
	owner := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &sink{h: sha256.New(), got: got, done: done, want: total}
	}))
	t.Cleanup(func() { _ = sys.Root.StopFuture(owner).Wait() })
	base := heapInUse()
	claim(t, sys, conn, owner, nil) // the default: 4 credits of 32 KiB

	written, sent := streamTo(cc, total, 7, 256<<10)

	// Phase 1: no credit beyond the first four. The peer stalls once the
	// kernel's buffers are full; the connection has read four chunks at most.
	if !waitStalled(written.Load) {
		t.Fatal("the peer never stalled: the connection reads without credit")
	}
	if w := written.Load(); w == total {
		t.Fatalf("the peer wrote all %d bytes to an owner without credit", total)
	}
	i := info(t, sys, conn)
	if i.BytesReceived > 4*DefaultReadChunkSize {
		t.Fatalf("bytes_received = %d with 4 credits of %d bytes", i.BytesReceived, DefaultReadChunkSize)
	}
	if grew := heapInUse() - base; grew > heapBound {
		t.Fatalf("heap grew by %d bytes with the peer stalled, bound %d", grew, heapBound)
	}
	t.Logf("stalled: peer wrote %d bytes, connection read %d", written.Load(), i.BytesReceived)

	// Phase 2: the owner grants one credit per Received. The heap stays
	// bounded all the way and every byte arrives.
	sys.Root.Send(owner, &startGranting{conn: conn})
	var peak int64
	deadline := time.After(6 * connWait)
	for next := int64(0); ; {
		select {
		case sum := <-done:
			if want := <-sent; !bytes.Equal(sum, want) {
				t.Fatal("the owner's SHA-256 differs from the peer's")
			}
			t.Logf("heap peak +%d KiB over %d MiB streamed", peak>>10, total>>20)
			return
		case <-deadline:
			t.Fatalf("only %d of %d bytes arrived", got.Load(), total)
		case <-time.After(20 * time.Millisecond):
		}
		if g := got.Load(); g >= next { // sample about every 8 MiB
			next = g + 8<<20
			peak = max(peak, heapInUse()-base)
			if peak > heapBound {
				t.Fatalf("heap grew by %d bytes while streaming, bound %d", peak, heapBound)
			}
		}
	}
}

// aloneEnv marks a child process that runs one test alone.
const aloneEnv = "TCPACTOR_TEST_ALONE"

// runAlone runs the calling test again, alone, in a child process, and
// fails when the child fails.
func runAlone(t *testing.T) {
	t.Helper()
	args := []string{"-test.run=^" + t.Name() + "$", "-test.count=1", "-test.v"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), aloneEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child process: %v", err)
	}
}

// streamTo writes total bytes of the seeded stream to c in chunks, from a
// goroutine: written counts what the kernel took so far, and sent gets the
// SHA-256 of what was written once the goroutine ends (done or failed).
func streamTo(c net.Conn, total int64, seed uint64, chunk int) (written *counter, sent <-chan []byte) {
	written = &counter{}
	out := make(chan []byte, 1)
	go func() {
		_ = c.SetWriteDeadline(time.Now().Add(4 * connWait))
		src, h, buf := newStream(seed), sha256.New(), make([]byte, chunk)
		for left := total; left > 0; {
			n := min(int64(len(buf)), left)
			src.fill(buf[:n])
			h.Write(buf[:n])
			if _, err := c.Write(buf[:n]); err != nil {
				break
			}
			left -= n
			written.Add(n)
		}
		out <- h.Sum(nil)
	}()
	return written, out
}
