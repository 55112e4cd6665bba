package server_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
	"golang.org/x/net/nettest"
)

// connPipe makes nettest pipes of a server.Conn and the plain TCP client
// connected to it. The ServerActor (and so the ConnectionActor) runs in
// srvSys; the Conn's owner actor in ownerSys. connFirst puts the server.Conn
// as c1, the side nettest puts under timeouts and concurrent calls.
func connPipe(t *testing.T, srvSys, ownerSys *actor.ActorSystem, opts server.ConnOptions, connFirst bool) nettest.MakePipe {
	srv, addr := listening(t, srvSys, server.Options{})
	view := viewFrom(ownerSys, srv)
	t.Cleanup(func() { noConnectionsLeft(t, srv) })
	return func() (c1, c2 net.Conn, stop func(), err error) {
		tc, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, nil, nil, err
		}
		ctx := testCtx(t)
		if _, _, err := view.WaitForNewConnection(ctx, 10_000); err != nil {
			tc.Close()
			return nil, nil, nil, err
		}
		sc, err := view.NextPendingConn(ctx, opts)
		if err != nil || sc == nil {
			tc.Close()
			return nil, nil, nil, fmt.Errorf("claim: %v, %v", sc, err)
		}
		stop = func() {
			sc.Close()
			tc.Close()
		}
		if connFirst {
			return sc, tc, stop, nil
		}
		return tc, sc, stop, nil
	}
}

// In the same system the Conn reads and writes the socket itself (the
// connection lends it), unless NoDirectIO keeps it on messages.
func TestConnIsANetConnWhenTheConnectionActorIsInTheSameSystem(t *testing.T) {
	sys := testkit.NewSystem(t)
	for _, tc := range []struct {
		name string
		opts server.ConnOptions
	}{{"DirectIO", server.ConnOptions{}}, {"Messages", server.ConnOptions{NoDirectIO: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("ConnAsC1", func(t *testing.T) { nettest.TestConn(t, connPipe(t, sys, sys, tc.opts, true)) })
			t.Run("ConnAsC2", func(t *testing.T) { nettest.TestConn(t, connPipe(t, sys, sys, tc.opts, false)) })
		})
	}
}

func TestConnIsANetConnWhenTheConnectionActorIsOnAnotherNode(t *testing.T) {
	node0, node1 := testkit.Remote(t, 0), testkit.Remote(t, 1)
	t.Run("ConnAsC1", func(t *testing.T) { nettest.TestConn(t, connPipe(t, node0, node1, server.ConnOptions{}, true)) })
	t.Run("ConnAsC2", func(t *testing.T) { nettest.TestConn(t, connPipe(t, node0, node1, server.ConnOptions{}, false)) })
}

// claimed makes a server in sys, a TCP client and the server.Conn of its
// connection.
func claimed(t *testing.T, sys *actor.ActorSystem, sopts server.Options, copts server.ConnOptions) (*server.Server, net.Conn, *server.Conn) {
	t.Helper()
	srv, addr := listening(t, sys, sopts)
	client := dial(t, addr)
	ctx := testCtx(t)
	if ok, _, err := srv.WaitForNewConnection(ctx, 10_000); !ok || err != nil {
		t.Fatalf("WaitForNewConnection = %v, %v", ok, err)
	}
	c, err := srv.NextPendingConn(ctx, copts)
	if c == nil || err != nil {
		t.Fatalf("NextPendingConn = %v, %v", c, err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, client, c
}

func TestConnWriteLargerThanTheWriteQueueArrivesWhole(t *testing.T) {
	cases := []struct {
		name  string
		sopts server.Options
		copts server.ConnOptions
	}{
		{"default queue", server.Options{}, server.ConnOptions{}},
		{"64 KiB queue", server.Options{Connection: actors.ConnectionConfig{WriteQueueBytes: 64 << 10}},
			server.ConnOptions{WriteChunkSize: 16 << 10, WriteWindow: 64 << 10}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, client, c := claimed(t, testkit.NewSystem(t), tc.sopts, tc.copts)
			data := bigBody(5 << 20)
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(client)
				got <- b
			}()
			if n, err := c.Write(data); n != len(data) || err != nil {
				t.Fatalf("Write of %d bytes = %d, %v", len(data), n, err)
			}
			c.Close()
			if b := <-got; !bytes.Equal(b, data) {
				t.Errorf("the client read %d bytes, not the %d written", len(b), len(data))
			}
		})
	}
}

func TestConnHoldsAtMostItsCreditOfUnreadChunks(t *testing.T) {
	const credit, chunk = 2, 8 << 10
	sopts := server.Options{Connection: actors.ConnectionConfig{ReadChunkSize: chunk}}
	_, client, c := claimed(t, testkit.NewSystem(t), sopts, server.ConnOptions{ReadCredit: credit, NoDirectIO: true})
	data := bigBody(4 << 20)
	go client.Write(data) // blocks once the kernel's buffers are full
	ctx := testCtx(t)
	var last uint64
	eventually(t, "reading to stop at the credit", func() bool {
		info, err := c.Info(ctx)
		if err != nil || info.BytesReceived == 0 {
			return false
		}
		stable := info.BytesReceived == last
		last = info.BytesReceived
		time.Sleep(50 * time.Millisecond)
		return stable
	})
	if last > credit*chunk {
		t.Errorf("the connection read %d bytes nobody Read; the credit allows %d", last, credit*chunk)
	}
	got := make([]byte, len(data))
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, data) {
		t.Errorf("reading on: %v (equal: %v)", err, bytes.Equal(got, data))
	}
}

// A Conn whose connection runs on its node reads the socket itself, on
// Read's goroutine: nothing is read (or counted) before Read asks, and
// what Read and Write move is counted by the connection.
func TestAConnOnTheConnectionsNodeReadsNothingBeforeRead(t *testing.T) {
	_, client, c := claimed(t, testkit.NewSystem(t), server.Options{}, server.ConnOptions{})
	data := bigBody(64 << 10)
	if _, err := client.Write(data); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	// Reading ahead would have begun at once: a Received path reads as
	// soon as the claim grants credit.
	time.Sleep(100 * time.Millisecond)
	if info, err := c.Info(ctx); err != nil || info.BytesReceived != 0 {
		t.Fatalf("Info before any Read = %v, %v; want nothing received", info, err)
	}
	got := make([]byte, len(data))
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadFull: %v (equal: %v)", err, bytes.Equal(got, data))
	}
	if _, err := c.Write([]byte("thanks")); err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(ctx); err != nil || info.BytesReceived != uint64(len(data)) || info.BytesSent != 6 {
		t.Errorf("Info after Read and Write = %v, %v; want %d received, 6 sent", info, err, len(data))
	}
}

func TestConnReadReturnsEOFAfterThePeerClosesAndWritingGoesOn(t *testing.T) {
	_, client, c := claimed(t, testkit.NewSystem(t), server.Options{}, server.ConnOptions{})
	client.Write([]byte("bye"))
	client.(*net.TCPConn).CloseWrite()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if string(b) != "bye" || err != nil {
		t.Fatalf("ReadAll = %q, %v; want bye, then io.EOF", b, err)
	}
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("Read after EOF: %v; want io.EOF again", err)
	}
	if _, err := c.Write([]byte("still here")); err != nil {
		t.Fatalf("Write after the peer's FIN: %v", err)
	}
	c.Close()
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(client); string(b) != "still here" || err != nil {
		t.Errorf("the client read %q, %v; want still here, then EOF", b, err)
	}
}

func TestConnCloseReleasesTheOwnerActorAndTheConnection(t *testing.T) {
	placements(t, func(t *testing.T, srvSys, callerSys *actor.ActorSystem) {
		srv, addr := listening(t, srvSys, server.Options{})
		view := viewFrom(callerSys, srv)
		ctx := testCtx(t)
		client := dial(t, addr)
		view.WaitForNewConnection(ctx, 10_000)
		c, err := view.NextPendingConn(ctx, server.ConnOptions{})
		if c == nil || err != nil {
			t.Fatalf("NextPendingConn = %v, %v", c, err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read after Close: %v; want net.ErrClosed", err)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write after Close: %v; want net.ErrClosed", err)
		}
		if err := c.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second Close: %v; want net.ErrClosed", err)
		}
		if _, err := callerSys.Root.RequestFuture(c.Owner(), &messages.GetInfo{}, 5*time.Second).Result(); !errors.Is(err, actor.ErrDeadLetter) {
			t.Errorf("the owner actor after Close: %v; want it gone (dead letter)", err)
		}
		client.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := client.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("the client's Read after Close: %v; want io.EOF", err)
		}
		noConnectionsLeft(t, srv)
	})
}

func TestConnReadAndWriteReportTheErrorThatEndedTheConnection(t *testing.T) {
	sopts := server.Options{Connection: actors.ConnectionConfig{IdleTimeout: 50 * time.Millisecond}}
	_, _, c := claimed(t, testkit.NewSystem(t), sopts, server.ConnOptions{})
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if socketCode(err) != messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT {
		t.Fatalf("Read of a connection closed by its idle time-out: %v; want SocketTimeout", err)
	}
	if _, err := c.Write([]byte("x")); socketCode(err) != messages.SocketError_SOCKET_ERROR_SOCKET_TIMEOUT {
		t.Errorf("Write after the idle time-out: %v; want SocketTimeout", err)
	}
}

func TestNewConnTakesOverAConnectionFromItsOwner(t *testing.T) {
	sys := testkit.NewSystem(t)
	srv, addr := listening(t, sys, server.Options{})
	ctx := testCtx(t)
	client := dial(t, addr)
	srv.WaitForNewConnection(ctx, 10_000)
	first := testkit.NewProbe(t, sys)
	pid, _, err := srv.NextPendingConnection(ctx, first.PID, nil)
	if pid == nil || err != nil {
		t.Fatalf("NextPendingConnection = %v, %v", pid, err)
	}
	c, err := server.NewConn(ctx, sys, pid, server.ConnOptions{})
	if err != nil {
		t.Fatalf("NewConn: %v", err)
	}
	defer c.Close()
	if c.RemoteAddr().String() != client.LocalAddr().String() {
		t.Errorf("RemoteAddr = %s; want the client's %s", c.RemoteAddr(), client.LocalAddr())
	}
	client.Write([]byte("ping"))
	buf := make([]byte, 4)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("Read = %q, %v; want ping", buf, err)
	}
	c.Write([]byte("pong"))
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "pong" {
		t.Errorf("client read %q, %v; want pong", buf, err)
	}
	testkit.Quiet[any](t, first, 50*time.Millisecond) // the former owner hears nothing more
}

func TestConnCloseWriteSendsFINAndReadingGoesOn(t *testing.T) {
	_, client, c := claimed(t, testkit.NewSystem(t), server.Options{}, server.ConnOptions{})
	c.Write([]byte("done"))
	if err := c.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	client.SetDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(client); string(b) != "done" || err != nil {
		t.Fatalf("the client read %q, %v; want done, then EOF", b, err)
	}
	client.Write([]byte("reply"))
	buf := make([]byte, 5)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "reply" {
		t.Errorf("Read after CloseWrite = %q, %v; want reply", buf, err)
	}
	info, err := c.Info(testCtx(t))
	if err != nil || info.BytesSent != 4 || info.BytesReceived != 5 {
		t.Errorf("Info = %v, %v; want 4 bytes sent, 5 received", info, err)
	}
}

// A deadline set while a Read or Write waits wakes it at that time, on
// messages or on the lent socket (the Conn arms its timers only for
// waiters).
func TestADeadlineSetWhileAReadWaitsWakesIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts server.ConnOptions
	}{{"DirectIO", server.ConnOptions{}}, {"Messages", server.ConnOptions{NoDirectIO: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, c := claimed(t, testkit.NewSystem(t), server.Options{}, tc.opts)
			done := make(chan error, 1)
			go func() {
				_, err := c.Read(make([]byte, 1))
				done <- err
			}()
			time.Sleep(20 * time.Millisecond) // let Read wait, most likely
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			select {
			case err := <-done:
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("Read = %v; want os.ErrDeadlineExceeded", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the Read was not woken by its deadline")
			}
		})
	}
}
