package crossnode

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// streamServer starts a server node with --remote-stream and returns it
// with its listen and remote addresses.
func streamServer(t *testing.T, bin, name string) (p *nodeProc, listen, remote string) {
	t.Helper()
	p = startNode(t, bin, name, "--remote", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--name", "echo",
		"--remote-stream", "--debug-addr", "127.0.0.1:0", "--log-level", logLevel())
	line, _ := p.waitLine("listening on ", time.Time{}, 10*time.Second)
	rline, _ := p.waitLine("remote on ", time.Time{}, 10*time.Second)
	dline, _ := p.waitLine("debug on ", time.Time{}, 10*time.Second)
	p.debug = addrAfter(dline, "debug on ")
	return p, addrAfter(line, "listening on "), addrAfter(rline, "remote on ")
}

// streamHandler starts an echo handler node with --remote-stream for the
// server at remote.
func streamHandler(t *testing.T, bin, name, remote string) *nodeProc {
	t.Helper()
	p := startNode(t, bin, name, "--remote", "127.0.0.1:0", "--handler", "echo", "--server", remote+"/echo",
		"--remote-stream", "--debug-addr", "127.0.0.1:0", "--log-level", logLevel())
	dline, _ := p.waitLine("debug on ", time.Time{}, 10*time.Second)
	p.debug = addrAfter(dline, "debug on ")
	p.waitLine("owner: subscribed to ", time.Time{}, 10*time.Second)
	return p
}

// echoingClients opens n clients of addr, each served (one echo), closed
// when the test ends.
func echoingClients(t *testing.T, addr string, n int, tag string) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		echoOn(t, c, fmt.Sprintf("%s-%d", tag, i))
		conns = append(conns, c)
	}
	return conns
}

// streamsCarried fails unless p's streams carried messages both ways.
func streamsCarried(t *testing.T, p *nodeProc) {
	t.Helper()
	st := p.status()
	if st["stream_sent"] == nil || st["stream_received"] == nil {
		t.Fatalf("%s: its streams carried nothing: %v", p.name, st)
	}
}

// With --remote-stream on both nodes, losing either process ends the
// connections on the other: the handler's process killed, the server's
// node closes the connections it owned (their clients see the end); the
// server's process killed, the handler hears of each connection's end
// (Terminated, AddressTerminated), which the stream transport now delivers
// itself when its stream to the lost node breaks.
func TestStreamNodeLossEndsTheConnectionsOnTheOtherNode(t *testing.T) {
	bin := buildTCPActor(t)
	srv, addr, remote := streamServer(t, bin, "server")
	handler := streamHandler(t, bin, "handler", remote)
	defer func() {
		if t.Failed() {
			t.Logf("server output:\n%s\nhandler output:\n%s", srv.output(), handler.output())
		}
	}()

	// 1. The owner's process is lost.
	clients := echoingClients(t, addr, 4, "owned")
	streamsCarried(t, srv)
	streamsCarried(t, handler)
	killed := time.Now()
	handler.kill()
	t.Logf("owner lost: clients saw their connections end within %v", clientsSeeTheEnd(t, clients, killed))

	// 2. The server's process is lost.
	handler = streamHandler(t, bin, "handler2", remote)
	clients = echoingClients(t, addr, 4, "hosted")
	streamsCarried(t, handler)
	killed = time.Now()
	srv.kill()
	t.Logf("server lost: clients saw their connections end within %v", clientsSeeTheEnd(t, clients, killed))
	deadline := time.Now().Add(10 * time.Second)
	for handler.count("owner: ended", killed) < len(clients) {
		if time.Now().After(deadline) {
			t.Fatalf("the owner heard of %d of %d lost connections", handler.count("owner: ended", killed), len(clients))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if line := handler.last("owner: ended"); !strings.Contains(line, "AddressTerminated") {
		t.Fatalf("connection end reported as %q, want AddressTerminated", line)
	}
	t.Logf("server lost: the owner heard of all %d connections' ends after %v", len(clients), time.Since(killed))
	if !handler.alive() {
		t.Fatal("the handler died")
	}
}
