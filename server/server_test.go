package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
)

// socketCode is the SocketError an error carries, NONE when it carries none.
func socketCode(err error) messages.SocketError {
	var se *messages.SocketErr
	if errors.As(err, &se) {
		return se.Code
	}
	return messages.SocketError_SOCKET_ERROR_NONE
}

// placements runs a test with the ServerActor in the caller's actor system
// and on another node.
func placements(t *testing.T, f func(t *testing.T, srvSys, callerSys *actor.ActorSystem)) {
	t.Run("SameSystem", func(t *testing.T) {
		sys := testkit.NewSystem(t)
		f(t, sys, sys)
	})
	t.Run("AnotherNode", func(t *testing.T) { f(t, testkit.Remote(t, 0), testkit.Remote(t, 1)) })
}

// spawnOn spawns a server in srvSys and returns the handle callerSys uses.
func spawnOn(t *testing.T, srvSys, callerSys *actor.ActorSystem, opts server.Options) *server.Server {
	t.Helper()
	if srvSys != callerSys {
		opts.AllowRemoteAdmin = true // the facade administers it from the other node
	}
	srv := server.Spawn(srvSys, opts)
	t.Cleanup(func() { _ = srv.Stop() })
	if srvSys == callerSys {
		return srv
	}
	return viewFrom(callerSys, srv)
}

func TestListenReportsTheAddressAndPortBound(t *testing.T) {
	placements(t, func(t *testing.T, srvSys, callerSys *actor.ActorSystem) {
		srv, ctx := spawnOn(t, srvSys, callerSys, server.Options{}), testCtx(t)
		addr, port, err := srv.Listen(ctx, "LocalHost", 0, nil)
		if err != nil || addr != "127.0.0.1" || port == 0 {
			t.Fatalf("Listen = %q, %d, %v; want 127.0.0.1, a port, nil", addr, port, err)
		}
		if got, err := srv.ServerPort(ctx); err != nil || got != port {
			t.Errorf("ServerPort = %d, %v; want %d", got, err, port)
		}
		if got, err := srv.ServerAddress(ctx); err != nil || got != "127.0.0.1" {
			t.Errorf("ServerAddress = %q, %v; want 127.0.0.1", got, err)
		}
		if ok, err := srv.IsListening(ctx); err != nil || !ok {
			t.Errorf("IsListening = %v, %v; want true", ok, err)
		}
		if fd, err := srv.SocketDescriptor(ctx); err != nil || fd < 0 {
			t.Errorf("SocketDescriptor = %d, %v; want a descriptor", fd, err)
		}
		dial(t, net.JoinHostPort(addr, itoa(port)))
	})
}

func TestListenOnAPortInUseFailsWithAddressInUse(t *testing.T) {
	placements(t, func(t *testing.T, srvSys, callerSys *actor.ActorSystem) {
		taken, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		port := uint16(taken.Addr().(*net.TCPAddr).Port)
		srv, ctx := spawnOn(t, srvSys, callerSys, server.Options{}), testCtx(t)

		_, _, err = srv.Listen(ctx, "127.0.0.1", port, nil)
		var se *messages.SocketErr
		if !errors.As(err, &se) || se.Code != messages.SocketError_SOCKET_ERROR_ADDRESS_IN_USE {
			t.Fatalf("Listen on a used port: %v; want a *messages.SocketErr with AddressInUse", err)
		}
		if code, err := srv.ServerError(ctx); err != nil || code != messages.SocketError_SOCKET_ERROR_ADDRESS_IN_USE {
			t.Errorf("ServerError = %v, %v; want AddressInUse", code, err)
		}
		if text, err := srv.ErrorString(ctx); err != nil || text == "" {
			t.Errorf("ErrorString = %q, %v; want a readable text", text, err)
		}
		if ok, _ := srv.IsListening(ctx); ok {
			t.Error("IsListening after a failed Listen = true")
		}
	})
}

func TestListenTwiceIsAnOperationError(t *testing.T) {
	srv, _ := listening(t, testkit.NewSystem(t), server.Options{})
	_, _, err := srv.Listen(testCtx(t), "LocalHost", 0, nil)
	if socketCode(err) != messages.SocketError_SOCKET_ERROR_OPERATION {
		t.Fatalf("second Listen: %v; want an OperationError", err)
	}
}

func TestGettersDescribeAServerThatIsNotListening(t *testing.T) {
	placements(t, func(t *testing.T, srvSys, callerSys *actor.ActorSystem) {
		srv, ctx := spawnOn(t, srvSys, callerSys, server.Options{}), testCtx(t)
		check := func(name string, got, want any, err error) {
			t.Helper()
			if err != nil || got != want {
				t.Errorf("%s = %v, %v; want %v", name, got, err, want)
			}
		}
		ok, err := srv.IsListening(ctx)
		check("IsListening", ok, false, err)
		addr, err := srv.ServerAddress(ctx)
		check("ServerAddress", addr, "", err)
		port, err := srv.ServerPort(ctx)
		check("ServerPort", port, uint16(0), err)
		fd, err := srv.SocketDescriptor(ctx)
		check("SocketDescriptor", fd, int64(-1), err)
		n, err := srv.MaxPendingConnections(ctx)
		check("MaxPendingConnections", n, 30, err)
		has, err := srv.HasPendingConnections(ctx)
		check("HasPendingConnections", has, false, err)
		code, err := srv.ServerError(ctx)
		check("ServerError", code, messages.SocketError_SOCKET_ERROR_NONE, err)
		text, err := srv.ErrorString(ctx)
		check("ErrorString", text, "", err)
		p, err := srv.Proxy(ctx)
		check("Proxy", p.GetType(), messages.ProxyType_PROXY_TYPE_DEFAULT, err)
		b, err := srv.ListenBacklogSize(ctx)
		check("ListenBacklogSize", b, 50, err)
	})
}

func TestSetMaxPendingConnectionsChangesTheLimitAndRefusesLessThanOne(t *testing.T) {
	placements(t, func(t *testing.T, srvSys, callerSys *actor.ActorSystem) {
		srv, ctx := spawnOn(t, srvSys, callerSys, server.Options{}), testCtx(t)
		if err := srv.SetMaxPendingConnections(ctx, 5); err != nil {
			t.Fatalf("SetMaxPendingConnections(5): %v", err)
		}
		if n, err := srv.MaxPendingConnections(ctx); err != nil || n != 5 {
			t.Errorf("MaxPendingConnections = %d, %v; want 5", n, err)
		}
		if err := srv.SetMaxPendingConnections(ctx, 0); socketCode(err) != messages.SocketError_SOCKET_ERROR_OPERATION {
			t.Errorf("SetMaxPendingConnections(0): %v; want an OperationError", err)
		}
		if n, _ := srv.MaxPendingConnections(ctx); n != 5 {
			t.Errorf("MaxPendingConnections after a refused change = %d; want 5", n)
		}
	})
}

func TestNextPendingConnectionReturnsNilWhenTheQueueIsEmpty(t *testing.T) {
	placements(t, func(t *testing.T, srvSys, callerSys *actor.ActorSystem) {
		srv, ctx := spawnOn(t, srvSys, callerSys, server.Options{}), testCtx(t)
		if _, _, err := srv.Listen(ctx, "LocalHost", 0, nil); err != nil {
			t.Fatal(err)
		}
		owner := testkit.NewProbe(t, callerSys)
		pid, info, err := srv.NextPendingConnection(ctx, owner.PID, nil)
		if pid != nil || info != nil || err != nil {
			t.Errorf("NextPendingConnection on an empty queue = %v, %v, %v; want nil, nil, nil", pid, info, err)
		}
		c, err := srv.NextPendingConn(ctx, server.ConnOptions{})
		if c != nil || err != nil {
			t.Errorf("NextPendingConn on an empty queue = %v, %v; want nil, nil", c, err)
		}
	})
}

func TestNextPendingConnectionMakesTheOwnerReceiveTheBytes(t *testing.T) {
	placements(t, func(t *testing.T, srvSys, callerSys *actor.ActorSystem) {
		srv, ctx := spawnOn(t, srvSys, callerSys, server.Options{}), testCtx(t)
		_, port, err := srv.Listen(ctx, "LocalHost", 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		client := dial(t, net.JoinHostPort("127.0.0.1", itoa(port)))
		if ok, _, err := srv.WaitForNewConnection(ctx, 10_000); !ok || err != nil {
			t.Fatalf("WaitForNewConnection = %v, %v", ok, err)
		}
		if has, err := srv.HasPendingConnections(ctx); !has || err != nil {
			t.Errorf("HasPendingConnections = %v, %v; want true", has, err)
		}
		owner := testkit.NewProbe(t, callerSys)
		pid, info, err := srv.NextPendingConnection(ctx, owner.PID, nil)
		if pid == nil || err != nil {
			t.Fatalf("NextPendingConnection = %v, %v; want a connection", pid, err)
		}
		if info.GetPeerPort() != uint32(client.LocalAddr().(*net.TCPAddr).Port) {
			t.Errorf("info names peer port %d; the client's is %s", info.GetPeerPort(), client.LocalAddr())
		}
		client.Write([]byte("hello"))
		if r := testkit.Next[*messages.Received](t, owner); string(r.Data) != "hello" {
			t.Errorf("owner received %q; want hello", r.Data)
		}
		client.Close()
		// The connection waits for its owner's answer after the peer's FIN.
		testkit.Next[*messages.PeerClosed](t, owner)
		callerSys.Root.Send(pid, &messages.Close{})
		testkit.Next[*messages.Disconnected](t, owner)
	})
}

func TestNextPendingConnectionWithoutAnOwnerIsAnOperationError(t *testing.T) {
	srv, _ := listening(t, testkit.NewSystem(t), server.Options{})
	_, _, err := srv.NextPendingConnection(testCtx(t), nil, nil)
	if socketCode(err) != messages.SocketError_SOCKET_ERROR_OPERATION {
		t.Fatalf("NextPendingConnection(nil owner): %v; want an OperationError", err)
	}
}

func TestWaitForNewConnectionTimesOutWithoutError(t *testing.T) {
	placements(t, func(t *testing.T, srvSys, callerSys *actor.ActorSystem) {
		srv, ctx := spawnOn(t, srvSys, callerSys, server.Options{}), testCtx(t)
		if _, _, err := srv.Listen(ctx, "LocalHost", 0, nil); err != nil {
			t.Fatal(err)
		}
		ok, timedOut, err := srv.WaitForNewConnection(ctx, 20)
		if ok || !timedOut || err != nil {
			t.Fatalf("WaitForNewConnection(20) = %v, %v, %v; want false, true, nil", ok, timedOut, err)
		}
		if code, _ := srv.ServerError(ctx); code != messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT {
			t.Errorf("ServerError after a time-out = %v; want SocketTimeout (as Qt)", code)
		}
		ok, timedOut, err = srv.WaitForNewConnection(ctx, 0)
		if ok || !timedOut || err != nil {
			t.Errorf("WaitForNewConnection(0) (poll) = %v, %v, %v; want false, true, nil", ok, timedOut, err)
		}
	})
}

func TestWaitForNewConnectionWithoutTimeOutEndsWithItsContext(t *testing.T) {
	srv, _ := listening(t, testkit.NewSystem(t), server.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ok, timedOut, err := srv.WaitForNewConnection(ctx, -1)
	if ok || timedOut || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForNewConnection(-1) under a 50 ms context = %v, %v, %v; want context.DeadlineExceeded", ok, timedOut, err)
	}
}

func TestWaitForNewConnectionFailsWhenTheServerCloses(t *testing.T) {
	placements(t, func(t *testing.T, srvSys, callerSys *actor.ActorSystem) {
		srv, ctx := spawnOn(t, srvSys, callerSys, server.Options{}), testCtx(t)
		if _, _, err := srv.Listen(ctx, "LocalHost", 0, nil); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, _, err := srv.WaitForNewConnection(ctx, -1)
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("WaitForNewConnection(-1) returned before anything happened: %v", err)
		case <-time.After(50 * time.Millisecond): // it waits, and has reached the server
		}
		if err := srv.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-done; socketCode(err) != messages.SocketError_SOCKET_ERROR_OPERATION {
			t.Errorf("WaitForNewConnection across a Close: %v; want an OperationError", err)
		}
		if _, _, err := srv.WaitForNewConnection(ctx, 10); socketCode(err) != messages.SocketError_SOCKET_ERROR_OPERATION {
			t.Errorf("WaitForNewConnection when not listening: %v; want an OperationError", err)
		}
	})
}

func TestCloseStopsListeningAndClosesUnclaimedConnections(t *testing.T) {
	srv, addr := listening(t, testkit.NewSystem(t), server.Options{})
	ctx := testCtx(t)
	client := dial(t, addr)
	if ok, _, _ := srv.WaitForNewConnection(ctx, 10_000); !ok {
		t.Fatal("no connection")
	}
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := srv.IsListening(ctx); ok {
		t.Error("IsListening after Close = true")
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Error("the unclaimed connection is still open after Close")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("dial after Close succeeded")
	}
}

func TestAddPendingConnectionQueuesAnExistingConnection(t *testing.T) {
	sys := testkit.NewSystem(t)
	a, addr := listening(t, sys, server.Options{})
	b, _ := listening(t, sys, server.Options{})
	ctx := testCtx(t)
	client := dial(t, addr)
	a.WaitForNewConnection(ctx, 10_000)
	holder := testkit.NewProbe(t, sys)
	pid, _, err := a.NextPendingConnection(ctx, holder.PID, nil)
	if pid == nil || err != nil {
		t.Fatalf("claim from a: %v, %v", pid, err)
	}
	if err := b.AddPendingConnection(ctx, pid); err != nil {
		t.Fatalf("AddPendingConnection: %v", err)
	}
	if has, _ := b.HasPendingConnections(ctx); !has {
		t.Fatal("b has no pending connection after AddPendingConnection")
	}
	c, err := b.NextPendingConn(ctx, server.ConnOptions{})
	if c == nil || err != nil {
		t.Fatalf("NextPendingConn from b = %v, %v", c, err)
	}
	defer c.Close()
	client.Write([]byte("adopted"))
	buf := make([]byte, 7)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "adopted" {
		t.Errorf("read %q, %v; want adopted", buf, err)
	}
	if err := b.AddPendingConnection(ctx, nil); socketCode(err) != messages.SocketError_SOCKET_ERROR_OPERATION {
		t.Errorf("AddPendingConnection(nil): %v; want an OperationError", err)
	}
}

func TestSetProxyTakesNoProxyAndRefusesProxiesThatCannotListen(t *testing.T) {
	placements(t, func(t *testing.T, srvSys, callerSys *actor.ActorSystem) {
		srv, ctx := spawnOn(t, srvSys, callerSys, server.Options{}), testCtx(t)
		if err := srv.SetProxy(ctx, &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_NO_PROXY}); err != nil {
			t.Fatalf("SetProxy(NoProxy): %v", err)
		}
		if p, err := srv.Proxy(ctx); err != nil || p.GetType() != messages.ProxyType_PROXY_TYPE_NO_PROXY {
			t.Errorf("Proxy = %v, %v; want NoProxy", p, err)
		}
		err := srv.SetProxy(ctx, &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_HTTP, Host: "127.0.0.1", Port: 3128})
		if socketCode(err) != messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION {
			t.Errorf("SetProxy(HttpProxy): %v; want UnsupportedSocketOperation", err)
		}
	})
}

func TestPauseAcceptingHoldsNewConnectionsUntilResumeAccepting(t *testing.T) {
	srv, addr := listening(t, testkit.NewSystem(t), server.Options{})
	ctx := testCtx(t)
	if err := srv.PauseAccepting(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := srv.Status(ctx); !st.GetPaused() {
		t.Error("Status.Paused after PauseAccepting = false")
	}
	dial(t, addr) // waits in the kernel's backlog
	if ok, timedOut, err := srv.WaitForNewConnection(ctx, 100); ok || !timedOut || err != nil {
		t.Errorf("WaitForNewConnection while paused = %v, %v, %v; want a time-out", ok, timedOut, err)
	}
	if err := srv.ResumeAccepting(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := srv.WaitForNewConnection(ctx, 10_000); !ok || err != nil {
		t.Errorf("WaitForNewConnection after ResumeAccepting = %v, %v; want the held connection", ok, err)
	}
}

func TestSubscribeDeliversNewConnectionUntilUnsubscribe(t *testing.T) {
	placements(t, func(t *testing.T, srvSys, callerSys *actor.ActorSystem) {
		srv, ctx := spawnOn(t, srvSys, callerSys, server.Options{}), testCtx(t)
		_, port, err := srv.Listen(ctx, "LocalHost", 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort("127.0.0.1", itoa(port))
		sub := testkit.NewProbe(t, callerSys)
		if err := srv.Subscribe(ctx, sub.PID); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		dial(t, addr)
		ev := testkit.Next[*messages.NewConnection](t, sub)
		if ev.Connection == nil || ev.Pending != 1 {
			t.Errorf("NewConnection = %v; want a connection, 1 pending", ev)
		}
		if err := srv.Unsubscribe(ctx, sub.PID); err != nil {
			t.Fatalf("Unsubscribe: %v", err)
		}
		dial(t, addr)
		eventually(t, "the second connection to be queued", func() bool {
			st, err := srv.Status(ctx)
			return err == nil && st.Pending == 2
		})
		// An event for the second connection would have been sent before the
		// server answered the Status above, so before this marker.
		callerSys.Root.Send(sub.PID, "marker")
		if m := testkit.Next[any](t, sub); m != "marker" {
			t.Errorf("after Unsubscribe the subscriber got %T; want nothing", m)
		}
		if err := srv.Subscribe(ctx, nil); socketCode(err) != messages.SocketError_SOCKET_ERROR_OPERATION {
			t.Errorf("Subscribe(nil): %v; want an OperationError", err)
		}
	})
}

func TestCallsToAStoppedServerFailWithErrNoServer(t *testing.T) {
	placements(t, func(t *testing.T, srvSys, callerSys *actor.ActorSystem) {
		srv, ctx := spawnOn(t, srvSys, callerSys, server.Options{}), testCtx(t)
		if err := srvSys.Root.StopFuture(actor.NewPID(srv.PID().Address, srv.PID().Id)).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Status(ctx); !errors.Is(err, server.ErrNoServer) {
			t.Errorf("Status of a stopped server: %v; want ErrNoServer", err)
		}
		if _, _, err := srv.WaitForNewConnection(ctx, -1); !errors.Is(err, server.ErrNoServer) {
			t.Errorf("WaitForNewConnection(-1) on a stopped server: %v; want ErrNoServer", err)
		}
	})
}

func TestCallsWithAnEndedContextFailAtOnce(t *testing.T) {
	srv := server.Spawn(testkit.NewSystem(t), server.Options{})
	t.Cleanup(func() { _ = srv.Stop() })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := srv.IsListening(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("IsListening with a cancelled context: %v; want context.Canceled", err)
	}
}
