package actors

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// connWait bounds every wait of the connection tests.
const connWait = 20 * time.Second

// socketPair returns both ends of a fresh TCP connection on 127.0.0.1. The
// client end is closed when the test ends; the server end belongs to the
// ConnectionActor made of it.
func socketPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	cc, err := net.DialTimeout("tcp", ln.Addr().String(), connWait)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	a := <-ch
	if a.err != nil {
		t.Fatalf("accept: %v", a.err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc.(*net.TCPConn), a.c.(*net.TCPConn)
}

// startConn makes a ConnectionActor of the server end of a socket pair and
// stops it (if it has not stopped by itself) when the test ends.
func startConn(t testing.TB, sys *actor.ActorSystem, sc net.Conn, id uint64, server *actor.PID, cfg ConnectionConfig) *actor.PID {
	t.Helper()
	pid := sys.Root.SpawnPrefix(ConnectionProps(sc, id, server, cfg), "conn")
	t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
	return pid
}

// inbox is the owner of a connection in these tests: testkit's probe, read
// strictly in order (next, expectNext, nothingFor). A test that leaves more
// than the probe holds unread fails (the probe counts what it drops).
type inbox struct {
	*testkit.Probe
	pid *actor.PID
}

func newInbox(t testing.TB, sys *actor.ActorSystem) *inbox {
	t.Helper()
	p := testkit.NewProbe(t, sys)
	return &inbox{Probe: p, pid: p.PID}
}

// next is the next message the owner got.
func (in *inbox) next(t testing.TB) any {
	t.Helper()
	m, ok := in.Receive(connWait)
	if !ok {
		t.Fatalf("the owner got nothing within %v", connWait)
	}
	return m
}

// nothingFor checks that the owner gets no message for d.
func (in *inbox) nothingFor(t testing.TB, d time.Duration) {
	t.Helper()
	if m, ok := in.Receive(d); ok {
		t.Fatalf("the owner got %s, want nothing", describe(m))
	}
}

// describe prints a message briefly: a Received by its length only.
func describe(m any) string {
	if r, ok := m.(*messages.Received); ok {
		return fmt.Sprintf("Received of %d bytes", len(r.Data))
	}
	return fmt.Sprintf("%T %v", m, m)
}

// expectNext fails unless the owner's next message is a T.
func expectNext[T any](t testing.TB, in *inbox) T {
	t.Helper()
	m := in.next(t)
	v, ok := m.(T)
	if !ok {
		var zero T
		t.Fatalf("the owner got %s, want %T", describe(m), zero)
	}
	return v
}

// call sends a request to a connection and returns its reply.
func call[R any](t testing.TB, sys *actor.ActorSystem, pid *actor.PID, msg any) R {
	t.Helper()
	res, err := sys.Root.RequestFuture(pid, msg, connWait).Result()
	if err != nil {
		t.Fatalf("%T: %v", msg, err)
	}
	r, ok := res.(R)
	if !ok {
		var zero R
		t.Fatalf("%T answered %T %v, want %T", msg, res, res, zero)
	}
	return r
}

// claim makes owner the connection's owner, as the server does on a claim.
func claim(t testing.TB, sys *actor.ActorSystem, conn, owner *actor.PID, opts *messages.ClaimOptions) {
	t.Helper()
	if a := call[*messages.Ack](t, sys, conn, &messages.SetOwner{Owner: owner, Options: opts}); a.Error.Failed() {
		t.Fatalf("SetOwner: %v", a.Error)
	}
}

func info(t testing.TB, sys *actor.ActorSystem, conn *actor.PID) *messages.ConnectionInfo {
	t.Helper()
	return call[*messages.ConnectionInfo](t, sys, conn, &messages.GetInfo{})
}

// watchEnd returns a channel closed when pid stops.
func watchEnd(t testing.TB, sys *actor.ActorSystem, pid *actor.PID) <-chan struct{} {
	t.Helper()
	ch := make(chan struct{})
	w := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Watch(pid)
		case *actor.Terminated:
			if m.Who.Equal(pid) {
				close(ch)
			}
		}
	}))
	t.Cleanup(func() { _ = sys.Root.StopFuture(w).Wait() })
	return ch
}

func waitClosed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(connWait):
		t.Fatalf("%s did not happen within %v", what, connWait)
	}
}

// readAll reads from c until EOF or an error, within connWait.
func readAll(t testing.TB, c net.Conn) ([]byte, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(connWait))
	b, err := io.ReadAll(c)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return b, err
}

// readN reads exactly n bytes from c, within connWait.
func readN(t testing.TB, c net.Conn, n int) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(connWait))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

// collect reads Received messages for want bytes, granting one credit per
// Received, and returns the bytes.
func collect(t testing.TB, sys *actor.ActorSystem, conn *actor.PID, in *inbox, want int) []byte {
	t.Helper()
	var got bytes.Buffer
	for got.Len() < want {
		r := expectNext[*messages.Received](t, in)
		got.Write(r.Data)
		sys.Root.Send(conn, &messages.Demand{N: 1})
	}
	return got.Bytes()
}

// waitStalled returns once progress() has not moved for 300 ms, checking
// every 50 ms for at most connWait. It reports whether it stalled.
func waitStalled(progress func() int64) bool {
	last, still := progress(), 0
	for deadline := time.Now().Add(connWait); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		if p := progress(); p != last {
			last, still = p, 0
			continue
		}
		if still++; still == 6 {
			return true
		}
	}
	return false
}

// stream is a deterministic pseudo-random byte stream.
type stream struct{ r *rand.ChaCha8 }

func newStream(seed uint64) *stream {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return &stream{r: rand.NewChaCha8(s)}
}

func (s *stream) fill(p []byte) { _, _ = s.r.Read(p) }

// echoResult is what one echo client saw.
type echoResult struct {
	sent, got []byte // SHA-256 of what it sent and what came back
	n         int64  // bytes that came back
	err       error
}

// echoClient sends total pseudo-random bytes in chunks of random size while
// reading the echo, and returns both hashes. It closes nothing.
func echoClient(c net.Conn, seed uint64, total int) echoResult {
	_ = c.SetDeadline(time.Now().Add(2 * connWait))
	var wg sync.WaitGroup
	var res echoResult
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		src, rng := newStream(seed), rand.New(rand.NewPCG(seed, 1))
		h := sha256.New()
		buf := make([]byte, 64<<10)
		for left := total; left > 0; {
			n := min(1+rng.IntN(len(buf)), left)
			src.fill(buf[:n])
			h.Write(buf[:n])
			if _, err := c.Write(buf[:n]); err != nil {
				werr = err
				return
			}
			left -= n
		}
		res.sent = h.Sum(nil)
	}()
	rng := rand.New(rand.NewPCG(seed, 2))
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for res.n < int64(total) {
		n, err := c.Read(buf[:1+rng.IntN(len(buf))])
		h.Write(buf[:n])
		res.n += int64(n)
		if err != nil {
			res.err = fmt.Errorf("read after %d bytes: %w", res.n, err)
			break
		}
	}
	res.got = h.Sum(nil)
	if res.err != nil {
		c.Close() // unblock the writer
	}
	wg.Wait()
	if res.err == nil && werr != nil {
		res.err = fmt.Errorf("write: %w", werr)
	}
	return res
}

// echoOwner is an owner actor that echoes: it writes back every Received and
// grants one credit per acknowledged write. It reports, on Disconnected,
// the hash of everything it received.
type echoOwner struct {
	h      hash.Hash
	n      int64
	acks   uint64
	failed int
	report chan<- ownerReport
	donate bool // give each Received's data back with its echo (Write.donate)
}

type ownerReport struct {
	sum    []byte
	n      int64
	failed int
	err    *messages.Error
}

func newEchoOwner(report chan<- ownerReport) actor.Actor {
	return &echoOwner{h: sha256.New(), report: report}
}

func (e *echoOwner) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.Received:
		e.h.Write(m.Data)
		e.n += int64(len(m.Data))
		e.acks++
		ctx.Send(m.Connection, &messages.Write{Data: m.Data, AckId: e.acks, Donate: e.donate})
	case *messages.WriteAck:
		ctx.Send(m.Connection, &messages.Demand{N: 1})
	case *messages.WriteFailed:
		e.failed++
	case *messages.PeerClosed:
		ctx.Send(m.Connection, &messages.Close{}) // answered: close after the echoes
	case *messages.Disconnected:
		e.report <- ownerReport{sum: e.h.Sum(nil), n: e.n, failed: e.failed, err: m.Error}
	}
}

// hashingHandler wraps a Handler and hashes what it receives.
type hashingHandler struct {
	Handler
	h      hash.Hash
	n      int64
	report chan<- ownerReport
}

func (h *hashingHandler) Received(s *Socket, data []byte) {
	h.h.Write(data)
	h.n += int64(len(data))
	h.Handler.Received(s, data)
}

func (h *hashingHandler) Disconnected(s *Socket, err *messages.Error) {
	h.Handler.Disconnected(s, err)
	h.report <- ownerReport{sum: h.h.Sum(nil), n: h.n, err: err}
}

// counter is an int64 the test and a goroutine share.
type counter struct{ atomic.Int64 }
