package crossnode

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// streamServer starts a server node with --remote-stream and returns it
// (and extra flags) and returns it with its listen and remote addresses.
func streamServer(t *testing.T, bin, name string, extra ...string) (p *nodeProc, listen, remote string) {
	t.Helper()
	p = startNode(t, bin, name, append([]string{"--remote", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--name", "echo",
		"--remote-stream", "--debug-addr", "127.0.0.1:0", "--log-level", logLevel()}, extra...)...)
	line, _ := p.waitLine("listening on ", time.Time{}, 10*time.Second)
	rline, _ := p.waitLine("remote on ", time.Time{}, 10*time.Second)
	dline, _ := p.waitLine("debug on ", time.Time{}, 10*time.Second)
	p.debug = addrAfter(dline, "debug on ")
	return p, addrAfter(line, "listening on "), addrAfter(rline, "remote on ")
}

// streamHandler starts an echo handler node with --remote-stream for the
// server at remote, with extra flags.
func streamHandler(t *testing.T, bin, name, remote string, extra ...string) *nodeProc {
	t.Helper()
	p := startNode(t, bin, name, append([]string{"--remote", "127.0.0.1:0", "--handler", "echo", "--server", remote + "/echo",
		"--remote-stream", "--debug-addr", "127.0.0.1:0", "--log-level", logLevel()}, extra...)...)
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

// With mutual TLS on the remote, the streams are mutual TLS with the same
// certificates: an owner in another process serves through them, and the
// stream listener closes a plaintext client and a TLS client whose
// certificate another CA issued, before any ticket is read.
func TestStreamOverMutualTLSServesAndRefusesPeersWithoutACertificateOfTheCA(t *testing.T) {
	bin := buildTCPActor(t)
	ca, other := newTestCA(t, "cluster"), newTestCA(t, "other")
	srv, listen, remote := streamServer(t, bin, "server", ca.issue("server").args()...)
	handler := streamHandler(t, bin, "handler", remote, ca.issue("handler").args()...)
	defer func() {
		if t.Failed() {
			t.Logf("server output:\n%s\nhandler output:\n%s", srv.output(), handler.output())
		}
	}()
	c := echoingClients(t, listen, 2, "over mTLS")
	streamsCarried(t, srv)
	streamsCarried(t, handler)
	addr, _ := srv.status()["stream_address"].(string)
	if addr == "" {
		t.Fatalf("no stream address in %v", srv.status())
	}

	// The listener speaks TLS with the node's certificate of the CA.
	dialTLS := func(nc nodeCert, verify bool) (*tls.Conn, error) {
		cert, err := tls.LoadX509KeyPair(nc.cert, nc.key)
		if err != nil {
			t.Fatal(err)
		}
		caPEM, err := os.ReadFile(ca.issue("pool").ca)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13,
			InsecureSkipVerify: !verify} //nolint:gosec // the stranger does not care who the server is
		return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	}
	probe, err := dialTLS(ca.issue("probe"), true)
	if err != nil {
		t.Fatalf("a TLS client of the CA: %v", err)
	}
	probe.Close()
	// Plaintext: the TLS server reads a "client hello" that is not one.
	if _, ok := openStream(t, addr, append([]byte(streamMagic), make([]byte, 32)...)); ok {
		t.Fatal("a plaintext stream was accepted")
	}
	// A certificate of another CA: the handshake fails (in TLS 1.3 the
	// client learns it at its first read).
	if tc, err := dialTLS(other.issue("stranger"), false); err == nil {
		t.Cleanup(func() { tc.Close() })
		_, _ = tc.Write(append([]byte(streamMagic), make([]byte, 32)...))
		_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := tc.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
			t.Fatalf("a TLS stream with another CA's certificate: read %d bytes, %v: want it closed", n, err)
		}
	}
	echoOn(t, c[0], "still served")
}

// A node with --remote-stream talks to a peer without it through the
// remote: the set-up finds no tcpactor-stream actor there and the lane
// falls back, the messages that waited first. Either side may be the one
// without; the owner serves, and nothing went on a stream.
func TestStreamFallsBackToTheRemoteForAPeerWithoutIt(t *testing.T) {
	bin := buildTCPActor(t)
	for _, c := range []struct {
		name                   string
		serverFlag, ownerFlags string
	}{
		{"server with streams", "--remote-stream", "--remote-stream=false"},
		{"owner with streams", "--remote-stream=false", "--remote-stream"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := startNode(t, bin, "server", "--remote", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--name", "echo",
				c.serverFlag, "--debug-addr", "127.0.0.1:0", "--log-level", logLevel())
			line, _ := srv.waitLine("listening on ", time.Time{}, 10*time.Second)
			rline, _ := srv.waitLine("remote on ", time.Time{}, 10*time.Second)
			dline, _ := srv.waitLine("debug on ", time.Time{}, 10*time.Second)
			srv.debug = addrAfter(dline, "debug on ")
			h := startNode(t, bin, "handler", "--remote", "127.0.0.1:0", "--handler", "echo",
				"--server", addrAfter(rline, "remote on ")+"/echo", c.ownerFlags, "--debug-addr", "127.0.0.1:0", "--log-level", logLevel())
			dline, _ = h.waitLine("debug on ", time.Time{}, 10*time.Second)
			h.debug = addrAfter(dline, "debug on ")
			h.waitLine("owner: subscribed to ", time.Time{}, 20*time.Second)
			clients := echoingClients(t, addrAfter(line, "listening on "), 3, c.name)
			echoOn(t, clients[0], "again")
			for _, p := range []*nodeProc{srv, h} {
				if st := p.status(); st["stream_sent"] != nil || st["stream_received"] != nil {
					t.Fatalf("%s: its streams carried messages: %v", p.name, st)
				}
			}
		})
	}
}

// In a cluster whose members run --remote-stream, the connection traffic
// between two members is all on their streams once they are set up: an
// owner on one member serves connections hosted on the other, and neither
// member's remote delivers a single message of tcpactor's protocol while
// the clients are served (every PID either member resolved, the ones it
// resolved while it joined the cluster included, takes the stream).
func TestStreamClusterMembersCarryTheirConnectionTrafficOnTheStream(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	c := newTestCluster(t, 2)
	srv := c.start("server", 0, append(c.serverRole(), "--remote-stream")...)
	own := c.start("owner", 1, "--handler", "echo", "--server", "echo", "--remote-stream")
	defer func() {
		if t.Failed() {
			t.Logf("server output:\n%s\nowner output:\n%s", srv.output(), own.output())
		}
	}()
	probe, took := c.echoEventually("set up", 30*time.Second)
	probe.Close()
	t.Logf("cluster up: first echo after %v more", took)
	own.settled(10 * time.Second)

	counts := func(p *nodeProc) (remote, sent, received float64) {
		st := p.status()
		remote, _ = st["remote_protocol_messages"].(float64)
		sent, _ = st["stream_sent"].(float64)
		received, _ = st["stream_received"].(float64)
		return remote, sent, received
	}
	srvRemote, srvSent, srvRecv := counts(srv)
	ownRemote, ownSent, ownRecv := counts(own)
	for _, conn := range c.openClients(4, "on the stream") {
		echoOn(t, conn, "again")
		conn.Close()
	}
	own.settled(10 * time.Second)
	for _, n := range []struct {
		p                   *nodeProc
		remote, sent, recvd float64
	}{{srv, srvRemote, srvSent, srvRecv}, {own, ownRemote, ownSent, ownRecv}} {
		remote, sent, recvd := counts(n.p)
		t.Logf("%s: remote delivered %v → %v protocol messages; streams sent %v → %v, received %v → %v",
			n.p.name, n.remote, remote, n.sent, sent, n.recvd, recvd)
		if sent == n.sent || recvd == n.recvd {
			t.Errorf("%s: its streams carried nothing while the clients were served", n.p.name)
		}
		if remote != n.remote {
			t.Errorf("%s: the remote delivered %v messages of tcpactor's protocol while the clients were served: want none, the streams carry them",
				n.p.name, remote-n.remote)
		}
	}
}

// A peer without streams puts a node's lane to it on the remote for as
// long as it lives; once the remote reports it lost, the lane sets up
// again, so a node that comes back at that address with --remote-stream
// is served on the streams: the server's stream to it carries the
// connections' traffic and the new owner's remote delivers none of it.
func TestStreamSetsUpAgainForAPeerThatComesBackWithStreams(t *testing.T) {
	bin := buildTCPActor(t)
	srv, listen, remote := streamServer(t, bin, "server")
	ownerRemote := hostport(freePort(t))
	handler := func(name string, stream bool) *nodeProc {
		p := startNode(t, bin, name, "--remote", ownerRemote, "--handler", "echo", "--server", remote+"/echo",
			fmt.Sprintf("--remote-stream=%v", stream), "--debug-addr", "127.0.0.1:0", "--log-level", logLevel())
		dline, _ := p.waitLine("debug on ", time.Time{}, 10*time.Second)
		p.debug = addrAfter(dline, "debug on ")
		p.waitLine("owner: subscribed to ", time.Time{}, 20*time.Second)
		return p
	}
	old := handler("handler without streams", false)
	defer func() {
		if t.Failed() {
			t.Logf("server output:\n%s", srv.output())
		}
	}()
	for _, c := range echoingClients(t, listen, 2, "through the remote") {
		c.Close()
	}
	if st := srv.status(); st["stream_sent"] != nil {
		t.Fatalf("the server sent on a stream to a peer without streams: %v", st)
	}
	old.kill()

	back := handler("handler with streams", true)
	sentBefore, _ := srv.status()["stream_sent"].(float64)
	remoteBefore, _ := back.status()["remote_protocol_messages"].(float64)
	for _, c := range echoingClients(t, listen, 3, "on the stream") {
		echoOn(t, c, "again")
	}
	sent, _ := srv.status()["stream_sent"].(float64)
	remoteAfter, _ := back.status()["remote_protocol_messages"].(float64)
	t.Logf("server's streams sent %v → %v; the new owner's remote delivered %v → %v protocol messages", sentBefore, sent, remoteBefore, remoteAfter)
	if sent <= sentBefore {
		t.Fatalf("the server's lane to %s stayed on the remote after its node came back with streams", ownerRemote)
	}
	if remoteAfter != remoteBefore {
		t.Fatalf("the new owner's remote delivered %v messages of tcpactor's protocol: want none, the streams carry them", remoteAfter-remoteBefore)
	}
}
