package actors

import (
	"net"
	"syscall"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// TestEveryServerRequestIsAnsweredAcrossARemoteBoundary drives a ServerActor
// on node A from node B (two actor systems with remote on 127.0.0.1): every
// request of the protocol crosses the network and its reply comes back.
func TestEveryServerRequestIsAnsweredAcrossARemoteBoundary(t *testing.T) {
	sysA, sysB := testkit.Remote(t, 0), testkit.Remote(t, 1)
	local, err := sysA.Root.SpawnNamed(NewServer(ServerOptions{AllowRemoteAdmin: true}), "tcpserver")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sysA.Root.StopFuture(local).Wait() })
	s := &testServer{t: t, sys: sysB, pid: actor.NewPID(sysA.Address(), "tcpserver")}
	events := newProbe(t, sysB)

	lr := ask[*messages.ListenResult](s, &messages.Listen{Address: "LocalHost", Options: &messages.ListenOptions{Backlog: 64}})
	if !lr.Ok || lr.Address != "127.0.0.1" || lr.Port == 0 {
		t.Fatalf("Listen: %v", lr)
	}
	if r := ask[*messages.ListenResult](s, &messages.Listen{Address: "LocalHost"}); r.Ok || !r.Error.Failed() {
		t.Fatalf("second Listen: %v", r)
	}
	st := ask[*messages.ServerStatus](s, &messages.GetStatus{})
	if !st.Listening || st.Port != lr.Port || st.Backlog != 64 || st.MaxPendingConnections != 30 {
		t.Fatalf("GetStatus: %v", st)
	}
	expectAck(t, ask[*messages.Ack](s, &messages.SetMaxPendingConnections{Max: 5}))
	expectAck(t, ask[*messages.Ack](s, &messages.SetProxy{Proxy: &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_NO_PROXY}}))
	if r := ask[*messages.Ack](s, &messages.SetProxy{Proxy: &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_HTTP}}); r.Error.GetCode() != messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION {
		t.Fatalf("SetProxy(HTTP): %v", r)
	}
	expectAck(t, ask[*messages.Ack](s, &messages.Subscribe{Subscriber: events.pid}))
	if w := ask[*messages.WaitResult](s, &messages.WaitForNewConnection{TimeoutMs: 0}); w.Available || !w.TimedOut {
		t.Fatalf("WaitForNewConnection(0) on an empty queue: %v", w)
	}
	if p := ask[*messages.PendingConnection](s, &messages.NextPendingConnection{Owner: events.pid}); p.Connection != nil || p.Error.Failed() {
		t.Fatalf("NextPendingConnection on an empty queue: %v", p)
	}

	// A waiter on node B is answered when a client connects on node A.
	wait := sysB.Root.RequestFuture(s.pid, &messages.WaitForNewConnection{TimeoutMs: -1}, replyTimeout)
	// The wait has reached the server once a later request from node B is
	// answered: both travel node B's one stream to node A, in order.
	ask[*messages.ServerStatus](s, &messages.GetStatus{})
	dial(t, net.JoinHostPort(lr.Address, itoa(lr.Port)))
	res, err := wait.Result()
	if w, ok := res.(*messages.WaitResult); err != nil || !ok || !w.Available {
		t.Fatalf("WaitForNewConnection(-1): %v %v", res, err)
	}
	ev := next[*messages.NewConnection](t, events)
	if ev.Connection == nil || ev.Connection.Address != sysA.Address() || !ev.Server.Equal(s.pid) || ev.Pending != 1 {
		t.Fatalf("NewConnection event: %v", ev)
	}

	owner := newProbe(t, sysB)
	p := ask[*messages.PendingConnection](s, &messages.NextPendingConnection{Owner: owner.pid})
	if !p.Connection.Equal(ev.Connection) || p.Info.GetPeerPort() == 0 {
		t.Fatalf("NextPendingConnection: %v, want %v", p, ev.Connection)
	}
	expectAck(t, ask[*messages.Ack](s, &messages.AddPendingConnection{Connection: p.Connection}))
	if st := ask[*messages.ServerStatus](s, &messages.GetStatus{}); st.Pending != 1 {
		t.Fatalf("pending after AddPendingConnection: %v", st)
	}
	expectAck(t, ask[*messages.Ack](s, &messages.PauseAccepting{}))
	if st := ask[*messages.ServerStatus](s, &messages.GetStatus{}); !st.Paused {
		t.Fatalf("paused after PauseAccepting: %v", st)
	}
	expectAck(t, ask[*messages.Ack](s, &messages.ResumeAccepting{}))
	expectAck(t, ask[*messages.Ack](s, &messages.Unsubscribe{Subscriber: events.pid}))
	ask[*messages.Closed](s, &messages.Close{})
	if st := ask[*messages.ServerStatus](s, &messages.GetStatus{}); st.Listening || st.Port != 0 || st.SocketDescriptor != -1 || st.Pending != 0 {
		t.Fatalf("GetStatus after Close: %v", st)
	}

	// SetSocketDescriptor names a descriptor of node A's process: never
	// taken from another node, even with remote administration allowed.
	fd := listeningDescriptor(t)
	defer syscall.Close(fd)
	sr := ask[*messages.ListenResult](s, &messages.SetSocketDescriptor{SocketDescriptor: int64(fd)})
	if sr.Ok || sr.Error.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_ACCESS {
		t.Fatalf("SetSocketDescriptor from another node: %v, want a SocketAccessError", sr)
	}
}

// listeningDescriptor returns a bare descriptor (no os.File whose finalizer
// could close it later) of a TCP socket listening on 127.0.0.1.
func listeningDescriptor(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(u uintptr) { fd, derr = syscall.Dup(int(u)) }); err != nil || derr != nil {
		t.Fatalf("dup: %v %v", err, derr)
	}
	return fd
}

func expectAck(t *testing.T, a *messages.Ack) {
	t.Helper()
	if a.Error.Failed() {
		t.Fatalf("Ack with error: %v", a.Error)
	}
}
