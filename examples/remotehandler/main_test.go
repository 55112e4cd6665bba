package main

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
)

func TestMain(m *testing.M) { testkit.RunTests(m) }

// nodes starts the server on shared remote node 0 and the handler on node
// 1, and stops both when the test ends.
func nodes(t *testing.T) (addr string, startB func()) {
	t.Helper()
	a, b := testkit.Remote(t, 0), testkit.Remote(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	name := "remotehandler-" + t.Name()
	srv, addr, err := startServer(ctx, a, name, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	// A PID of its own for node B: a PID caches its route per system.
	pid := actor.NewPID(a.Address(), name)
	return addr, func() {
		d, err := startHandler(ctx, b, pid)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Root.StopFuture(d).Wait() })
	}
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, send, want string) {
	t.Helper()
	if _, err := c.Write([]byte(send)); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadString('\n')
	if err != nil || got != want {
		t.Fatalf("sent %q: got %q (%v), want %q", send, got, err, want)
	}
}

// TestConnectionsAcceptedOnOneNodeAreServedByTheOther: node A has no
// handler at all, so the upper-case answer comes from node B's owner.
func TestConnectionsAcceptedOnOneNodeAreServedByTheOther(t *testing.T) {
	addr, startB := nodes(t)
	startB()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	roundTrip(t, c, r, "hello across nodes\n", "HELLO ACROSS NODES\n")
	roundTrip(t, c, r, "again\n", "AGAIN\n")
}

// TestConnectionsThatWaitedForTheHandlerNodeAreServedWhenItComes: clients
// that connected before any handler node existed wait in node A's pending
// queue (the kernel holds their bytes) and are served once node B
// subscribes.
func TestConnectionsThatWaitedForTheHandlerNodeAreServedWhenItComes(t *testing.T) {
	addr, startB := nodes(t)
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("early\n")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	startB()
	for i, c := range conns {
		got, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || got != "EARLY\n" {
			t.Fatalf("client %d: got %q (%v), want EARLY", i, got, err)
		}
	}
}
