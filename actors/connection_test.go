package actors

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/protobuf/proto"
)

func TestConnectionDoesNotReadBeforeItHasAnOwnerAndDeliversEarlyBytesAfterTheClaim(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	payload := bytes.Repeat([]byte("sent before the claim;"), 5000) // 110 000 bytes
	if _, err := cc.Write(payload); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // give a wrong implementation the chance to read
	if got := info(t, sys, conn).BytesReceived; got != 0 {
		t.Fatalf("bytes_received before any owner = %d, want 0 (the kernel holds them)", got)
	}

	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, nil)
	if got := collect(t, sys, conn, owner, len(payload)); !bytes.Equal(got, payload) {
		t.Fatalf("after the claim the owner got %d bytes, not the %d sent before it", len(got), len(payload))
	}
}

func TestConnectionSpendsOneCreditPerReceivedAndDemandGrantsMore(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{ReadChunkSize: 1024})
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, &messages.ClaimOptions{InitialCredit: 2})
	if _, err := cc.Write(make([]byte, 10*1024)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if r := expectNext[*messages.Received](t, owner); len(r.Data) == 0 || len(r.Data) > 1024 {
			t.Fatalf("Received of %d bytes with a 1024-byte chunk", len(r.Data))
		}
	}
	owner.nothingFor(t, 100*time.Millisecond)
	if got := info(t, sys, conn).BytesReceived; got > 2*1024 {
		t.Fatalf("bytes_received = %d with 2 credits of 1024 bytes", got)
	}
	sys.Root.Send(conn, &messages.Demand{N: 1})
	expectNext[*messages.Received](t, owner)
	owner.nothingFor(t, 50*time.Millisecond)
}

func TestConnectionWriteWithDemandGrantsCreditOnceOnTheWire(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{ReadChunkSize: 1024})
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, &messages.ClaimOptions{InitialCredit: 1})
	if _, err := cc.Write(make([]byte, 10*1024)); err != nil {
		t.Fatal(err)
	}
	r := expectNext[*messages.Received](t, owner)
	owner.nothingFor(t, 100*time.Millisecond) // the one credit is spent

	// An echo: the write carries the next credit, no WriteAck, no Demand.
	sys.Root.Send(conn, &messages.Write{Data: r.Data, Demand: 1})
	expectNext[*messages.Received](t, owner)
	owner.nothingFor(t, 100*time.Millisecond)
	back := make([]byte, len(r.Data))
	if _, err := io.ReadFull(cc, back); err != nil || !bytes.Equal(back, r.Data) {
		t.Fatalf("peer read %v, want the echoed chunk", err)
	}

	// A negative demand is bad input: the write fails, the connection goes on.
	sys.Root.Send(conn, &messages.Write{Data: []byte("x"), AckId: 7, Demand: -1})
	if f := expectNext[*messages.WriteFailed](t, owner); f.AckId != 7 || !f.Error.Failed() {
		t.Fatalf("WriteFailed = %v, want ack 7 with an error", f)
	}
	sys.Root.Send(conn, &messages.Demand{N: 1})
	expectNext[*messages.Received](t, owner)
}

func TestConnectionFailsWritesToAFullQueueAndAcksResumeOnceThePeerReads(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	_ = cc.SetReadBuffer(4096)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{WriteQueueBytes: 64 << 10})
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, nil)
	size := 4096
	if a := call[*messages.Ack](t, sys, conn, &messages.SetSocketOption{SendBufferSize: proto.Int32(int32(size))}); a.Error.Failed() {
		t.Fatal(a.Error)
	}

	// The client reads nothing yet: the kernel's buffers fill, then the queue.
	const writes = 400
	for id := uint64(1); id <= writes; id++ {
		sys.Root.Send(conn, &messages.Write{Data: bytes.Repeat([]byte{byte(id)}, 16<<10), AckId: id})
	}
	if i := info(t, sys, conn); i.BytesToWrite == 0 || i.BytesToWrite > 64<<10 {
		t.Fatalf("bytes_to_write = %d after 400 writes of 16 KiB, want 1 B to 64 KiB", i.BytesToWrite)
	}
	read := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(cc)
		read <- b
	}()
	_ = cc.SetReadDeadline(time.Now().Add(connWait))

	outcome := map[uint64]bool{} // ack id → acknowledged
	var want bytes.Buffer
	full := 0
	for len(outcome) < writes {
		switch m := owner.next(t).(type) {
		case *messages.WriteAck:
			outcome[m.AckId] = true
			want.Write(bytes.Repeat([]byte{byte(m.AckId)}, 16<<10))
		case *messages.WriteFailed:
			if m.Error.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_RESOURCE || !strings.Contains(m.Error.GetMessage(), "queue full") {
				t.Fatalf("WriteFailed %d: %v, want SocketResourceError \"write queue full\"", m.AckId, m.Error)
			}
			outcome[m.AckId] = false
			full++
		default:
			t.Fatalf("owner got %s", describe(m))
		}
	}
	if full == 0 {
		t.Fatal("no write failed although the peer read nothing and the queue holds 64 KiB")
	}
	sys.Root.Send(conn, &messages.Write{Data: []byte("again"), AckId: 1000})
	if a := expectNext[*messages.WriteAck](t, owner); a.AckId != 1000 {
		t.Fatalf("WriteAck %d, want 1000", a.AckId)
	}
	want.WriteString("again")
	call[*messages.Ack](t, sys, conn, &messages.Close{})
	// What reached the peer is exactly the acknowledged writes, in order.
	if got := <-read; !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the peer got %d bytes, not exactly the %d of the acknowledged writes in order", len(got), want.Len())
	}
	t.Logf("%d writes acknowledged, %d failed with a full queue", writes-full, full)
}

func TestConnectionAbortFailsEveryQueuedWriteThenResetsAndEndsWithDisconnected(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	_ = cc.SetReadBuffer(4096)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	end := watchEnd(t, sys, conn)
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, nil)
	call[*messages.Ack](t, sys, conn, &messages.SetSocketOption{SendBufferSize: proto.Int32(4096)})
	const writes = 32 // 32 × 16 KiB: far more than the socket buffers hold
	for id := uint64(1); id <= writes; id++ {
		sys.Root.Send(conn, &messages.Write{Data: make([]byte, 16<<10), AckId: id})
	}
	if i := info(t, sys, conn); i.BytesToWrite == 0 {
		t.Fatalf("nothing queued before Abort: %v", i)
	}
	if a := call[*messages.Ack](t, sys, conn, &messages.Abort{}); a.Error.Failed() {
		t.Fatal(a.Error)
	}
	seen, failed := map[uint64]bool{}, 0
	for {
		m := owner.next(t)
		if d, ok := m.(*messages.Disconnected); ok {
			if d.Error.Failed() {
				t.Fatalf("Disconnected after abort() carries %v, want no error (as Qt)", d.Error)
			}
			break
		}
		var id uint64
		switch m := m.(type) {
		case *messages.WriteAck:
			id = m.AckId
		case *messages.WriteFailed:
			id = m.AckId
			failed++
		default:
			t.Fatalf("owner got %s", describe(m))
		}
		if seen[id] {
			t.Fatalf("write %d reported twice", id)
		}
		seen[id] = true
	}
	if len(seen) != writes || failed == 0 {
		t.Fatalf("%d of %d writes reported, %d failed; want all reported, some failed", len(seen), writes, failed)
	}
	owner.nothingFor(t, 50*time.Millisecond)
	waitClosed(t, end, "the connection actor's end")
	if _, err := readAll(t, cc); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the peer read %v, want connection reset", err)
	}
}

func TestConnectionClosesWhenItsOwnerStops(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	end := watchEnd(t, sys, conn)
	owner := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	claim(t, sys, conn, owner, nil)
	if err := sys.Root.StopFuture(owner).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, cc); err != nil {
		t.Fatalf("the peer read %v, want EOF", err)
	}
	cc.Close() // the connection lingers until the peer closes too
	waitClosed(t, end, "the connection's end after its owner stopped")
}

func TestConnectionClosesWhenItIsClaimedByAnOwnerThatIsAlreadyGone(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	end := watchEnd(t, sys, conn)
	owner := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	_ = sys.Root.StopFuture(owner).Wait()
	sys.Root.Send(conn, &messages.SetOwner{Owner: owner})
	if _, err := readAll(t, cc); err != nil {
		t.Fatalf("the peer read %v, want EOF", err)
	}
	cc.Close() // the connection lingers until the peer closes too
	waitClosed(t, end, "the connection's end")
}

func TestConnectionReportsAPeerResetMidWriteAsErrorOccurredThenDisconnected(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	_ = cc.SetReadBuffer(4096)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, &messages.ClaimOptions{})
	call[*messages.Ack](t, sys, conn, &messages.SetSocketOption{SendBufferSize: proto.Int32(4096)})
	const writes = 16
	for id := uint64(1); id <= writes; id++ {
		sys.Root.Send(conn, &messages.Write{Data: make([]byte, 32<<10), AckId: id})
	}
	if i := info(t, sys, conn); i.BytesToWrite == 0 {
		t.Fatalf("nothing queued before the reset: %v", i)
	}
	_ = cc.SetLinger(0)
	cc.Close() // RST

	var occurred *messages.ErrorOccurred
	reported, peerClosed := 0, false
	for {
		switch m := owner.next(t).(type) {
		case *messages.WriteAck, *messages.WriteFailed:
			reported++
		case *messages.PeerClosed: // as Qt's readChannelFinished after a reset
			if occurred == nil || peerClosed {
				t.Fatal("PeerClosed before ErrorOccurred, or twice")
			}
			peerClosed = true
		case *messages.ErrorOccurred:
			if occurred != nil {
				t.Fatal("two ErrorOccurred")
			}
			occurred = m
		case *messages.Disconnected:
			if occurred == nil {
				t.Fatal("Disconnected without ErrorOccurred after a reset")
			}
			for _, e := range []*messages.Error{occurred.Error, m.Error} {
				if e.GetCode() != messages.SocketError_SOCKET_ERROR_REMOTE_HOST_CLOSED {
					t.Fatalf("error %v, want RemoteHostClosedError (Qt's code for a reset)", e)
				}
			}
			if reported != writes {
				t.Fatalf("%d of %d writes reported before Disconnected", reported, writes)
			}
			owner.nothingFor(t, 50*time.Millisecond)
			return
		default:
			t.Fatalf("owner got %s", describe(m))
		}
	}
}

func TestConnectionCloseWriteSendsFINAfterTheQueuedWritesAndReadingGoesOn(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, nil)
	sys.Root.Send(conn, &messages.Write{Data: []byte("last words")})
	if a := call[*messages.Ack](t, sys, conn, &messages.CloseWrite{}); a.Error.Failed() {
		t.Fatal(a.Error)
	}
	if got, err := readAll(t, cc); err != nil || string(got) != "last words" {
		t.Fatalf("peer read %q, %v; want \"last words\" then EOF", got, err)
	}
	sys.Root.Send(conn, &messages.Write{Data: []byte("too late"), AckId: 7})
	if f := expectNext[*messages.WriteFailed](t, owner); f.AckId != 7 || !f.Error.Failed() {
		t.Fatalf("write after CloseWrite: %v", f)
	}

	if _, err := cc.Write([]byte("the peer still talks")); err != nil {
		t.Fatal(err)
	}
	if r := expectNext[*messages.Received](t, owner); string(r.Data) != "the peer still talks" {
		t.Fatalf("Received %q", r.Data)
	}
	_ = cc.CloseWrite()
	expectNext[*messages.ErrorOccurred](t, owner)
	expectNext[*messages.PeerClosed](t, owner)
	if d := expectNext[*messages.Disconnected](t, owner); d.Error.Failed() {
		t.Fatalf("Disconnected after both sides sent FIN: %v", d.Error)
	}
}

// As Qt: the peer's FIN is errorOccurred(RemoteHostClosedError, "The remote
// host closed the connection") then readChannelFinished (PeerClosed). Unlike
// Qt the connection does not close itself then: it waits for its owner.
func TestConnectionReportsThePeersFINAsQtDoesThenWaitsForTheOwnersClose(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	end := watchEnd(t, sys, conn)
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, nil)
	_ = cc.CloseWrite()
	occurred := expectNext[*messages.ErrorOccurred](t, owner)
	if e := occurred.Error; e.GetCode() != messages.SocketError_SOCKET_ERROR_REMOTE_HOST_CLOSED ||
		e.GetMessage() != "The remote host closed the connection" {
		t.Fatalf("ErrorOccurred after the peer's FIN: %v, want Qt's RemoteHostClosedError", e)
	}
	expectNext[*messages.PeerClosed](t, owner)
	owner.nothingFor(t, 100*time.Millisecond)
	if i := info(t, sys, conn); i.Error.GetCode() != messages.SocketError_SOCKET_ERROR_REMOTE_HOST_CLOSED {
		t.Fatalf("GetInfo.error after the peer's FIN: %v, want RemoteHostClosedError (Qt's error())", i.Error)
	}
	if a := call[*messages.Ack](t, sys, conn, &messages.Close{}); a.Error.Failed() {
		t.Fatal(a.Error)
	}
	if d := expectNext[*messages.Disconnected](t, owner); d.Error.Failed() {
		t.Fatalf("Disconnected after the peer's FIN and Close: %v", d.Error)
	}
	waitClosed(t, end, "the connection's end")
	if _, err := readAll(t, cc); err != nil {
		t.Fatalf("peer read %v, want EOF", err)
	}
}

func TestConnectionKeptOpenAfterThePeersFINStillWrites(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, &messages.ClaimOptions{KeepOpenOnPeerClose: true})
	if _, err := cc.Write([]byte("question")); err != nil {
		t.Fatal(err)
	}
	_ = cc.CloseWrite()
	if r := expectNext[*messages.Received](t, owner); string(r.Data) != "question" {
		t.Fatalf("Received %q", r.Data)
	}
	expectNext[*messages.ErrorOccurred](t, owner)
	expectNext[*messages.PeerClosed](t, owner)
	owner.nothingFor(t, 50*time.Millisecond)

	sys.Root.Send(conn, &messages.Write{Data: []byte("answer"), AckId: 1})
	expectNext[*messages.WriteAck](t, owner)
	if a := call[*messages.Ack](t, sys, conn, &messages.Close{}); a.Error.Failed() {
		t.Fatal(a.Error)
	}
	if got, err := readAll(t, cc); err != nil || string(got) != "answer" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	if d := expectNext[*messages.Disconnected](t, owner); d.Error.Failed() {
		t.Fatalf("Disconnected: %v", d.Error)
	}
}

func TestConnectionCloseFlushesQueuedWritesThenSendsFIN(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, nil)
	payload := make([]byte, 900<<10)
	newStream(1).fill(payload)
	for i := 0; i < len(payload); i += 100 << 10 {
		sys.Root.Send(conn, &messages.Write{Data: payload[i:min(i+100<<10, len(payload))]})
	}
	closed := sys.Root.RequestFuture(conn, &messages.Close{}, connWait)
	got, err := readAll(t, cc)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("peer read %d of %d bytes (%v) before EOF", len(got), len(payload), err)
	}
	if res, err := closed.Result(); err != nil || res.(*messages.Ack).Error.Failed() {
		t.Fatalf("Close answered %v, %v", res, err)
	}
	if d := expectNext[*messages.Disconnected](t, owner); d.Error.Failed() {
		t.Fatalf("Disconnected: %v", d.Error)
	}
}

func TestConnectionTimeoutsCloseWithSocketTimeoutError(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  ConnectionConfig
	}{
		{"idle", ConnectionConfig{IdleTimeout: 100 * time.Millisecond}},
		{"read", ConnectionConfig{ReadTimeout: 100 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := testkit.NewSystem(t)
			cc, sc := socketPair(t)
			conn := startConn(t, sys, sc, 1, nil, tc.cfg)
			owner := newInbox(t, sys)
			claim(t, sys, conn, owner.pid, nil)
			e := expectNext[*messages.ErrorOccurred](t, owner)
			d := expectNext[*messages.Disconnected](t, owner)
			for _, err := range []*messages.Error{e.Error, d.Error} {
				if err.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT {
					t.Fatalf("error %v, want SocketTimeoutError", err)
				}
			}
			if _, err := readAll(t, cc); err != nil {
				t.Fatalf("peer read %v, want EOF", err)
			}
		})
	}
}

func TestConnectionIdleTimeoutIsPostponedByTraffic(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{IdleTimeout: 500 * time.Millisecond})
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, &messages.ClaimOptions{InitialCredit: 100})
	for range 20 { // 20 × 50 ms of traffic: twice the time-out
		if _, err := cc.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		expectNext[*messages.Received](t, owner)
		time.Sleep(50 * time.Millisecond)
	}
	expectNext[*messages.ErrorOccurred](t, owner)
	expectNext[*messages.Disconnected](t, owner)
}

// panicky panics in Received and counts its lifecycle calls.
type panicky struct {
	BaseHandler
	connected, disconnected *atomic.Int32
	err                     chan *messages.Error
}

func (p *panicky) Connected(*Socket)        { p.connected.Add(1) }
func (p *panicky) Received(*Socket, []byte) { panic("handler bug") }
func (p *panicky) Disconnected(_ *Socket, e *messages.Error) {
	p.disconnected.Add(1)
	p.err <- e
}

func TestConnectionPanicInALocalHandlerEndsWithDisconnectedAndNoRestart(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	var connected, disconnected atomic.Int32
	errs := make(chan *messages.Error, 4)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{Handler: func() Handler {
		return &panicky{connected: &connected, disconnected: &disconnected, err: errs}
	}})
	end := watchEnd(t, sys, conn)
	if _, err := cc.Write([]byte("boom")); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-errs:
		if !e.Failed() || !strings.Contains(e.GetMessage(), "handler bug") {
			t.Fatalf("Disconnected(%v), want the panic as the error", e)
		}
	case <-time.After(connWait):
		t.Fatal("no Disconnected after the handler panicked")
	}
	waitClosed(t, end, "the connection's end")
	if _, err := readAll(t, cc); err == nil {
		// a reset is expected; an orderly EOF would hide the crash from the peer
		t.Fatal("peer read EOF after a crash, want a reset")
	}
	if c, d := connected.Load(), disconnected.Load(); c != 1 || d != 1 {
		t.Fatalf("Connected %d times, Disconnected %d times; want 1 and 1 (never restarted)", c, d)
	}
}

func TestConnectionInfoReportsAddressesCountersOwnerAndServer(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	server := newInbox(t, sys) // stands in for the ServerActor
	conn := startConn(t, sys, sc, 42, server.pid, ConnectionConfig{})
	i := info(t, sys, conn)
	la, lp := messages.HostPort(cc.RemoteAddr())
	pa, pp := messages.HostPort(cc.LocalAddr())
	want := &messages.ConnectionInfo{
		Id: 42, LocalAddress: la, LocalPort: lp, PeerAddress: pa, PeerPort: pp,
		State: messages.SocketState_SOCKET_STATE_CONNECTED, Server: server.pid,
	}
	if !proto.Equal(i, want) {
		t.Fatalf("GetInfo of a new connection:\n got %v\nwant %v", i, want)
	}

	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, nil)
	if _, err := cc.Write([]byte("12345")); err != nil {
		t.Fatal(err)
	}
	expectNext[*messages.Received](t, owner)
	sys.Root.Send(conn, &messages.Write{Data: []byte("abc"), AckId: 1})
	expectNext[*messages.WriteAck](t, owner)
	i = info(t, sys, conn)
	if i.BytesReceived != 5 || i.BytesSent != 3 || i.BytesToWrite != 0 || !i.Owner.Equal(owner.pid) {
		t.Fatalf("GetInfo after 5 bytes in, 3 out: %v", i)
	}
}

func TestConnectionSetSocketOptionAppliesEveryOption(t *testing.T) {
	sys := testkit.NewSystem(t)
	_, sc := socketPair(t)
	raw, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	a := call[*messages.Ack](t, sys, conn, &messages.SetSocketOption{
		NoDelay: proto.Bool(false), KeepAlive: proto.Bool(true), KeepAlivePeriodMs: proto.Int32(42_000),
		ReceiveBufferSize: proto.Int32(64 << 10), SendBufferSize: proto.Int32(32 << 10), LingerSeconds: proto.Int32(0),
	})
	if a.Error.Failed() {
		t.Fatal(a.Error)
	}
	get := func(level, opt int) int {
		var v int
		var gerr error
		_ = raw.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), level, opt) })
		if gerr != nil {
			t.Fatal(gerr)
		}
		return v
	}
	for _, c := range []struct {
		name       string
		level, opt int
		ok         func(int) bool
	}{
		{"TCP_NODELAY", syscall.IPPROTO_TCP, syscall.TCP_NODELAY, func(v int) bool { return v == 0 }},
		{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, func(v int) bool { return v == 1 }},
		{keepIdleName, syscall.IPPROTO_TCP, keepIdleOption, func(v int) bool { return v == 42 }},
		{"SO_RCVBUF", syscall.SOL_SOCKET, syscall.SO_RCVBUF, func(v int) bool { return v >= 64<<10 && v <= 2*(64<<10) }},
		{"SO_SNDBUF", syscall.SOL_SOCKET, syscall.SO_SNDBUF, func(v int) bool { return v >= 32<<10 && v <= 2*(32<<10) }},
	} {
		if v := get(c.level, c.opt); !c.ok(v) {
			t.Errorf("%s = %d after SetSocketOption", c.name, v)
		}
	}
	var l syscall.Linger
	_ = raw.Control(func(fd uintptr) {
		size := uint32(unsafe.Sizeof(l))
		if _, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_SOCKET, syscall.SO_LINGER,
			uintptr(unsafe.Pointer(&l)), uintptr(unsafe.Pointer(&size)), 0); e != 0 {
			err = e
		}
	})
	if err != nil || l.Onoff != 1 || l.Linger != 0 {
		t.Errorf("SO_LINGER = %+v, %v; want on, 0 s", l, err)
	}
	// Absent fields are left alone.
	call[*messages.Ack](t, sys, conn, &messages.SetSocketOption{NoDelay: proto.Bool(true)})
	if get(syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) != 1 || get(syscall.IPPROTO_TCP, syscall.TCP_NODELAY) != 1 {
		t.Error("setting no_delay changed keep_alive, or did not set no_delay")
	}
}

func TestBadInputGetsAnErrorReplyAndTheConnectionKeepsAnswering(t *testing.T) {
	sys := testkit.NewSystem(t)
	_, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	for _, tc := range []struct {
		name string
		msg  any
	}{
		{"negative initial credit", &messages.SetOwner{Owner: conn, Options: &messages.ClaimOptions{InitialCredit: -1}}},
		{"negative keep-alive period", &messages.SetSocketOption{KeepAlivePeriodMs: proto.Int32(-5)}},
		{"zero receive buffer", &messages.SetSocketOption{ReceiveBufferSize: proto.Int32(0)}},
		{"negative send buffer", &messages.SetSocketOption{SendBufferSize: proto.Int32(-1)}},
		{"linger below -1", &messages.SetSocketOption{LingerSeconds: proto.Int32(-2)}},
		{"a server request", &messages.GetStatus{}},
		{"not a protocol message", "hello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := call[*messages.Ack](t, sys, conn, tc.msg)
			if !a.Error.Failed() || a.Error.GetMessage() == "" {
				t.Fatalf("%T answered %v, want an error with a text", tc.msg, a)
			}
			if i := info(t, sys, conn); i.Id != 1 {
				t.Fatalf("GetInfo after bad input: %v", i)
			}
		})
	}
	// Demand below 1 is ignored (it has no reply) and gives no credit.
	owner := newInbox(t, sys)
	sys.Root.Send(conn, &messages.Demand{N: -3})
	claim(t, sys, conn, owner.pid, &messages.ClaimOptions{InitialCredit: 1})
	sys.Root.Send(conn, &messages.Demand{N: 0})
	if i := info(t, sys, conn); !i.Owner.Equal(owner.pid) {
		t.Fatalf("owner after claim: %v", i.Owner)
	}
}

func TestSetOwnerHandsTheConnectionOverAndTheOldOwnerNoLongerCounts(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	first, second := newInbox(t, sys), newInbox(t, sys)
	claim(t, sys, conn, first.pid, nil)
	claim(t, sys, conn, second.pid, nil)
	_ = sys.Root.StopFuture(first.pid).Wait() // the former owner's end no longer closes it
	if _, err := cc.Write([]byte("to the new owner")); err != nil {
		t.Fatal(err)
	}
	if r := expectNext[*messages.Received](t, second); string(r.Data) != "to the new owner" {
		t.Fatalf("Received %q", r.Data)
	}
	first.nothingFor(t, 0) // the former owner got nothing
}

func TestStoppingAnUnclaimedConnectionClosesItsSocket(t *testing.T) {
	sys := testkit.NewSystem(t)
	before := testkit.OpenFDs(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	if _, err := cc.Write([]byte("never read")); err != nil {
		t.Fatal(err)
	}
	if err := sys.Root.PoisonFuture(conn).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, cc); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("peer read %v, want EOF or reset", err)
	}
	cc.Close()
	if after := testkit.OpenFDs(t); after > before {
		t.Fatalf("%d descriptors open after, %d before", after, before)
	}
}

func TestStoppingAClaimedConnectionSendsDisconnectedLast(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	_ = cc.SetReadBuffer(4096)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, nil)
	call[*messages.Ack](t, sys, conn, &messages.SetSocketOption{SendBufferSize: proto.Int32(4096)})
	for id := uint64(1); id <= 8; id++ {
		sys.Root.Send(conn, &messages.Write{Data: make([]byte, 64<<10), AckId: id})
	}
	info(t, sys, conn) // the writes are in
	if err := sys.Root.StopFuture(conn).Wait(); err != nil {
		t.Fatal(err)
	}
	reported := 0
	for {
		m := owner.next(t)
		if _, ok := m.(*messages.Disconnected); ok {
			break
		}
		switch m.(type) {
		case *messages.WriteAck, *messages.WriteFailed:
			reported++
		default:
			t.Fatalf("owner got %T", m)
		}
	}
	if reported != 8 {
		t.Fatalf("%d of 8 writes reported before Disconnected", reported)
	}
	owner.nothingFor(t, 50*time.Millisecond)
}

func TestConnectionWithALocalHandlerIsServedAtOnceAndItsWritesAreAcknowledged(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	events := make(chan string, 16)
	startConn(t, sys, sc, 1, nil, ConnectionConfig{Handler: func() Handler {
		return &greeter{events: events}
	}})
	if got := readN(t, cc, 6); string(got) != "hello\n" {
		t.Fatalf("peer read %q", got)
	}
	if _, err := cc.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	_ = cc.CloseWrite()
	if _, err := readAll(t, cc); err != nil {
		t.Fatal(err)
	}
	var got []string
	for e := range events {
		got = append(got, e)
		if e == "disconnected <nil>" {
			break
		}
	}
	want := []string{"connected", "acked 1", "received bye", "peer closed", "disconnected <nil>"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("handler calls %q, want %q", got, want)
	}
}

// greeter writes a greeting on Connected and records its calls.
type greeter struct {
	events chan string
}

func (g *greeter) Connected(s *Socket) {
	g.events <- "connected"
	s.Write([]byte("hello\n"), 1)
}
func (g *greeter) Received(_ *Socket, d []byte)    { g.events <- "received " + string(d) }
func (g *greeter) WriteAcked(_ *Socket, id uint64) { g.events <- "acked " + string(rune('0'+id)) }
func (g *greeter) WriteFailed(_ *Socket, id uint64, e *messages.Error) {
	g.events <- "failed " + e.GetMessage()
}
func (g *greeter) PeerClosed(*Socket) bool { g.events <- "peer closed"; return false }
func (g *greeter) Disconnected(_ *Socket, e *messages.Error) {
	if e == nil {
		g.events <- "disconnected <nil>"
		return
	}
	g.events <- "disconnected " + e.GetMessage()
}

func TestConnectionSendsWriteOutcomesToTheWritesSenderElseToTheOwner(t *testing.T) {
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, nil)
	if a := call[*messages.WriteAck](t, sys, conn, &messages.Write{Data: []byte("asked"), AckId: 5}); a.AckId != 5 || !a.Connection.Equal(conn) {
		t.Fatalf("the Write's sender got %v", a)
	}
	sys.Root.Send(conn, &messages.Write{Data: []byte(" told"), AckId: 6})
	if a := expectNext[*messages.WriteAck](t, owner); a.AckId != 6 {
		t.Fatalf("the owner got WriteAck %d, want only 6", a.AckId)
	}
	if got := readN(t, cc, 10); string(got) != "asked told" {
		t.Fatalf("peer read %q", got)
	}
	owner.nothingFor(t, 50*time.Millisecond)
}
