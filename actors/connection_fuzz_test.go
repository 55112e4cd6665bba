package actors

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/protobuf/proto"
)

// connRequests are the requests of the ConnectionActor section of the
// proto, and two of the ServerActor's (refused with an Ack).
var connRequests = []proto.Message{
	&messages.SetOwner{}, &messages.Demand{}, &messages.Write{}, &messages.Close{}, &messages.CloseWrite{},
	&messages.Abort{}, &messages.GetInfo{}, &messages.SetSocketOption{}, &messages.Listen{}, &messages.GetStatus{},
}

// Peer actions of FuzzConnectionRequests, after the requests.
const (
	opPeerSend       = iota // the peer sends the body
	opPeerRead              // the peer reads what has arrived
	opPeerCloseWrite        // the peer half-closes (FIN)
	opPeerReset             // the peer resets (RST)
	connPeerOps
)

// FuzzConnectionRequests sends a ConnectionActor random sequences of every
// request of its protocol with random field values, while its peer sends,
// reads, half-closes or resets. Whatever the input:
//   - SetOwner, Abort, GetInfo, SetSocketOption and foreign requests are
//     answered within fuzzBound, Close and CloseWrite by the end — or, when
//     the connection ends first, its sender learns so (a dead-letter reply,
//     or Terminated for a request it dropped as it stopped);
//   - every Write ends in exactly one WriteAck or WriteFailed to its sender
//     (WriteAck only for a non-zero ack_id), and the peer reads the written
//     bytes in order;
//   - the owner gets the peer's bytes in order, nothing after Disconnected,
//     and Disconnected once when it still owns the connection at the end;
//   - the actor never panics, answers GetInfo while it lives, ends on Abort,
//     and its socket is closed: the peer sees the end.
//
// A SetOwner with no owner, or owner id "owner", names the test's owner; a
// positive linger is at most 1 s.
func FuzzConnectionRequests(f *testing.F) {
	for _, seed := range connFuzzSeeds() {
		f.Add(seed)
	}
	sys, pl := newFuzzSystem(f)
	f.Fuzz(func(t *testing.T, data []byte) { runConnInput(t, sys, pl, data) })
}

func runConnInput(t *testing.T, sys *actor.ActorSystem, pl *panicLog, data []byte) {
	cc, sc := socketPair(t)
	h := &connFuzz{t: t, sys: sys, peer: cc, writes: map[uint64]int{}}
	h.owner = newRecorder(sys)
	h.writer = newRecorder(sys)
	defer sys.Root.Stop(h.owner.pid)
	defer sys.Root.Stop(h.writer.pid)
	h.pid = sys.Root.SpawnPrefix(ConnectionProps(sc, 1, nil, ConnectionConfig{}), "conn")
	h.ended = watchEnd(t, sys, h.pid)
	for _, op := range decodeOps(data, len(connRequests)+connPeerOps) {
		if op.kind < len(connRequests) {
			h.request(randomMessage(connRequests[op.kind], op.body))
		} else {
			h.peerOp(op.kind-len(connRequests), op.body)
		}
	}
	if !h.isEnded() {
		h.ask(&messages.GetInfo{}, &messages.ConnectionInfo{})
	}
	h.ask(&messages.Abort{}, &messages.Ack{})
	select {
	case <-h.ended:
	case <-time.After(fuzzBound):
		t.Fatalf("the connection did not end within %v of Abort", fuzzBound)
	}
	for _, d := range h.deferred {
		res, ok := d.r.reply(sys, 0)
		if !ok {
			t.Fatalf("%T was not answered by the time the connection ended", d.req)
		}
		h.checkReply(d.req, res, &messages.Ack{})
	}
	failed := h.checkWrites()
	h.checkOwner()
	h.checkPeer(failed)
	noPanics(t, pl)
}

type connFuzz struct {
	t      *testing.T
	sys    *actor.ActorSystem
	pid    *actor.PID
	ended  <-chan struct{}
	peer   *net.TCPConn
	owner  *recorder
	writer *recorder

	deferred []deferredReply
	writes   map[uint64]int // Writes sent, by ack_id
	written  []sentWrite    // every Write, in order
	sent     []byte         // what the peer sent
	read     []byte         // what the peer read
	peerGone bool

	ownerIsOurs bool // the last owner the connection took is h.owner
	handedAway  bool // some other owner got the connection at some point
}

type sentWrite struct {
	ackID uint64
	data  []byte
}

type deferredReply struct {
	req proto.Message
	r   *replyActor
}

func (h *connFuzz) isEnded() bool {
	select {
	case <-h.ended:
		return true
	default:
		return false
	}
}

// ask sends req, waits for its reply and checks its type.
func (h *connFuzz) ask(req, want proto.Message) any {
	h.t.Helper()
	res, ok := sendRequest(h.sys, h.pid, req).reply(h.sys, 0)
	if !ok {
		h.t.Fatalf("%T %v: no reply within %v", req, req, fuzzBound)
	}
	h.checkReply(req, res, want)
	return res
}

// checkReply accepts a reply of want's type, or the end of the connection
// instead: a dead-letter reply (sent after it stopped) or targetEnded
// (dropped as it stopped).
func (h *connFuzz) checkReply(req proto.Message, res any, want proto.Message) {
	h.t.Helper()
	switch res.(type) {
	case *actor.DeadLetterResponse, targetEnded:
		select {
		case <-h.ended:
			return
		case <-time.After(fuzzBound):
			h.t.Fatalf("%T %v: %T while the connection lives", req, req, res)
		}
	}
	if got, ok := res.(proto.Message); !ok || got.ProtoReflect().Descriptor() != want.ProtoReflect().Descriptor() {
		h.t.Fatalf("%T %v answered %T %v, want a %T", req, req, res, res, want)
	}
}

func (h *connFuzz) request(req proto.Message) {
	switch m := req.(type) {
	case *messages.SetOwner:
		theirs := m.Owner != nil && m.Owner.Id != "owner"
		if !theirs {
			m.Owner = h.owner.pid
		}
		r := h.ask(m, &messages.Ack{})
		if ack, ok := r.(*messages.Ack); ok && ack.Error == nil {
			h.ownerIsOurs = !theirs
			h.handedAway = h.handedAway || theirs
		}
	case *messages.SetSocketOption:
		if m.LingerSeconds != nil && *m.LingerSeconds > 1 {
			*m.LingerSeconds = 1 // close(2) may block that long
		}
		h.ask(m, &messages.Ack{})
	case *messages.Demand:
		h.sys.Root.Send(h.pid, m)
	case *messages.Write:
		h.writes[m.AckId]++
		h.written = append(h.written, sentWrite{m.AckId, m.Data})
		h.sys.Root.RequestWithCustomSender(h.pid, m, h.writer.pid)
	case *messages.Close, *messages.CloseWrite:
		h.deferred = append(h.deferred, deferredReply{req: m, r: sendRequest(h.sys, h.pid, m)})
	case *messages.Abort:
		h.ask(m, &messages.Ack{})
	case *messages.GetInfo:
		h.ask(m, &messages.ConnectionInfo{})
	default: // a request of another actor
		h.ask(m, &messages.Ack{})
	}
}

func (h *connFuzz) peerOp(op int, body []byte) {
	if h.peerGone {
		return
	}
	switch op {
	case opPeerSend:
		_ = h.peer.SetWriteDeadline(time.Now().Add(fuzzBound))
		n, _ := h.peer.Write(body)
		h.sent = append(h.sent, body[:n]...)
	case opPeerRead:
		h.peerRead(time.Millisecond)
	case opPeerCloseWrite:
		_ = h.peer.CloseWrite()
	case opPeerReset:
		_ = h.peer.SetLinger(0)
		h.peer.Close()
		h.peerGone = true
	}
}

// peerRead reads what arrives at the peer within wait.
func (h *connFuzz) peerRead(wait time.Duration) error {
	buf := make([]byte, 64<<10)
	_ = h.peer.SetReadDeadline(time.Now().Add(wait))
	for {
		n, err := h.peer.Read(buf)
		h.read = append(h.read, buf[:n]...)
		if err != nil {
			return err
		}
	}
}

// checkWrites: one outcome per Write, to its sender. It returns the ack_ids
// of the Writes that failed.
func (h *connFuzz) checkWrites() map[uint64]int {
	h.t.Helper()
	got := h.writer.sync(h.t)
	acks, fails := map[uint64]int{}, map[uint64]int{}
	dead := 0
	for _, m := range got {
		switch m := m.(type) {
		case *messages.WriteAck:
			acks[m.AckId]++
		case *messages.WriteFailed:
			fails[m.AckId]++
		case *actor.DeadLetterResponse:
			dead++ // sent after the connection ended
		default:
			h.t.Fatalf("the sender of the Writes got %T %v", m, m)
		}
	}
	if acks[0] > 0 {
		h.t.Fatalf("%d WriteAck with ack_id 0", acks[0])
	}
	missing := 0
	for id, n := range h.writes {
		out := acks[id] + fails[id]
		if id == 0 {
			if out > n {
				h.t.Fatalf("%d outcomes for %d Writes with ack_id 0", out, n)
			}
			continue
		}
		if out > n {
			h.t.Fatalf("ack_id %d: %d outcomes for %d Writes", id, out, n)
		}
		missing += n - out
	}
	if missing > dead {
		h.t.Fatalf("%d Writes with an ack_id ended in neither WriteAck nor WriteFailed (writes %v, acks %v, fails %v)", missing-dead, h.writes, acks, fails)
	}
	return fails
}

// checkOwner: the peer's bytes in order, Disconnected last and once.
func (h *connFuzz) checkOwner() {
	h.t.Helper()
	got := h.owner.sync(h.t)
	var received []byte
	disconnected := 0
	for _, m := range got {
		if disconnected > 0 {
			h.t.Fatalf("the owner got %T after Disconnected", m)
		}
		switch m := m.(type) {
		case *messages.Received:
			received = append(received, m.Data...)
		case *messages.Disconnected:
			disconnected++
		}
	}
	if !h.handedAway && !bytes.HasPrefix(h.sent, received) {
		h.t.Fatalf("the owner received %q, which does not begin what the peer sent, %q", received, h.sent)
	}
	if h.ownerIsOurs && disconnected != 1 {
		h.t.Fatalf("the owner at the end got %d Disconnected, want 1 (messages: %s)", disconnected, describeAll(got))
	}
}

// checkPeer: the peer sees the end, and what it read is the Writes in
// order — all of each that succeeded, none of one refused, and possibly the
// start of one that failed on the wire as the connection ended. When a
// failed Write cannot be told apart by its ack_id, only the order of what
// succeeded is not checked.
func (h *connFuzz) checkPeer(failed map[uint64]int) {
	h.t.Helper()
	if !h.peerGone {
		if err := h.peerRead(fuzzBound); isTimeout(err) {
			h.t.Fatalf("the peer is still connected %v after the connection ended", fuzzBound)
		}
	}
	ok := make([]bool, len(h.written))
	for i, w := range h.written {
		if failed[w.ackID] > 0 && (w.ackID == 0 || h.writes[w.ackID] > 1) {
			return // which of these failed is unknown
		}
		ok[i] = failed[w.ackID] == 0
	}
	if !readIsWrites(h.read, h.written, ok) {
		h.t.Fatalf("the peer read %q, which is not the Writes in order (%v; ok %v)", h.read, h.written, ok)
	}
}

// readIsWrites says whether read can be writes[0:] in order: each ok write
// whole, each failed one not at all or, when read ends in it, in part.
func readIsWrites(read []byte, writes []sentWrite, ok []bool) bool {
	if len(read) == 0 {
		return true
	}
	if len(writes) == 0 {
		return false
	}
	d := writes[0].data
	n := min(len(d), len(read))
	if !bytes.Equal(read[:n], d[:n]) {
		return !ok[0] && readIsWrites(read, writes[1:], ok[1:])
	}
	if n == len(read) {
		return true // the read ends inside (or at the end of) this write
	}
	if ok[0] {
		return readIsWrites(read[n:], writes[1:], ok[1:])
	}
	return readIsWrites(read, writes[1:], ok[1:])
}

func describeAll(ms []any) string {
	var b bytes.Buffer
	for _, m := range ms {
		fmt.Fprintf(&b, "%s; ", describe(m))
	}
	return b.String()
}

// recorder is an actor that keeps every message it gets.
type recorder struct {
	sys  *actor.ActorSystem
	pid  *actor.PID
	mu   sync.Mutex
	msgs []any
}

type recorderSync struct{ done chan struct{} }

func newRecorder(sys *actor.ActorSystem) *recorder {
	r := &recorder{sys: sys}
	r.pid = sys.Root.SpawnPrefix(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case actor.SystemMessage, actor.AutoReceiveMessage, *actor.Started, *actor.Stopping, *actor.Stopped:
		case *recorderSync:
			close(m.done)
		default:
			r.mu.Lock()
			r.msgs = append(r.msgs, m)
			r.mu.Unlock()
		}
	}), "owner")
	return r
}

// sync returns what the recorder got before now: messages sent to it
// before the call are in its mailbox ahead of the sync.
func (r *recorder) sync(t *testing.T) []any {
	t.Helper()
	s := &recorderSync{done: make(chan struct{})}
	r.sys.Root.Send(r.pid, s)
	select {
	case <-s.done:
	case <-time.After(fuzzBound):
		t.Fatal("the recorder did not answer")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]any(nil), r.msgs...)
}

func connKind(m proto.Message) int {
	for i, r := range connRequests {
		if r.ProtoReflect().Descriptor() == m.ProtoReflect().Descriptor() {
			return i
		}
	}
	panic("not a connection request")
}

func connFuzzSeeds() [][]byte {
	k := connKind
	peer := func(op int) int { return len(connRequests) + op }
	owner := &actor.PID{Address: "nonhost", Id: "owner"}
	elsewhere := &actor.PID{Address: "nonhost", Id: "gone"}
	yes, one, minus := true, int32(1), int32(-2)
	return [][]byte{
		// An echo round trip, then a graceful close.
		encodeOps(k(&messages.SetOwner{}), &messages.SetOwner{Owner: owner}, peer(opPeerSend), []byte("ping"),
			k(&messages.Write{}), &messages.Write{Data: []byte("pong"), AckId: 1, Demand: 1}, peer(opPeerRead), nil,
			k(&messages.Close{}), nil),
		// Bad values: negative credit and demand, bad options, requests of
		// the server, a write after close.
		encodeOps(k(&messages.SetOwner{}), &messages.SetOwner{Owner: owner, Options: &messages.ClaimOptions{InitialCredit: -1}},
			k(&messages.Demand{}), &messages.Demand{N: -5}, k(&messages.Write{}), &messages.Write{Data: []byte("x"), AckId: 2, Demand: -1},
			k(&messages.SetSocketOption{}), &messages.SetSocketOption{LingerSeconds: &minus},
			k(&messages.SetSocketOption{}), &messages.SetSocketOption{NoDelay: &yes, KeepAlive: &yes, ReceiveBufferSize: &one, LingerSeconds: &one},
			k(&messages.Listen{}), &messages.Listen{Address: "127.0.0.1"}, k(&messages.GetStatus{}), nil,
			k(&messages.CloseWrite{}), nil, k(&messages.Write{}), &messages.Write{Data: []byte("late"), AckId: 3}),
		// The peer half-closes while the owner keeps writing, then resets.
		encodeOps(k(&messages.SetOwner{}), &messages.SetOwner{Owner: owner, Options: &messages.ClaimOptions{KeepOpenOnPeerClose: true, InitialCredit: 1}},
			peer(opPeerSend), []byte("a"), peer(opPeerCloseWrite), nil, k(&messages.Demand{}), &messages.Demand{N: 1 << 30},
			k(&messages.Write{}), &messages.Write{Data: bytes.Repeat([]byte("w"), 200)}, k(&messages.GetInfo{}), nil,
			peer(opPeerReset), nil, k(&messages.Write{}), &messages.Write{Data: []byte("after reset"), AckId: 4}),
		// Handed to an owner that does not exist, then aborted.
		encodeOps(k(&messages.SetOwner{}), &messages.SetOwner{Owner: owner}, k(&messages.SetOwner{}), &messages.SetOwner{Owner: elsewhere},
			peer(opPeerSend), []byte("lost"), k(&messages.Abort{}), nil, k(&messages.GetInfo{}), nil),
	}
}
