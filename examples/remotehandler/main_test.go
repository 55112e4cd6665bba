package main

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// TestANormalRunLogsNoError runs the example as its README does, both nodes
// in one process: a client served across the nodes, then SIGTERM. The
// process exits 0 and logs no ERROR (the pinned Proto.Actor remote logs its
// own orderly close of a stream, "EndpointWriter lost connection", at
// ERROR).
func TestANormalRunLogsNoError(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "remotehandler")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	var stderr testkit.SyncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	exited := make(chan struct{}) // closed once waitErr is set
	var waitErr error
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody reads after the ready lines
			}
		}
		close(lines)
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	var addr string
	for l := range lines {
		if a, ok := strings.CutPrefix(l, "listening on "); ok {
			addr = a
		}
		if strings.HasPrefix(l, "handler node ") {
			break
		}
	}
	if addr == "" {
		t.Fatalf("no `listening on` line; stderr:\n%s", stderr.String())
	}
	client, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	roundTrip(t, client, bufio.NewReader(client), "hello\n", "HELLO\n")
	client.Close()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("exit: %v; stderr:\n%s", waitErr, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit within 20s of SIGTERM; stderr:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "level=ERROR") {
		t.Errorf("ERROR logged on a normal run:\n%s", stderr.String())
	}
}
