package crossnode

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/owner"
	"github.com/tcpactor/tcpactor/server"
)

const replyTimeout = 5 * time.Second

// remoteServer spawns a listening ServerActor on node i and returns a handle
// on it as seen from node j (a PID copy: a *PID caches its route, so one
// object must not be shared between two systems).
func remoteServer(t *testing.T, i, j int) (srv *server.Server, addr string) {
	t.Helper()
	sysA := testkit.Remote(t, i)
	local := server.Spawn(sysA, server.Options{})
	t.Cleanup(func() { _ = local.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
	defer cancel()
	host, port, err := local.Listen(ctx, "127.0.0.1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := actor.NewPID(local.PID().Address, local.PID().Id)
	return server.Wrap(testkit.Remote(t, j), pid), net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// spawnOwner starts an owner actor on node i, stopped when the test ends.
func spawnOwner(t *testing.T, i int, cfg owner.Config) *actor.PID {
	t.Helper()
	sys := testkit.Remote(t, i)
	pid := sys.Root.Spawn(owner.New(cfg))
	t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
	return pid
}

// echoRoundTrip writes data on c while reading the echo back, and checks it
// byte for byte.
func echoRoundTrip(t *testing.T, c net.Conn, data []byte) error {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		werr <- err
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if err := <-werr; err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return errNotEqual
	}
	return nil
}

type stringErr string

func (e stringErr) Error() string { return string(e) }

const errNotEqual = stringErr("echo differs from what was sent")

// TestOwnerOnAnotherNodeEchoesByteExact serves connections accepted on node
// A from an owner actor on node B: the owner subscribes to the server,
// claims each connection and echoes it through Received, Write, WriteAck and
// Demand, all crossing the network.
func TestOwnerOnAnotherNodeEchoesByteExact(t *testing.T) {
	srv, addr := remoteServer(t, 0, 1)
	subscribedOwner(t, testkit.Remote(t, 1), owner.Config{Server: srv.PID(), Handler: owner.Echo()})

	const conns, size = 8, 256 << 10
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, replyTimeout)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			data := make([]byte, size)
			_, _ = rand.Read(data)
			errs <- echoRoundTrip(t, c, data)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// subscribedOwner spawns an owner actor in sys, stopped when the test ends,
// and returns once it is subscribed to cfg.Server (the first OnServer news),
// so that the server announces every client that connects afterwards to it.
func subscribedOwner(t *testing.T, sys *actor.ActorSystem, cfg owner.Config) *actor.PID {
	t.Helper()
	subscribed := make(chan error, 1)
	cfg.OnServer = func(_ *actor.PID, err error) { // runs in the owner: never blocks
		select {
		case subscribed <- err:
		default:
		}
	}
	pid := sys.Root.Spawn(owner.New(cfg))
	t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("the owner's subscription to %v: %v", cfg.Server, err)
		}
	case <-time.After(replyTimeout):
		t.Fatalf("the owner was not subscribed to %v within %v", cfg.Server, replyTimeout)
	}
	return pid
}

// TestCreditOfARemoteOwnerBoundsWhatTheConnectionReads claims a connection
// for an owner on another node with a credit of 2 and never grants more:
// exactly two Received cross the network and the connection stops reading
// (the kernel holds the rest), until a Demand from the owner's node lets one
// more through. Write acknowledgements come back across the network too.
func TestCreditOfARemoteOwnerBoundsWhatTheConnectionReads(t *testing.T) {
	srv, addr := remoteServer(t, 0, 1)
	owner := testkit.NewProbe(t, testkit.Remote(t, 1))
	client, err := net.DialTimeout("tcp", addr, replyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	sysB := testkit.Remote(t, 1)
	var pc *messages.PendingConnection
	for deadline := time.Now().Add(replyTimeout); ; time.Sleep(5 * time.Millisecond) {
		res, err := sysB.Root.RequestFuture(srv.PID(), &messages.NextPendingConnection{Owner: owner.PID,
			Options: &messages.ClaimOptions{InitialCredit: 2}}, replyTimeout).Result()
		if err != nil {
			t.Fatal(err)
		}
		if pc = res.(*messages.PendingConnection); pc.Connection != nil || time.Now().After(deadline) {
			break
		}
	}
	if pc.Connection == nil {
		t.Fatal("the connection never became pending")
	}
	conn := pc.Connection

	// The client sends far more than two chunks; it blocks once the kernel
	// buffers are full, so it writes from a goroutine.
	go func() { _, _ = client.Write(make([]byte, 8<<20)) }()
	for range 2 {
		testkit.Next[*messages.Received](t, owner)
	}
	testkit.Quiet[*messages.Received](t, owner, 300*time.Millisecond)
	res, err := sysB.Root.RequestFuture(conn, &messages.GetInfo{}, replyTimeout).Result()
	if err != nil {
		t.Fatal(err)
	}
	info := res.(*messages.ConnectionInfo)
	if max := uint64(3 * 32 << 10); info.BytesReceived > max {
		t.Fatalf("bytes_received %d with a credit of 2: want at most %d (credit + one held chunk)", info.BytesReceived, max)
	}

	sysB.Root.Send(conn, &messages.Demand{N: 1})
	testkit.Next[*messages.Received](t, owner)
	testkit.Quiet[*messages.Received](t, owner, 200*time.Millisecond)

	sysB.Root.RequestWithCustomSender(conn, &messages.Write{Data: []byte("ok"), AckId: 7}, owner.PID)
	if ack := testkit.Next[*messages.WriteAck](t, owner); ack.AckId != 7 {
		t.Fatalf("WriteAck %v, want ack_id 7", ack)
	}
}

// TestOwnerStoppingOnAnotherNodeClosesTheConnection: node A accepts, node B
// owns, node C watches the server. When B's owner stops, A's connection
// closes (the client sees EOF) and its descriptor is freed; C still hears
// of new connections.
func TestOwnerStoppingOnAnotherNodeClosesTheConnection(t *testing.T) {
	srv, addr := remoteServer(t, 0, 1)
	watcher := testkit.NewProbe(t, testkit.Remote(t, 2))
	sysC := testkit.Remote(t, 2)
	res, err := sysC.Root.RequestFuture(actor.NewPID(srv.PID().Address, srv.PID().Id),
		&messages.Subscribe{Subscriber: watcher.PID}, replyTimeout).Result()
	if ack, ok := res.(*messages.Ack); err != nil || !ok || ack.Error.Failed() {
		t.Fatalf("subscribe: %v %v", res, err)
	}
	// The baseline is taken with the endpoints between A and B open both
	// ways (a request from B, its reply from A), as they stay: run alone,
	// the test would otherwise count the four descriptors of those gRPC
	// connections, opened by the owner's subscription, as leaked.
	sysB := testkit.Remote(t, 1)
	if _, err := sysB.Root.RequestFuture(actor.NewPID(srv.PID().Address, srv.PID().Id),
		&messages.GetStatus{}, replyTimeout).Result(); err != nil {
		t.Fatalf("GetStatus from node B: %v", err)
	}
	fds := testkit.OpenFDs(t)

	owner := subscribedOwner(t, sysB, owner.Config{Server: srv.PID(), Handler: owner.Echo()})
	client, err := net.DialTimeout("tcp", addr, replyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := echoRoundTrip(t, client, []byte("across nodes")); err != nil {
		t.Fatal(err)
	}
	ev := testkit.Next[*messages.NewConnection](t, watcher)
	if ev.Connection.Address != testkit.Remote(t, 0).Address() {
		t.Fatalf("NewConnection from %v, want a connection of node A", ev.Connection)
	}

	start := time.Now()
	if err := sysB.Root.StopFuture(owner).Wait(); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(replyTimeout))
	if n, err := client.Read(make([]byte, 1)); err == nil || n != 0 {
		t.Fatalf("client read %d bytes, %v after the owner stopped: want EOF", n, err)
	}
	t.Logf("owner stopped on node B: client saw the close after %v", time.Since(start))
	client.Close()
	waitFDs(t, fds)

	c2, err := net.DialTimeout("tcp", addr, replyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	testkit.Next[*messages.NewConnection](t, watcher)
}

// waitFDs waits until this process has at most want descriptors open.
func waitFDs(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(replyTimeout)
	for testkit.OpenFDs(t) > want {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open, want %d", testkit.OpenFDs(t), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
