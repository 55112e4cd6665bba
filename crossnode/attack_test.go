package crossnode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/owner"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// The attacks of issue 10, from an unauthenticated Proto.Actor node (this
// test process's node 0, a plain remote) against `tcpactor serve` in another
// process. Each is refused, and the server goes on serving.

// servedProc is a `tcpactor serve` child process.
type servedProc struct {
	*nodeProc
	addr    string     // its TCP listener
	remote  string     // its Proto.Actor remote
	metrics string     // its /metrics listener
	pid     *actor.PID // its ServerActor, as the attacker addresses it
}

func startServe(t *testing.T, args ...string) *servedProc {
	t.Helper()
	bin := buildTCPActor(t)
	args = append([]string{"--listen", "127.0.0.1:0", "--remote", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
		"--log-level", logLevel()}, args...)
	p := &servedProc{nodeProc: startCommand(t, bin, "serve", "serve", args...)}
	line, _ := p.waitLine("listening on ", time.Time{}, 10*time.Second)
	p.addr = addrAfter(line, "listening on ")
	line, _ = p.waitLine("remote on ", time.Time{}, 10*time.Second)
	p.remote = addrAfter(line, "remote on ")
	line, _ = p.waitLine("metrics on ", time.Time{}, 10*time.Second)
	p.metrics = addrAfter(line, "metrics on ")
	p.pid = actor.NewPID(p.remote, "tcpserver")
	return p
}

// attacker is node 0 of this process: a plain remote, no guard, nothing
// configured; it sends what it likes.
func attacker(t *testing.T) *actor.ActorSystem { return testkit.Remote(t, 0) }

// request sends msg from sys to pid and returns the reply.
func request[R any](t *testing.T, sys *actor.ActorSystem, pid *actor.PID, msg any) R {
	t.Helper()
	res, err := sys.Root.RequestFuture(pid, msg, 10*time.Second).Result()
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

func refusedAccess(t *testing.T, what string, e *messages.Error) {
	t.Helper()
	if e.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_ACCESS {
		t.Fatalf("%s: %v, want it refused with a SocketAccessError", what, e)
	}
}

// echoes checks that the server at addr serves a new client an echo.
func echoes(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("the server stopped serving: %v", err)
	}
	defer c.Close()
	echoOn(t, c, "still serving")
}

// echoOn checks one echo on an open client connection.
func echoOn(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo: %q %v, want %q", got, err, msg)
	}
}

// refusals reads tcpactor_remote_refused_total of one reason from /metrics.
func refusals(t *testing.T, metrics, reason string) int {
	t.Helper()
	res, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	prefix := fmt.Sprintf("tcpactor_remote_refused_total{reason=%q} ", reason)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return 0
}

// awaitRefusals waits until the server has refused at least n messages for
// reason: the proof that the attack reached it and was dropped there.
func awaitRefusals(t *testing.T, p *servedProc, reason string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for refusals(t, p.metrics, reason) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not refuse %d %q messages within 10 s (it has refused %d)", n, reason, refusals(t, p.metrics, reason))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRemotePeerCannotAdministerAServer(t *testing.T) {
	p := startServe(t, "--handler", "echo")
	sys := attacker(t)
	before := request[*messages.ServerStatus](t, sys, p.pid, &messages.GetStatus{})

	refusedAccess(t, "Close", request[*messages.Ack](t, sys, p.pid, &messages.Close{}).Error)
	refusedAccess(t, "Listen AnyIPv4", request[*messages.ListenResult](t, sys, p.pid, &messages.Listen{Address: "AnyIPv4", Port: uint32(freePort(t))}).Error)
	for fd := range int64(16) { // whatever descriptor the remote listener has
		refusedAccess(t, "SetSocketDescriptor", request[*messages.ListenResult](t, sys, p.pid, &messages.SetSocketDescriptor{SocketDescriptor: fd}).Error)
	}
	refusedAccess(t, "AddPendingConnection of the server itself", request[*messages.Ack](t, sys, p.pid, &messages.AddPendingConnection{Connection: p.pid}).Error)
	refusedAccess(t, "PauseAccepting", request[*messages.Ack](t, sys, p.pid, &messages.PauseAccepting{}).Error)
	refusedAccess(t, "SetMaxPendingConnections", request[*messages.Ack](t, sys, p.pid, &messages.SetMaxPendingConnections{Max: 1}).Error)
	refusedAccess(t, "SetProxy", request[*messages.Ack](t, sys, p.pid, &messages.SetProxy{Proxy: &messages.NetworkProxy{}}).Error)

	st := request[*messages.ServerStatus](t, sys, p.pid, &messages.GetStatus{})
	if !st.Listening || st.Address != before.Address || st.Port != before.Port || st.Paused {
		t.Fatalf("status after the attack %v, before %v", st, before)
	}
	echoes(t, p.addr)
	if n := refusals(t, p.metrics, "admin"); n < 22 {
		t.Fatalf("/metrics counts %d refused administrative requests, want 22", n)
	}
}

func TestRemotePeerCannotStopOrCrashAServer(t *testing.T) {
	for _, c := range []struct {
		name string
		send func(sys *actor.ActorSystem, pid *actor.PID)
	}{
		{"Stop", func(sys *actor.ActorSystem, pid *actor.PID) { sys.Root.Stop(pid) }},
		{"PoisonPill", func(sys *actor.ActorSystem, pid *actor.PID) { sys.Root.Poison(pid) }},
		{"Watch with no watcher", func(sys *actor.ActorSystem, pid *actor.PID) { sys.Root.Send(pid, &actor.Watch{}) }},
		{"Unwatch with no watcher", func(sys *actor.ActorSystem, pid *actor.PID) { sys.Root.Send(pid, &actor.Unwatch{}) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := startServe(t, "--handler", "echo")
			sys := attacker(t)
			before := request[*messages.ServerStatus](t, sys, p.pid, &messages.GetStatus{})
			echoes(t, p.addr)
			c.send(sys, actor.NewPID(p.pid.Address, p.pid.Id))
			// The same server, still listening: a restarted one would have
			// forgotten its listener and its count of accepted clients. (The
			// GetStatus follows the attack on the same stream, so the
			// server has had it.)
			st := request[*messages.ServerStatus](t, sys, p.pid, &messages.GetStatus{})
			if !st.Listening || st.Port != before.Port || st.AcceptedTotal != 1 {
				t.Fatalf("status after %s: %v", c.name, st)
			}
			echoes(t, p.addr)
			awaitRefusals(t, p, "system", 1)
		})
	}
}

// ownedConnection starts `serve --handler none` (and args) with a
// legitimate owner on node 1 of this process (owner.New, echo) and one
// client it serves; the attacker on node 0 is subscribed too, so it knows
// the connection.
func ownedConnection(t *testing.T, args ...string) (p *servedProc, ownerPID, conn *actor.PID, client net.Conn) {
	t.Helper()
	p = startServe(t, append([]string{"--handler", "none"}, args...)...)
	sys := attacker(t)
	spy := testkit.NewProbe(t, sys)
	if a := request[*messages.Ack](t, sys, p.pid, &messages.Subscribe{Subscriber: spy.PID}); a.Error.Failed() {
		t.Fatalf("the attacker's Subscribe: %v", a.Error)
	}
	var once sync.Once
	subscribed := make(chan error, 1)
	ownerPID = spawnOwner(t, 1, owner.Config{
		Server:  actor.NewPID(p.pid.Address, p.pid.Id),
		Handler: owner.Echo(),
		OnServer: func(_ *actor.PID, err error) {
			once.Do(func() { subscribed <- err })
		},
	})
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("the owner's subscription: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the owner did not subscribe")
	}
	client, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	echoOn(t, client, "served by its owner")
	conn = testkit.Next[*messages.NewConnection](t, spy).Connection
	return p, ownerPID, conn, client
}

func TestForgedTerminatedEndsNeitherAConnectionNorASubscription(t *testing.T) {
	p, owner, conn, client := ownedConnection(t)
	sys := attacker(t)
	forged := &actor.Terminated{Who: owner, Why: actor.TerminatedReason_Stopped}
	sys.Root.Send(actor.NewPID(conn.Address, conn.Id), forged)
	sys.Root.Send(actor.NewPID(p.pid.Address, p.pid.Id), forged)
	awaitRefusals(t, p, "system", 2)

	echoOn(t, client, "the connection lives")
	echoes(t, p.addr) // the owner is still subscribed: it claims and serves a new client
}

func TestRemotePeerCannotTakeOrTouchAnotherOwnersConnection(t *testing.T) {
	_, _, conn, client := ownedConnection(t)
	sys := attacker(t)
	thief := testkit.NewProbe(t, sys)
	pid := actor.NewPID(conn.Address, conn.Id)

	refusedAccess(t, "SetOwner", request[*messages.Ack](t, sys, pid, &messages.SetOwner{Owner: thief.PID}).Error)
	refusedAccess(t, "Write", request[*messages.WriteFailed](t, sys, pid, &messages.Write{Data: []byte("forged"), AckId: 1}).Error)
	for _, m := range []any{&messages.GetInfo{}, &messages.CloseWrite{}, &messages.Abort{}, &messages.Close{}} {
		refusedAccess(t, fmt.Sprintf("%T", m), request[*messages.Ack](t, sys, pid, m).Error)
	}
	sys.Root.Send(pid, &messages.Demand{N: 1 << 20}) // no reply: dropped

	echoOn(t, client, "still its owner's") // nothing forged reached the client either
	testkit.Quiet[*messages.Received](t, thief, 100*time.Millisecond)
}

func TestRemotePeerCannotTouchALocalHandlersConnection(t *testing.T) {
	p := startServe(t, "--handler", "echo")
	sys := attacker(t)
	spy := testkit.NewProbe(t, sys)
	if a := request[*messages.Ack](t, sys, p.pid, &messages.Subscribe{Subscriber: spy.PID}); a.Error.Failed() {
		t.Fatalf("Subscribe: %v", a.Error)
	}
	client, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conn := testkit.Next[*messages.NewConnection](t, spy).Connection
	pid := actor.NewPID(conn.Address, conn.Id)
	refusedAccess(t, "Abort", request[*messages.Ack](t, sys, pid, &messages.Abort{}).Error)
	refusedAccess(t, "Write", request[*messages.WriteFailed](t, sys, pid, &messages.Write{Data: []byte("forged"), AckId: 1}).Error)
	echoOn(t, client, "untouched")
}

func TestRemotePeerIsCappedOnWaitersAndSubscribers(t *testing.T) {
	p := startServe(t, "--handler", "echo")
	sys := attacker(t)

	// A subscriber on another node: the server would watch and dial it.
	elsewhere := actor.NewPID("127.0.0.1:1", "nobody")
	refusedAccess(t, "Subscribe for another node", request[*messages.Ack](t, sys, p.pid, &messages.Subscribe{Subscriber: elsewhere}).Error)
	// Its own node: up to the cap (64), then refused.
	for i := range 64 {
		if a := request[*messages.Ack](t, sys, p.pid, &messages.Subscribe{Subscriber: testkit.NewProbe(t, sys).PID}); a.Error.Failed() {
			t.Fatalf("subscriber %d: %v", i, a.Error)
		}
	}
	refusedAccess(t, "the 65th subscriber", request[*messages.Ack](t, sys, p.pid, &messages.Subscribe{Subscriber: testkit.NewProbe(t, sys).PID}).Error)

	// Waiters that an echo server never answers (nothing is ever pending):
	// 1024 are kept, the rest refused at once.
	const kept, over = 1024, 50
	for range kept {
		sys.Root.RequestFuture(p.pid, &messages.WaitForNewConnection{TimeoutMs: -1}, time.Minute)
	}
	var futures []*actor.Future
	for range over {
		futures = append(futures, sys.Root.RequestFuture(p.pid, &messages.WaitForNewConnection{TimeoutMs: -1}, 10*time.Second))
	}
	for i, f := range futures {
		res, err := f.Result()
		if err != nil {
			t.Fatalf("waiter %d over the cap: %v", kept+i, err)
		}
		refusedAccess(t, fmt.Sprintf("waiter %d", kept+i), res.(*messages.WaitResult).Error)
	}
	echoes(t, p.addr)
	if n := refusals(t, p.metrics, "limit"); n != over+1 {
		t.Fatalf("/metrics counts %d refusals over a limit, want %d", n, over+1)
	}
}

func TestRemoteAdminCannotMakeTheServerStopItselfOrOthers(t *testing.T) {
	p := startServe(t, "--handler", "echo", "--remote-admin")
	sys := attacker(t)
	victim := testkit.NewProbe(t, sys)
	for _, pid := range []*actor.PID{p.pid, actor.NewPID(p.pid.Address, "conn$1"), victim.PID} {
		if a := request[*messages.Ack](t, sys, p.pid, &messages.AddPendingConnection{Connection: pid}); !a.Error.Failed() {
			t.Fatalf("AddPendingConnection(%s) accepted", pid)
		}
	}
	request[*messages.Closed](t, sys, p.pid, &messages.Close{}) // allowed: --remote-admin
	st := request[*messages.ServerStatus](t, sys, p.pid, &messages.GetStatus{})
	if st.Listening {
		t.Fatalf("status after Close: %v", st)
	}
	// Listen is allowed too, and the server serves again.
	lr := request[*messages.ListenResult](t, sys, p.pid, &messages.Listen{Address: "127.0.0.1"})
	if !lr.Ok {
		t.Fatalf("Listen: %v", lr.Error)
	}
	echoes(t, net.JoinHostPort(lr.Address, strconv.Itoa(int(lr.Port))))
}

// rawPeer speaks the pinned remote's gRPC protocol by hand, as an attacker
// can: it announces what it likes and builds its own batches.
type rawPeer struct {
	t      *testing.T
	conn   *grpc.ClientConn
	stream remote.Remoting_ReceiveClient
}

func dialRaw(t *testing.T, addr string) *rawPeer {
	t.Helper()
	return dialRawWith(t, addr, insecure.NewCredentials())
}

// dialRawWith is dialRaw over the transport credentials creds (mutual TLS).
func dialRawWith(t *testing.T, addr string, creds credentials.TransportCredentials) *rawPeer {
	t.Helper()
	conn, err := grpc.Dial(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		conn.Close()
	})
	stream, err := remote.NewRemotingClient(conn).Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &rawPeer{t: t, conn: conn, stream: stream}
}

// announce sends the ConnectRequest of a node at addr and waits for the
// answer.
func (r *rawPeer) announce(addr string) {
	r.t.Helper()
	err := r.stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{
		ConnectRequest: &remote.ConnectRequest{ConnectionType: &remote.ConnectRequest_ServerConnection{
			ServerConnection: &remote.ServerConnection{SystemId: "raw", Address: addr}}}}})
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.stream.Recv(); err != nil {
		r.t.Fatalf("ConnectResponse: %v", err)
	}
}

// errStreamOpen is ended's answer for a stream the node kept open.
var errStreamOpen = errors.New("the stream is still open")

// ended waits up to within for the node to end the stream (it sends
// nothing else on it) and returns the error it ended it with.
func (r *rawPeer) ended(within time.Duration) error {
	done := make(chan error, 1)
	go func() { // returns at the latest when the test's clean-up cancels the stream
		_, err := r.stream.Recv()
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		return errStreamOpen
	}
}

// send delivers msg to target in a batch of its own, without a sender.
func (r *rawPeer) send(target *actor.PID, msg proto.Message, header map[string]string) {
	r.t.Helper()
	data, err := proto.Marshal(msg)
	if err != nil {
		r.t.Fatal(err)
	}
	e := &remote.MessageEnvelope{MessageData: data}
	if header != nil {
		e.MessageHeader = &remote.MessageHeader{HeaderData: header}
	}
	err = r.stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: &remote.MessageBatch{
		TypeNames: []string{string(msg.ProtoReflect().Descriptor().FullName())},
		Targets:   []*actor.PID{target},
		Envelopes: []*remote.MessageEnvelope{e},
	}}})
	if err != nil && !errors.Is(err, io.EOF) { // io.EOF: the node ended the stream (Recv says why)
		r.t.Fatal(err)
	}
}

func TestRawStreamCannotForgeTheNodeItComesFrom(t *testing.T) {
	for _, c := range []struct {
		name     string
		announce func(p *servedProc) string // "": no ConnectRequest
	}{
		{"no ConnectRequest", func(*servedProc) string { return "" }},
		{"the server's own address", func(p *servedProc) string { return p.remote }},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := startServe(t, "--handler", "echo")
			before := request[*messages.ServerStatus](t, attacker(t), p.pid, &messages.GetStatus{})
			r := dialRaw(t, p.remote)
			if a := c.announce(p); a != "" {
				r.announce(a)
			}
			r.send(p.pid, &messages.Close{}, nil) // sender-less: it would pass for local
			awaitRefusals(t, p, "forged", 1)
			if st := request[*messages.ServerStatus](t, attacker(t), p.pid, &messages.GetStatus{}); !st.Listening || st.Port != before.Port {
				t.Fatalf("status after the forged Close: %v", st)
			}
			echoes(t, p.addr)
		})
	}

	t.Run("relaying through the server", func(t *testing.T) {
		p := startServe(t, "--handler", "echo")
		victim := testkit.NewProbe(t, testkit.Remote(t, 1))
		r := dialRaw(t, p.remote)
		r.announce("127.0.0.1:1")
		r.send(victim.PID, &messages.Subscribe{}, nil) // addressed to node 1, sent to the server's node
		awaitRefusals(t, p, "forged", 1)
		testkit.Quiet[*messages.Subscribe](t, victim, 200*time.Millisecond)
	})

	t.Run("another node's name in the header", func(t *testing.T) {
		p, owner, conn, client := ownedConnection(t)
		r := dialRaw(t, p.remote)
		r.announce("127.0.0.1:1")
		r.send(conn, &messages.Abort{}, map[string]string{actors.RemotePeerHeader: owner.Address})
		awaitRefusals(t, p, "connection", 1)
		echoOn(t, client, "not aborted")
	})
}

// TestNodeRemoteAdminLetsPeersAdministerItsServer: `tcpactor node` refuses
// administrative requests from another node by default and, with
// --remote-admin, carries them out (as serve does).
func TestNodeRemoteAdminLetsPeersAdministerItsServer(t *testing.T) {
	bin := buildTCPActor(t)
	for _, c := range []struct {
		name    string
		flags   []string
		allowed bool
	}{
		{"by default", nil, false},
		{"with --remote-admin", []string{"--remote-admin"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, remote, listen := tlsServerNode(t, bin, "node", c.flags...)
			sys := attacker(t)
			pid := actor.NewPID(remote, "echo")
			res, err := sys.Root.RequestFuture(pid, &messages.Close{}, 10*time.Second).Result()
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
			st := request[*messages.ServerStatus](t, sys, pid, &messages.GetStatus{})
			if !c.allowed {
				a, ok := res.(*messages.Ack)
				if !ok {
					t.Fatalf("Close answered %T %v, want a refusal", res, res)
				}
				refusedAccess(t, "Close", a.Error)
				if !st.Listening || net.JoinHostPort(st.Address, strconv.Itoa(int(st.Port))) != listen {
					t.Fatalf("status after the refused Close: %v, want listening on %s", st, listen)
				}
				return
			}
			if _, ok := res.(*messages.Closed); !ok {
				t.Fatalf("Close answered %T %v, want Closed", res, res)
			}
			if st.Listening {
				t.Fatalf("status after Close: %v", st)
			}
			lr := request[*messages.ListenResult](t, sys, pid, &messages.Listen{Address: "127.0.0.1"})
			if !lr.Ok {
				t.Fatalf("Listen: %v", lr.Error)
			}
		})
	}
}
