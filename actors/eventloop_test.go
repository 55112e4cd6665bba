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
	"github.com/tcpactor/tcpactor/messages"
	"golang.org/x/sys/unix"
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

// TestReadLoopTakesAConnectionWithoutCreditOutOfEpollinAndBackWithDemand
// reads what the kernel says about the loop's epoll set
// (/proc/self/fdinfo): an owner with one credit gets one Received; once the
// peer sends more, the connection's interest is turned off — the loop is
// not woken again for it and the kernel holds the bytes — and Demand turns
// it back on and delivers them.
func TestReadLoopTakesAConnectionWithoutCreditOutOfEpollinAndBackWithDemand(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	fd := socketFD(t, sc)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{ReadMode: ReadLoop})
	in := newInbox(t, sys)
	claim(t, sys, conn, in.pid, &messages.ClaimOptions{InitialCredit: 1})
	if _, err := cc.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	if r := expectNext[*messages.Received](t, in); string(r.Data) != "first" {
		t.Fatalf("Received %q, want first", r.Data)
	}
	if _, err := cc.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	waitInterest(t, fd, false, "a connection without credit whose peer sent more")
	sys.Root.Send(conn, &messages.Demand{N: 1})
	if r := expectNext[*messages.Received](t, in); string(r.Data) != "second" {
		t.Fatalf("Received %q, want second", r.Data)
	}
	waitInterest(t, fd, true, "a connection granted credit again")
}

func socketFD(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	if err := raw.Control(func(f uintptr) { fd = int(f) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

// waitInterest waits until the event loop's registration of socket fd has
// EPOLLIN on (or off). Interest changes at the loop's next readiness, which
// sends no signal, hence the bounded polling.
func waitInterest(t *testing.T, fd int, on bool, what string) {
	t.Helper()
	deadline := time.Now().Add(connWait)
	for {
		events, ok := epollEvents(t, fd)
		if ok && (events&unix.EPOLLIN != 0) == on {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: epoll events %#x (registered %v), want EPOLLIN %v", what, events, ok, on)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// epollEvents finds socket fd in an epoll set of this process that is not
// the Go runtime's (isRuntimeMask) and returns its event mask.
func epollEvents(t *testing.T, fd int) (uint32, bool) {
	t.Helper()
	for _, ev := range epollMasks(t, fd) {
		if !isRuntimeMask(ev) {
			return uint32(ev), true
		}
	}
	return 0, false
}

// TestReadLoopReadsOnWhileTheActorGrantsTheNextReadAndTheBufferFills gives
// a connection's loop reader one readiness with four buffers' worth queued
// in the kernel, and an actor that grants the next read as it takes each
// result (as an echo handler on the loop does): the loop reads all four in
// that one readiness instead of going back through epoll_wait for each, and
// stops when the socket has no more.
func TestReadLoopReadsOnWhileTheActorGrantsTheNextReadAndTheBufferFills(t *testing.T) {
	const size, chunks = 1024, 4
	cc, sc := socketPair(t)
	defer cc.Close()
	defer sc.Close()
	raw, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var r *loopReader
	var got []int
	grant := func(msg any) {
		res := msg.(*readResult)
		got = append(got, res.n)
		putBuf(res.buf)
		r.mu.Lock()
		r.permit = true // the actor's next arm, with interest already on
		r.mu.Unlock()
	}
	r = newLoopReader(raw, 0, sinkFunc{grant, size})
	if r == nil {
		t.Fatal("no event loop")
	}
	defer r.stop()
	if _, err := cc.Write(make([]byte, size*chunks)); err != nil {
		t.Fatal(err)
	}
	// Wait until the kernel holds all of it on the server's side.
	deadline := time.Now().Add(connWait)
	for queued := 0; queued < size*chunks; {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes queued on the server's socket: want %d", queued, size*chunks)
		}
		time.Sleep(time.Millisecond)
		_ = raw.Control(func(fd uintptr) { queued, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	}
	// The reader is not in the epoll set (never armed): only this call reads.
	r.mu.Lock()
	r.permit = true
	r.mu.Unlock()
	r.ready(unix.EPOLLIN)
	if len(got) != chunks {
		t.Fatalf("one readiness gave %d reads %v: want %d of %d bytes (reading on while the actor grants and the buffer fills)",
			len(got), got, chunks, size)
	}
	for i, n := range got {
		if n != size {
			t.Fatalf("read %d: %d bytes, want %d", i, n, size)
		}
	}
	r.mu.Lock()
	permit := r.permit
	r.mu.Unlock()
	if !permit {
		t.Fatal("the permit granted after the last read was lost: want it kept for the next readiness")
	}
}

// TestReadingGoesOnPastTCPUrgentData: bytes sent after urgent data
// (MSG_OOB) are delivered, in both read modes. A read stops short at the
// urgent mark with bytes left behind it, and an edge-triggered loop would
// hear of them only when more came; the loop turns such a connection
// level-triggered. The urgent byte itself is not part of the stream
// (SO_OOBINLINE is off), as for any reader of the socket.
func TestReadingGoesOnPastTCPUrgentData(t *testing.T) {
	for _, mode := range []ReadMode{ReadLoop, ReadGoroutine} {
		t.Run(mode.String(), func(t *testing.T) {
			sys := testkit.NewSystem(t)
			cc, sc := socketPair(t)
			conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{ReadMode: mode})
			if _, err := cc.Write([]byte("abc")); err != nil {
				t.Fatal(err)
			}
			raw, err := cc.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var serr error
			if err := raw.Write(func(cfd uintptr) bool {
				serr = unix.Sendto(int(cfd), []byte("!"), unix.MSG_OOB, nil)
				return true
			}); err != nil || serr != nil {
				t.Fatalf("send urgent data: %v, %v", err, serr)
			}
			if _, err := cc.Write([]byte("def")); err != nil {
				t.Fatal(err)
			}
			// All of it is in the server's kernel before anything reads (the
			// connection has no owner yet): the server acknowledged every byte.
			deadline := time.Now().Add(connWait)
			for unacked := -1; unacked != 0; {
				if time.Now().After(deadline) {
					t.Fatalf("%d bytes not acknowledged by the server's socket: want 0", unacked)
				}
				time.Sleep(time.Millisecond)
				_ = raw.Control(func(cfd uintptr) { unacked, _ = unix.IoctlGetInt(int(cfd), unix.SIOCOUTQ) })
			}
			in := newInbox(t, sys)
			claim(t, sys, conn, in.pid, &messages.ClaimOptions{InitialCredit: 8})
			var got []byte
			for len(got) < 6 {
				r := expectNext[*messages.Received](t, in)
				got = append(got, r.Data...)
			}
			if string(got) != "abcdef" {
				t.Fatalf("received %q, want abcdef (the urgent byte is not in the stream)", got)
			}
		})
	}
}

// sinkFunc is a loopSink for a loopReader without a connection.
type sinkFunc struct {
	send func(any)
	size int
}

func (s sinkFunc) sendSelf(msg any) { s.send(msg) }
func (s sinkFunc) readSize() int    { return s.size }
