package actors

import (
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// What a remote peer may do (authz.go). The server runs on shared node 0;
// the requests come from nodes 1 and 2 of this process, real remote members
// on loopback. The attacks from another process, through the remote guard,
// are in crossnode/attack_test.go.

// remoteServer spawns a ServerActor on node 0 listening on 127.0.0.1, and
// returns it as seen from node 0 (local) and from node 1 (remote).
func remoteServer(t *testing.T, opts ServerOptions) (local, remote *testServer, addr string) {
	t.Helper()
	sysA, sysB := testkit.Remote(t, 0), testkit.Remote(t, 1)
	pid := sysA.Root.Spawn(NewServer(opts))
	t.Cleanup(func() { _ = sysA.Root.StopFuture(pid).Wait() })
	local = &testServer{t: t, sys: sysA, pid: pid}
	remote = &testServer{t: t, sys: sysB, pid: actor.NewPID(pid.Address, pid.Id)}
	return local, remote, local.listen()
}

func expectAccessDenied(t *testing.T, what string, e *messages.Error) {
	t.Helper()
	if e.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_ACCESS || !strings.Contains(e.GetMessage(), "remote node") {
		t.Fatalf("%s: %v, want a SocketAccessError about a remote node", what, e)
	}
}

func TestRemoteNodesMayNotAdministerTheServerByDefault(t *testing.T) {
	local, remote, addr := remoteServer(t, ServerOptions{})
	before := local.status()
	fd := rawSocket(t, syscall.AF_INET, syscall.SOCK_STREAM, true, true)
	t.Cleanup(func() { syscall.Close(fd) })
	for _, m := range []any{
		&messages.Close{},
		&messages.PauseAccepting{},
		&messages.ResumeAccepting{},
		&messages.SetMaxPendingConnections{Max: 1},
		&messages.SetProxy{Proxy: &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_NO_PROXY}},
		&messages.AddPendingConnection{Connection: local.pid},
	} {
		expectAccessDenied(t, typeName(m), ask[*messages.Ack](remote, m).Error)
	}
	for _, m := range []any{
		&messages.Listen{Address: "AnyIPv4", Port: 0},
		&messages.SetSocketDescriptor{SocketDescriptor: int64(fd)},
	} {
		expectAccessDenied(t, typeName(m), ask[*messages.ListenResult](remote, m).Error)
	}
	// Reading is allowed, and the server is as it was.
	st := ask[*messages.ServerStatus](remote, &messages.GetStatus{})
	if !st.Listening || st.Port != before.Port || st.Paused || st.MaxPendingConnections != before.MaxPendingConnections {
		t.Fatalf("status after refused requests: %v, before: %v", st, before)
	}
	dial(t, addr)
	local.waitStatus("the client pending", pendingIs(1))
}

func TestRemoteRequestsMayNameOnlyActorsOfTheirOwnNode(t *testing.T) {
	local, remote, addr := remoteServer(t, ServerOptions{})
	third := newProbe(t, testkit.Remote(t, 2))
	expectAccessDenied(t, "Subscribe for a third node", ask[*messages.Ack](remote, &messages.Subscribe{Subscriber: third.pid}).Error)
	expectAccessDenied(t, "Unsubscribe for a third node", ask[*messages.Ack](remote, &messages.Unsubscribe{Subscriber: third.pid}).Error)
	dial(t, addr)
	local.waitStatus("the client pending", pendingIs(1))
	expectAccessDenied(t, "NextPendingConnection for a third node",
		ask[*messages.PendingConnection](remote, &messages.NextPendingConnection{Owner: third.pid}).Error)
	if st := local.status(); st.Pending != 1 {
		t.Fatalf("a refused claim took the connection: %v", st)
	}

	// Its own actors it may name.
	own := newProbe(t, remote.sys)
	expectNoError(t, "Subscribe", ask[*messages.Ack](remote, &messages.Subscribe{Subscriber: own.pid}).Error)
	if pc := ask[*messages.PendingConnection](remote, &messages.NextPendingConnection{Owner: own.pid}); pc.Connection == nil {
		t.Fatalf("NextPendingConnection for its own actor: %v", pc)
	}
}

func TestRemoteNodeHoldsAtMostItsShareOfWaitersAndSubscribers(t *testing.T) {
	local, remote, addr := remoteServer(t, ServerOptions{RemoteLimits: RemoteLimits{WaitersPerNode: 2, SubscribersPerNode: 2}})
	var waits []*actor.Future
	for range 2 {
		waits = append(waits, remote.sys.Root.RequestFuture(remote.pid, &messages.WaitForNewConnection{TimeoutMs: -1}, replyTimeout))
	}
	third := ask[*messages.WaitResult](remote, &messages.WaitForNewConnection{TimeoutMs: -1})
	expectAccessDenied(t, "a third waiter", third.Error)
	// A local waiter is not counted against the remote node.
	localWait := local.sys.Root.RequestFuture(local.pid, &messages.WaitForNewConnection{TimeoutMs: -1}, replyTimeout)

	for range 2 {
		expectNoError(t, "Subscribe", ask[*messages.Ack](remote, &messages.Subscribe{Subscriber: newProbe(t, remote.sys).pid}).Error)
	}
	expectAccessDenied(t, "a third subscriber", ask[*messages.Ack](remote, &messages.Subscribe{}).Error)

	dial(t, addr)
	for _, f := range append(waits, localWait) {
		if r, err := f.Result(); err != nil || !r.(*messages.WaitResult).Available {
			t.Fatalf("waiter: %v %v", r, err)
		}
	}
	// Answered waiters make room again.
	if r := ask[*messages.WaitResult](remote, &messages.WaitForNewConnection{TimeoutMs: 10}); r.Error.Failed() {
		t.Fatalf("a wait after the others were answered: %v", r)
	}
}

func TestConnectionTakesRemoteRequestsOnlyFromItsOwnersNode(t *testing.T) {
	local, remote, addr := remoteServer(t, ServerOptions{})
	sysC := testkit.Remote(t, 2)
	sub := newProbe(t, remote.sys)
	expectNoError(t, "Subscribe", ask[*messages.Ack](remote, &messages.Subscribe{Subscriber: sub.pid}).Error)
	client := dial(t, addr)
	ev := next[*messages.NewConnection](t, sub)
	connB := actor.NewPID(ev.Connection.Address, ev.Connection.Id) // node 1's copy
	connC := actor.NewPID(ev.Connection.Address, ev.Connection.Id) // node 2's copy

	// Pending, it has no owner: no remote node may touch it, nor claim it
	// but through the server.
	owner := newInbox(t, remote.sys)
	if a := call[*messages.Ack](t, remote.sys, connB, &messages.SetOwner{Owner: owner.pid}); a.Error.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_ACCESS {
		t.Fatalf("SetOwner of a pending connection from another node: %v", a)
	}
	if st := local.status(); st.Pending != 1 {
		t.Fatalf("status after a refused SetOwner: %v", st)
	}
	if pc := ask[*messages.PendingConnection](remote, &messages.NextPendingConnection{Owner: owner.pid}); !pc.Connection.Equal(ev.Connection) {
		t.Fatalf("NextPendingConnection: %v", pc)
	}

	// Node 2 owns nothing here.
	intruder := newInbox(t, sysC)
	if a := call[*messages.Ack](t, sysC, connC, &messages.SetOwner{Owner: intruder.pid}); a.Error.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_ACCESS {
		t.Fatalf("SetOwner from another node: %v", a)
	}
	for _, m := range []any{&messages.Abort{}, &messages.Close{}, &messages.CloseWrite{}, &messages.GetInfo{},
		&messages.SetSocketOption{LingerSeconds: new(int32)}} {
		if a := call[*messages.Ack](t, sysC, connC, m); a.Error.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_ACCESS {
			t.Fatalf("%s from another node: %v", typeName(m), a)
		}
	}
	if f := call[*messages.WriteFailed](t, sysC, connC, &messages.Write{Data: []byte("forged"), AckId: 7}); f.AckId != 7 ||
		f.Error.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_ACCESS {
		t.Fatalf("Write from another node: %v", f)
	}

	// The owner's node is served.
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if r := expectNext[*messages.Received](t, owner); string(r.Data) != "ping" {
		t.Fatalf("owner received %q", r.Data)
	}
	if a := call[*messages.WriteAck](t, remote.sys, connB, &messages.Write{Data: []byte("pong"), AckId: 1}); a.AckId != 1 {
		t.Fatalf("owner's Write: %v", a)
	}
	if got := readN(t, client, 4); string(got) != "pong" {
		t.Fatalf("client read %q", got)
	}
}

func TestConnectionsWithALocalHandlerTakeNoRemoteRequests(t *testing.T) {
	_, remote, addr := remoteServer(t, ServerOptions{Connection: ConnectionConfig{Handler: EchoHandler()}})
	sub := newProbe(t, remote.sys)
	expectNoError(t, "Subscribe", ask[*messages.Ack](remote, &messages.Subscribe{Subscriber: sub.pid}).Error)
	client := dial(t, addr)
	ev := next[*messages.NewConnection](t, sub)
	conn := actor.NewPID(ev.Connection.Address, ev.Connection.Id)
	for _, m := range []any{&messages.Abort{}, &messages.SetOwner{Owner: sub.pid}, &messages.GetInfo{}} {
		if a := call[*messages.Ack](t, remote.sys, conn, m); a.Error.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_ACCESS {
			t.Fatalf("%s from another node: %v", typeName(m), a)
		}
	}
	if _, err := client.Write([]byte("echo")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, client, 4); string(got) != "echo" {
		t.Fatalf("echo after refused requests: %q", got)
	}
}

func TestCloseStopsOnlyTheConnectionsTheServerSpawned(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	added, _ := spawnOutsideConnection(t, s)
	expectNoError(t, "AddPendingConnection", ask[*messages.Ack](s, &messages.AddPendingConnection{Connection: added}).Error)
	client := dial(t, addr)
	s.waitStatus("two pending", pendingIs(2))

	ask[*messages.Closed](s, &messages.Close{})
	// The server's own pending connection is closed...
	_ = client.SetReadDeadline(time.Now().Add(replyTimeout))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the server's pending connection after Close: read %v, want EOF", err)
	}
	// ...the added one is its maker's, and lives on.
	if i := info(t, s.sys, added); i.State != messages.SocketState_SOCKET_STATE_CONNECTED {
		t.Fatalf("the added connection after Close: %v", i)
	}
}

func TestGetStatusNeverShowsTheProxyPassword(t *testing.T) {
	s := startServer(t, ServerOptions{})
	p := &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_NO_PROXY, Host: "proxy", Port: 1080, User: "u", Password: "secret"}
	expectNoError(t, "SetProxy", ask[*messages.Ack](s, &messages.SetProxy{Proxy: p}).Error)
	got := s.status().Proxy
	if got.GetPassword() != "" || got.GetUser() != "u" || got.GetHost() != "proxy" || got.GetPort() != 1080 {
		t.Fatalf("GetStatus proxy: %v", got)
	}
}

func TestSetSocketDescriptorRefusesAProtectedListener(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	release := ProtectListener(ln.Addr().String())
	defer release()
	fd := listeningDescriptor(t) // another socket: allowed
	defer syscall.Close(fd)
	dup := dupOf(t, ln.(*net.TCPListener)) // the protected one, under another number
	defer syscall.Close(dup)

	s := startServer(t, ServerOptions{})
	r := ask[*messages.ListenResult](s, &messages.SetSocketDescriptor{SocketDescriptor: int64(dup)})
	if r.Ok || r.Error.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_ACCESS {
		t.Fatalf("SetSocketDescriptor of a protected listener: %v", r)
	}
	if r := ask[*messages.ListenResult](s, &messages.SetSocketDescriptor{SocketDescriptor: int64(fd)}); !r.Ok {
		t.Fatalf("SetSocketDescriptor of another listener: %v", r)
	}
}

func dupOf(t *testing.T, ln *net.TCPListener) int {
	t.Helper()
	rc, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(u uintptr) { fd, derr = syscall.Dup(int(u)) }); err != nil || derr != nil {
		t.Fatalf("dup: %v %v", err, derr)
	}
	return fd
}

func TestConnectionNamesAreUnguessable(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	sub := newProbe(t, s.sys)
	expectNoError(t, "Subscribe", ask[*messages.Ack](s, &messages.Subscribe{Subscriber: sub.pid}).Error)
	dial(t, addr)
	dial(t, addr)
	a, b := next[*messages.NewConnection](t, sub).Connection.Id, next[*messages.NewConnection](t, sub).Connection.Id
	// 128 bits from crypto/rand in base64url: 21 characters of 6 bits and
	// one of the last 2 (its low 4 bits zero).
	random := regexp.MustCompile(`^conn-[A-Za-z0-9_-]{21}[AQgw]$`)
	if !random.MatchString(a) || !random.MatchString(b) || a == b {
		t.Fatalf("connection ids %q and %q, want conn- and 128 random bits in base64url each", a, b)
	}
	if len(a) > 32 {
		t.Errorf("connection id %q is %d bytes: a name over 32 bytes takes the next size class", a, len(a))
	}
}
