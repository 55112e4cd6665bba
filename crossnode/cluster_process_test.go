package crossnode

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// member is one slot of the test cluster: fixed ports, so that a member
// started again in a slot takes the place of the one killed there (see
// restart).
type member struct {
	remote, health, debug int
}

type testCluster struct {
	t       *testing.T
	bin     string
	listen  string
	slots   []member
	members string
}

func newTestCluster(t *testing.T, n int) *testCluster {
	c := &testCluster{t: t, bin: buildTCPActor(t), listen: hostport(freePort(t))}
	var hs []string
	for range n {
		m := member{remote: freePort(t), health: freePort(t), debug: freePort(t)}
		c.slots = append(c.slots, m)
		hs = append(hs, hostport(m.health))
	}
	c.members = strings.Join(hs, ",")
	return c
}

// start runs a member in slot i with the role flags given.
func (c *testCluster) start(name string, i int, role ...string) *nodeProc {
	return c.startSeeing(name, i, c.members, role...)
}

// restart runs a member in slot i, where one was killed, on the slot's
// health endpoint (the one the other members poll) but new remote and debug
// ports (a port released by the killed member is one another test process
// may have picked meanwhile).
// Proto.Actor's endpoint writer to the killed member's address may still be
// retrying its dial (it does so for ~10 s inside Started, after its endpoint
// was already replaced): once the address answers again it connects, is
// stopped at last, and reports that address's endpoint terminated, which
// ends the live endpoint to the new member there and fires every watch of
// its actors. That is a hazard of a member restarted on the same address,
// not of the losses this test is about: the tests of restart_process_test.go
// restart on the same address (restartAt).
func (c *testCluster) restart(name string, i int, role ...string) *nodeProc {
	c.slots[i].remote, c.slots[i].debug = freePort(c.t), freePort(c.t)
	return c.start(name, i, role...)
}

// restartAt runs a member in slot i, where one was killed, on the slot's
// remote address and health endpoint, as a supervisor restarts a node:
// the other members see the same address come back. Only the debug port
// is new.
func (c *testCluster) restartAt(name string, i int, role ...string) *nodeProc {
	c.slots[i].debug = freePort(c.t)
	return c.start(name, i, role...)
}

// startSeeing is start with the member's own --members list (the health
// endpoints it polls).
func (c *testCluster) startSeeing(name string, i int, members string, role ...string) *nodeProc {
	m := c.slots[i]
	args := append([]string{
		"--remote", hostport(m.remote), "--cluster", "crossnode", "--members", members,
		"--health-port", fmt.Sprint(m.health), "--refresh", "300ms",
		"--debug-addr", hostport(m.debug), "--log-level", "error",
	}, role...)
	p := startNode(c.t, c.bin, name, args...)
	p.waitLine("member of crossnode", time.Time{}, 20*time.Second)
	p.waitLine("debug on", time.Time{}, 5*time.Second) // its /status answers
	return p
}

// serverRole makes a member able to host the server identity "echo".
func (c *testCluster) serverRole() []string { return []string{"--listen", c.listen, "--name", "echo"} }

// echoOnce connects, sends msg and reads its echo back.
func echoOnce(addr, msg string) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte(msg)); err != nil {
		conn.Close()
		return nil, err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
		conn.Close()
		return nil, fmt.Errorf("echo %q: got %q, %v", msg, got, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// echoEventually retries echoOnce until it works, and returns the
// connection and how long it took.
func (c *testCluster) echoEventually(msg string, within time.Duration) (net.Conn, time.Duration) {
	c.t.Helper()
	start := time.Now()
	for {
		conn, err := echoOnce(c.listen, msg)
		if err == nil {
			return conn, time.Since(start)
		}
		if time.Since(start) > within {
			c.t.Fatalf("no echo on %s within %v: %v", c.listen, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// openClients opens n echoing clients, closed when the test ends.
func (c *testCluster) openClients(n int, tag string) []net.Conn {
	c.t.Helper()
	var conns []net.Conn
	for i := range n {
		conn, _ := c.echoEventually(fmt.Sprintf("%s-%d", tag, i), 20*time.Second)
		c.t.Cleanup(func() { conn.Close() })
		conns = append(conns, conn)
	}
	return conns
}

// clientsSeeTheEnd checks that every client sees its connection end (EOF or
// reset) and returns the longest wait.
func clientsSeeTheEnd(t *testing.T, conns []net.Conn, since time.Time) time.Duration {
	t.Helper()
	var worst time.Duration
	for i, conn := range conns {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(make([]byte, 64))
		if n != 0 || err == nil || isTimeout(err) {
			t.Fatalf("client %d: read %d bytes, %v: want its connection ended", i, n, err)
		}
		worst = max(worst, time.Since(since))
		conn.Close()
	}
	return worst
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

var claimedAt = regexp.MustCompile(`owner: claimed Address:"([^"]+)"`)

// settled waits until the owner member p has heard the end of every
// connection it claimed (an "owner: ended" line for each "owner: claimed"),
// so that a baseline taken next has none of the probe connections the test
// closed: a connection closes its socket before it sends Disconnected, so
// they are gone from the server's host too.
func (p *nodeProc) settled(within time.Duration) {
	p.t.Helper()
	deadline := time.After(within)
	for {
		claimed, ended := p.count("owner: claimed", time.Time{}), p.count("owner: ended", time.Time{})
		if ended >= claimed {
			return
		}
		select {
		case <-p.wake:
		case <-p.exit:
			p.t.Fatalf("%s exited while %d of its %d connections were open; output:\n%s", p.name, claimed-ended, claimed, p.output())
		case <-deadline:
			p.t.Fatalf("%s: %d of its %d connections still open after %v; output:\n%s", p.name, claimed-ended, claimed, within, p.output())
		}
	}
}

// TestClusterSurvivesLosingTheOwnerTheServerHostAndASubscriber runs a
// three-member cluster of `tcpactor node` processes on loopback (automanaged
// provider): two members may host the server identity "echo", the third
// serves its connections with an owner-actor echo handler subscribed to the
// identity's topic. Then, in turn, it kills (SIGKILL) the member that owns
// the connections, the member that hosts the server, and a member with a
// plain subscriber, and checks what the clients and the survivors see, and
// that the survivors' descriptors and goroutines return to their baseline.
func TestClusterSurvivesLosingTheOwnerTheServerHostAndASubscriber(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster: about a minute")
	}
	c := newTestCluster(t, 3)
	nodes := []*nodeProc{
		c.start("A", 0, c.serverRole()...),
		c.start("B", 1, c.serverRole()...),
		c.start("C", 2, "--handler", "echo", "--server", "echo"),
	}
	owner := nodes[2]
	probe, took := c.echoEventually("first", 30*time.Second)
	probe.Close()
	t.Logf("cluster up: first echo after %v more", took)

	// Which member hosts the server: the one whose remote address the
	// claimed connection has.
	line, _ := owner.waitLine("owner: claimed", time.Time{}, 5*time.Second)
	m := claimedAt.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("the owner claimed nothing:\n%s", owner.output())
	}
	hostIdx := -1
	for i := range 2 {
		if m[1] == hostport(c.slots[i].remote) {
			hostIdx = i
		}
	}
	if hostIdx < 0 {
		t.Fatalf("connection accepted on %s, which is neither server member", m[1])
	}
	host, other := nodes[hostIdx], nodes[1-hostIdx]
	t.Logf("server identity echo is hosted by %s", host.name)

	// 1. The owner's member is lost: its connections close on the host,
	// the clients see it, the host frees their descriptors.
	owner.settled(10 * time.Second)
	base := host.baseline()
	clients := c.openClients(4, "owned")
	killed := time.Now()
	owner.kill()
	t.Logf("DETECTION owner lost: clients saw their connections end within %v", clientsSeeTheEnd(t, clients, killed))
	t.Logf("DETECTION owner lost: host back to baseline (descriptors, goroutines) after %v", host.backToBaseline(base, 3, 30*time.Second))

	owner = c.restart("C2", 2, "--handler", "echo", "--server", "echo")
	probe, took = c.echoEventually("new owner", 20*time.Second)
	probe.Close()
	t.Logf("a new handler member serves after %v", took)

	// 2. The server's member is lost: the owner hears of the server and of
	// each connection (Terminated: AddressTerminated), the identity is
	// activated on the other member, which listens again, and a client that
	// reconnects is served.
	owner.settled(10 * time.Second)
	obase := owner.baseline()
	clients = c.openClients(4, "hosted")
	killed = time.Now()
	host.kill()
	t.Logf("DETECTION server host lost: clients saw their connections end within %v", clientsSeeTheEnd(t, clients, killed))
	_, at := owner.waitLine("owner: lost server", killed, 10*time.Second)
	t.Logf("DETECTION server host lost: owner got Terminated for the server after %v", at.Sub(killed))
	deadline := time.Now().Add(10 * time.Second)
	for owner.count("owner: ended", killed) < len(clients) {
		if time.Now().After(deadline) {
			t.Fatalf("owner heard of %d of %d lost connections:\n%s", owner.count("owner: ended", killed), len(clients), owner.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("DETECTION server host lost: owner got Terminated for all %d connections after %v", len(clients), time.Since(killed))
	if line := owner.last("owner: ended"); !strings.Contains(line, "AddressTerminated") {
		t.Fatalf("connection end reported as %q, want AddressTerminated", line)
	}
	probe, took = c.echoEventually("reactivated", 30*time.Second)
	probe.Close()
	t.Logf("DETECTION server host lost: a reconnecting client was served %v after the kill", time.Since(killed))
	other.waitLine("listening on "+c.listen, killed, time.Second)
	_ = took
	t.Logf("DETECTION server host lost: owner back to baseline after %v", owner.backToBaseline(obase, 3, 30*time.Second))

	// 3. A subscriber's member is lost: the server drops the subscriber and
	// goes on serving; the survivors return to their baseline.
	watcher := c.restart("D", hostIdx, "--watch", "echo")
	watcher.waitLine("watching echo", time.Time{}, 10*time.Second)
	since := time.Now()
	for watcher.count("watch: new connection", since) == 0 {
		probe, _ = c.echoEventually("watched", 10*time.Second)
		probe.Close()
		if time.Since(since) > 20*time.Second {
			t.Fatalf("the watcher never heard of a connection:\n%s", watcher.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	owner.settled(10 * time.Second)
	sbase, obase := other.baseline(), owner.baseline()
	killed = time.Now()
	watcher.kill()
	probe, took = c.echoEventually("after the watcher", 10*time.Second)
	probe.Close()
	t.Logf("subscriber lost: the next client was served after %v", took)
	owner.settled(10 * time.Second)
	t.Logf("DETECTION subscriber lost: server host back to baseline after %v", other.backToBaseline(sbase, 3, 30*time.Second))
	t.Logf("DETECTION subscriber lost: owner back to baseline after %v", owner.backToBaseline(obase, 3, 30*time.Second))
	for _, p := range []*nodeProc{other, owner} {
		if !p.alive() {
			t.Fatalf("%s died", p.name)
		}
	}
}

// TestAutomanagedHealthEndpointBindsWhereTheMemberIsTold: the automanaged
// provider's health endpoint (plain HTTP, which tells anyone the member's
// id, address and kinds) binds to the remote's host unless --health-host
// says otherwise, never to every interface. Other loopback addresses
// (127.0.0.2, 127.0.0.3) stand for the other interfaces.
func TestAutomanagedHealthEndpointBindsWhereTheMemberIsTold(t *testing.T) {
	bin := buildTCPActor(t)
	for _, tc := range []struct {
		name, healthHost, served, refused string
	}{
		{"the remote's host by default", "", "127.0.0.1", "127.0.0.2"},
		{"--health-host", "127.0.0.3", "127.0.0.3", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			health := freePort(t)
			served := net.JoinHostPort(tc.served, fmt.Sprint(health))
			args := []string{"--remote", "127.0.0.1:0", "--cluster", "health", "--members", served,
				"--health-port", fmt.Sprint(health), "--log-level", "error"}
			if tc.healthHost != "" {
				args = append(args, "--health-host", tc.healthHost)
			}
			p := startNode(t, bin, "member", args...)
			p.waitLine("member of health", time.Time{}, 30*time.Second)
			res, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + served + "/_health")
			if err != nil {
				t.Fatalf("health endpoint on %s: %v", served, err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("health endpoint on %s: %s", served, res.Status)
			}
			refused := net.JoinHostPort(tc.refused, fmt.Sprint(health))
			if c, err := net.DialTimeout("tcp", refused, time.Second); err == nil {
				c.Close()
				t.Fatalf("the health endpoint answers on %s too: it is bound to more than %s", refused, tc.served)
			}
		})
	}
}
