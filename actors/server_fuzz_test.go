package actors

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/protobuf/proto"
)

// serverRequests are the requests of the ServerActor section of the proto,
// with the type of their one reply, and two requests of another actor
// (refused with an Ack).
var serverRequests = []struct {
	req   proto.Message
	reply proto.Message
}{
	{&messages.Listen{}, &messages.ListenResult{}},
	{&messages.SetSocketDescriptor{}, &messages.ListenResult{}},
	{&messages.Close{}, &messages.Closed{}},
	{&messages.GetStatus{}, &messages.ServerStatus{}},
	{&messages.NextPendingConnection{}, &messages.PendingConnection{}},
	{&messages.SetMaxPendingConnections{}, &messages.Ack{}},
	{&messages.WaitForNewConnection{}, &messages.WaitResult{}},
	{&messages.AddPendingConnection{}, &messages.Ack{}},
	{&messages.SetProxy{}, &messages.Ack{}},
	{&messages.PauseAccepting{}, &messages.Ack{}},
	{&messages.ResumeAccepting{}, &messages.Ack{}},
	{&messages.Subscribe{}, &messages.Ack{}},
	{&messages.Unsubscribe{}, &messages.Ack{}},
	{&messages.Write{}, &messages.Ack{}},
	{&messages.GetInfo{}, &messages.Ack{}},
}

// Peer actions of FuzzServerRequests, after the requests in the kind table.
const (
	opDial       = iota // a client connects (when the server listens)
	opClientSend        // the newest client sends the body
	opClientDrop        // the oldest client closes
	serverPeerOps
)

// FuzzServerRequests sends a ServerActor random sequences of every request
// of its protocol with random field values, between clients connecting,
// sending and leaving. Every request is answered within fuzzBound with its
// own reply type (a WaitForNewConnection by the end: its time-out, a client,
// or the closing server), the server never panics, still answers GetStatus
// with a coherent status at the end, and once it stops every client sees
// its connection end and not a descriptor the input made is left.
//
// Inputs are kept on loopback: a Listen address that is not a loopback
// address becomes 127.0.0.1 (malformed ones stay, to be refused), a 16-bit
// port becomes 0; a SetSocketDescriptor naming a listening socket of this
// process gets a fresh loopback listener instead; a wait's time-out is at
// most 100 ms.
func FuzzServerRequests(f *testing.F) {
	for _, seed := range serverFuzzSeeds() {
		f.Add(seed)
	}
	sys, pl := newFuzzSystem(f)
	f.Fuzz(func(t *testing.T, data []byte) { runServerInput(t, sys, pl, data) })
}

// runServerInput runs one input of FuzzServerRequests against a new
// ServerActor.
func runServerInput(t *testing.T, sys *actor.ActorSystem, pl *panicLog, data []byte) {
	base := openFDs(t)
	h := &serverFuzz{t: t, sys: sys, pid: sys.Root.Spawn(NewServer(ServerOptions{})), admitted: map[uint32]bool{}}
	h.watchAdmissions()
	for _, op := range decodeOps(data, len(serverRequests)+serverPeerOps) {
		if op.kind < len(serverRequests) {
			h.request(op.kind, op.body)
		} else {
			h.peer(op.kind-len(serverRequests), op.body)
		}
	}
	st := h.ask(&messages.GetStatus{}, &messages.ServerStatus{}).(*messages.ServerStatus)
	if st.Pending < 0 || st.Active < st.Pending || st.HasPendingConnections != (st.Pending > 0) || st.MaxPendingConnections < 1 {
		t.Fatalf("incoherent status at the end: %v", st)
	}
	h.ask(&messages.Close{}, &messages.Closed{})
	for _, w := range h.waits {
		if res, ok := w.reply(sys, 0); !ok {
			t.Fatal("a WaitForNewConnection was not answered by the time the server closed")
		} else if _, ok := res.(*messages.WaitResult); !ok {
			t.Fatalf("a WaitForNewConnection was answered with %T %v", res, res)
		}
	}
	noPanics(t, pl)
	if err := sys.Root.StopFuture(h.pid).Wait(); err != nil {
		t.Fatalf("stop the server: %v", err)
	}
	h.allClientsSeeTheEnd()
	fdsBackTo(t, base, "after the server stopped and the clients left")
	noPanics(t, pl)
}

type serverFuzz struct {
	t       *testing.T
	sys     *actor.ActorSystem
	pid     *actor.PID
	addr    string // where the server listens, "" when it does not
	clients []net.Conn
	waits   []*replyActor
	claimed []*actor.PID // connections handed out by NextPendingConnection

	mu       sync.Mutex
	admitted map[uint32]bool // client ports the server announced in NewConnection
	events   *actor.PID
}

// watchAdmissions subscribes an actor that records which clients the server
// announced (NewConnection), so that the end can tell a connection the
// server admitted from one it only accepted.
func (h *serverFuzz) watchAdmissions() {
	h.events = h.sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*messages.NewConnection); ok {
			h.mu.Lock()
			h.admitted[m.Info.GetPeerPort()] = true
			h.mu.Unlock()
		}
	}))
	h.ask(&messages.Subscribe{Subscriber: h.events}, &messages.Ack{})
	h.t.Cleanup(func() { h.sys.Root.Stop(h.events) })
}

// allClientsSeeTheEnd checks, once the server has stopped, that every
// client sees its connection end. A client the server never announced is
// one its accept goroutine took as the server stopped: the accept gate
// holds it until the actor takes it, and closes it with the server.
func (h *serverFuzz) allClientsSeeTheEnd() {
	h.t.Helper()
	open := clientsStillConnected(h.clients)
	h.clients = nil
	for _, c := range open {
		h.mu.Lock()
		admitted := h.admitted[uint32(c.LocalAddr().(*net.TCPAddr).Port)]
		h.mu.Unlock()
		if admitted {
			h.t.Fatalf("client %s still connected %v after the server stopped: the server never closed its end (claimed connections: %s)",
				c.LocalAddr(), fuzzBound, h.describeClaimed())
		}
		h.t.Fatalf("client %s, accepted but never announced, still connected %v after the server stopped: "+
			"a connection accepted as the server stops was not closed", c.LocalAddr(), fuzzBound)
	}
}

// TestAConnectionAcceptedAsTheServerStopsIsClosed replays the input with
// which FuzzServerRequests found a connection accepted as its server stops
// left open (listen, pause, a client waits in the backlog, resume, a second
// client, close, stop) until a client is left connected: under -race within
// a few dozen rounds on the 2-core CI machine before the accept gate held
// the connections it accepted, without about once in a thousand.
func TestAConnectionAcceptedAsTheServerStopsIsClosed(t *testing.T) {
	input := []byte("\x00\x05\n\x03::1\t\x00\x06\v\b\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x0f\x00\x05\x020\x01\n\x00\x0f\x00\v\x12\n\x05owner\x12\x06\b\x80\x80\x80\x80\x04\f\x12\n\x10\n\an")
	pl := &panicLog{}
	sys := actor.NewActorSystem(append(testkit.SystemOptions(), actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(pl) }))...)
	t.Cleanup(sys.Shutdown)
	for round := 0; round < 5000 && !t.Failed(); round++ {
		t.Run("", func(t *testing.T) { runServerInput(t, sys, pl, input) })
	}
}

// describeClaimed says what became of the claimed connections, for a
// failure message.
func (h *serverFuzz) describeClaimed() string {
	var out []string
	for _, pid := range h.claimed {
		res, ok := sendRequest(h.sys, pid, &messages.GetInfo{}).reply(h.sys, 0)
		if !ok {
			out = append(out, pid.Id+": no answer")
			continue
		}
		out = append(out, fmt.Sprintf("%s: %T %v", pid.Id, res, res))
	}
	return strings.Join(out, "; ")
}

// ask sends req and checks that a reply of want's type comes within the
// bound.
func (h *serverFuzz) ask(req, want proto.Message) any {
	h.t.Helper()
	res, ok := sendRequest(h.sys, h.pid, req).reply(h.sys, 0)
	if !ok {
		h.t.Fatalf("%T %v: no reply within %v", req, req, fuzzBound)
	}
	if got, ok := res.(proto.Message); !ok || got.ProtoReflect().Descriptor() != want.ProtoReflect().Descriptor() {
		h.t.Fatalf("%T %v answered %T %v, want a %T", req, req, res, res, want)
	}
	return res
}

func (h *serverFuzz) request(kind int, body []byte) {
	rt := serverRequests[kind]
	req := randomMessage(rt.req, body)
	var adopted int64 = -1
	switch m := req.(type) {
	case *messages.Listen:
		keepOnLoopback(m)
	case *messages.SetSocketDescriptor:
		if isListeningSocket(m.SocketDescriptor) {
			adopted = freshListenerFD(h.t)
			m.SocketDescriptor = adopted
		}
	case *messages.WaitForNewConnection:
		if m.TimeoutMs > 100 {
			m.TimeoutMs %= 101
		}
		h.waits = append(h.waits, sendRequest(h.sys, h.pid, m))
		return
	}
	res := h.ask(req, rt.reply)
	if r, ok := res.(*messages.ListenResult); ok {
		if r.Ok {
			h.addr = net.JoinHostPort(r.Address, strconv.Itoa(int(r.Port)))
		} else if adopted >= 0 {
			syscall.Close(int(adopted)) // refused: still ours
		}
	}
	if r, ok := res.(*messages.PendingConnection); ok && r.Connection != nil {
		h.claimed = append(h.claimed, r.Connection)
	}
	if _, ok := res.(*messages.Closed); ok {
		h.addr = ""
	}
}

// keepOnLoopback keeps a fuzzed Listen on loopback with a port the kernel
// picks, leaving malformed values to be refused.
func keepOnLoopback(m *messages.Listen) {
	if a, e := messages.ParseListenAddress(m.Address); e == nil {
		if ip, err := netip.ParseAddr(a.Host); err != nil || !ip.IsLoopback() {
			m.Address = "127.0.0.1"
		}
	}
	if m.Port <= 65535 {
		m.Port = 0
	}
}

func (h *serverFuzz) peer(op int, body []byte) {
	switch op {
	case opDial:
		if h.addr == "" || len(h.clients) >= 8 {
			return
		}
		// A paused or full server leaves the client in the backlog: the
		// dial still completes.
		c, err := net.DialTimeout("tcp", h.addr, fuzzBound)
		if err != nil {
			h.t.Fatalf("dial %s: %v", h.addr, err)
		}
		h.clients = append(h.clients, c)
	case opClientSend:
		if n := len(h.clients); n > 0 {
			_ = h.clients[n-1].SetWriteDeadline(time.Now().Add(fuzzBound))
			_, _ = h.clients[n-1].Write(body)
		}
	case opClientDrop:
		if len(h.clients) > 0 {
			h.clients[0].Close()
			h.clients = h.clients[1:]
		}
	}
}

// kind returns the op kind of a request type in serverRequests.
func serverKind(m proto.Message) int {
	for i, r := range serverRequests {
		if r.req.ProtoReflect().Descriptor() == m.ProtoReflect().Descriptor() {
			return i
		}
	}
	panic("not a server request")
}

func serverFuzzSeeds() [][]byte {
	peer := func(op int) int { return len(serverRequests) + op }
	k := serverKind
	owner := &actor.PID{Address: "nonhost", Id: "owner"}
	return [][]byte{
		// The Qt flow: listen, a client, wait, claim, close.
		encodeOps(k(&messages.Listen{}), &messages.Listen{Address: "LocalHost"}, peer(opDial), nil,
			peer(opClientSend), []byte("hello"), k(&messages.WaitForNewConnection{}), &messages.WaitForNewConnection{TimeoutMs: 50},
			k(&messages.NextPendingConnection{}), &messages.NextPendingConnection{Owner: owner}, k(&messages.Close{}), nil),
		// Bad values of every kind.
		encodeOps(k(&messages.Listen{}), &messages.Listen{Address: "not an address", Port: 70000},
			k(&messages.Listen{}), &messages.Listen{Options: &messages.ListenOptions{Backlog: -5, MaxConnections: -1}},
			k(&messages.SetSocketDescriptor{}), &messages.SetSocketDescriptor{SocketDescriptor: -1},
			k(&messages.SetSocketDescriptor{}), &messages.SetSocketDescriptor{SocketDescriptor: 1},
			k(&messages.SetMaxPendingConnections{}), &messages.SetMaxPendingConnections{Max: -3},
			k(&messages.WaitForNewConnection{}), &messages.WaitForNewConnection{TimeoutMs: -7},
			k(&messages.AddPendingConnection{}), &messages.AddPendingConnection{},
			k(&messages.SetProxy{}), &messages.SetProxy{Proxy: &messages.NetworkProxy{Type: 99}},
			k(&messages.SetProxy{}), &messages.SetProxy{Proxy: &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_SOCKS5}},
			k(&messages.NextPendingConnection{}), &messages.NextPendingConnection{Options: &messages.ClaimOptions{InitialCredit: -1}},
			k(&messages.Subscribe{}), &messages.Subscribe{Subscriber: &actor.PID{}},
			k(&messages.Write{}), &messages.Write{Data: []byte("x")}),
		// Waiting forever, paused, while clients queue; the close answers.
		encodeOps(k(&messages.Listen{}), &messages.Listen{Address: "::1"}, k(&messages.PauseAccepting{}), nil,
			k(&messages.WaitForNewConnection{}), &messages.WaitForNewConnection{TimeoutMs: -1}, peer(opDial), nil,
			k(&messages.SetMaxPendingConnections{}), &messages.SetMaxPendingConnections{Max: 1}, k(&messages.ResumeAccepting{}), nil,
			peer(opDial), nil, k(&messages.Subscribe{}), &messages.Subscribe{Subscriber: owner}, peer(opClientDrop), nil,
			k(&messages.AddPendingConnection{}), &messages.AddPendingConnection{Connection: owner},
			k(&messages.NextPendingConnection{}), &messages.NextPendingConnection{Owner: owner, Options: &messages.ClaimOptions{InitialCredit: 1 << 30}},
			k(&messages.Unsubscribe{}), &messages.Unsubscribe{Subscriber: owner}),
		// A descriptor handed over, then listening again.
		encodeOps(k(&messages.SetSocketDescriptor{}), &messages.SetSocketDescriptor{SocketDescriptor: 3}, k(&messages.Close{}), nil,
			k(&messages.Listen{}), &messages.Listen{Address: "Any", Options: &messages.ListenOptions{Backlog: 1, MaxConnections: 1}},
			peer(opDial), nil, peer(opDial), nil, k(&messages.GetStatus{}), nil),
	}
}
