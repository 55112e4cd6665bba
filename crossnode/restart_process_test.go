package crossnode

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// A member restarted on the same address (kill -9, then up again there, as
// a supervisor restarts a node) is reported lost by the other member after
// it is up: Proto.Actor's endpoint writer that was dialling the killed
// member's address connects to the new one, finds the end of the old
// endpoint queued behind its dial, stops, and its own stream's receive
// goroutine, cut by that stop, publishes the address's endpoint terminated
// again; the endpoint manager removes the live endpoint (by address) and
// every watch of the new member's actors fires (Terminated{
// AddressTerminated}). The first retry after the new member is up does it:
// one every ~2.5 s, so a window of restartWindow after the restart takes
// it in. tcpactor checks each such report with the node at the address
// (GetIncarnation): connections of the start that answers live on.

// restartWindow is how long the tests open clients after a restart.
const restartWindow = 5 * time.Second

// restartDelay is a supervisor's restart delay: the new member comes up
// while the stale endpoint writer still dials (it does for ~12 s).
const restartDelay = 700 * time.Millisecond

// TestAnOwnerRestartedOnTheSameAddressKeepsTheConnectionsItClaims kills the
// member that owns connections and starts it again on the same remote
// address. The connections its new start claims live on through the stale
// report of its loss on the server's host — none is closed by the host —
// and each ends with Disconnected to it once its client leaves.
func TestAnOwnerRestartedOnTheSameAddressKeepsTheConnectionsItClaims(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster: about 15 s")
	}
	c := newTestCluster(t, 2)
	c.start("S", 0, c.serverRole()...)
	owner := c.start("C", 1, "--handler", "echo", "--server", "echo")
	probe, _ := c.echoEventually("first", 30*time.Second)
	probe.Close()

	// Connections of the member about to be killed: the server's host
	// closes them (their owner's node is lost), and sends to the dead
	// address, which starts the endpoint writer that goes stale.
	clients := c.openClients(3, "before")
	owner.kill()
	for _, conn := range clients {
		conn.Close()
	}
	time.Sleep(restartDelay)
	owner = c.restartAt("C2", 1, "--handler", "echo", "--server", "echo")

	open := c.clientsFor(restartWindow, "after")
	closedFirst := closeAll(open)
	t.Logf("%d connections claimed by %s, %d closed by the server's host while open", owner.count("owner: claimed", time.Time{}), owner.name, closedFirst)
	if closedFirst > 0 {
		t.Errorf("%d of %d connections of the restarted owner were closed by the server's host on a stale report of its loss", closedFirst, len(open))
	}
	owner.settled(15 * time.Second)
}

// TestAServerHostRestartedOnTheSameAddressLeavesTheOwnersConnectionsThere
// is the mirror case: the member that hosts the server is killed and
// started again on the same address. The owner (owner.New) hears of the
// old host's connections' end, and the connections it claims from the new
// host are never ended on the stale report of the old host's loss: no
// Disconnected reaches its handler while they are open.
func TestAServerHostRestartedOnTheSameAddressLeavesTheOwnersConnectionsThere(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster: about 15 s")
	}
	c := newTestCluster(t, 2)
	host := c.start("S", 0, c.serverRole()...)
	owner := c.start("C", 1, "--handler", "echo", "--server", "echo")
	probe, _ := c.echoEventually("first", 30*time.Second)
	probe.Close()

	clients := c.openClients(3, "before")
	host.kill()
	for _, conn := range clients {
		conn.Close()
	}
	time.Sleep(restartDelay)
	host = c.restartAt("S2", 0, c.serverRole()...)
	owner.settled(15 * time.Second) // the old host's connections have ended
	since := time.Now()

	open := c.clientsFor(restartWindow, "after")
	// A client that was not echoed in time left, and its connection ended
	// in order; one ended as lost is one ended on the stale report.
	lost := owner.countContaining("owner: ended", "connection lost", since)
	closedFirst := closeAll(open)
	t.Logf("%d connections served by %s, %d ended at the owner as lost while the host was up, %d closed while open; %d stale reports seen through",
		len(open), host.name, lost, closedFirst, owner.count("owner: loss report", since))
	if lost > 0 || closedFirst > 0 {
		t.Errorf("the owner ended %d connections of the restarted host as lost (and %d of the %d served were closed) while they were open:\n%s",
			lost, closedFirst, len(open), owner.output())
	}
	owner.settled(15 * time.Second)
}

// clientsFor opens a client every 150 ms for d, each echoed once, and
// returns those served (closed when the test ends). It fails the test when
// none was.
func (c *testCluster) clientsFor(d time.Duration, tag string) []net.Conn {
	c.t.Helper()
	var open []net.Conn
	until := time.Now().Add(d)
	for i := 0; time.Now().Before(until); i++ {
		conn, err := echoOnce(c.listen, fmt.Sprintf("%s-%d", tag, i))
		if err == nil {
			c.t.Cleanup(func() { conn.Close() })
			open = append(open, conn)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if len(open) == 0 {
		c.t.Fatalf("no client was served within %v", d)
	}
	return open
}

// closeAll checks that each connection still echoes, closes it, and
// returns how many did not echo (closed, or never answered).
func closeAll(conns []net.Conn) (closed int) {
	for _, conn := range conns {
		if _, err := echoAgain(conn, "still"); err != nil {
			closed++
		}
		conn.Close()
	}
	return closed
}

// countContaining is how many lines starting with prefix and containing
// part were printed at or after since.
func (p *nodeProc) countContaining(prefix, part string, since time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if !l.at.Before(since) && strings.HasPrefix(l.text, prefix) && strings.Contains(l.text, part) {
			n++
		}
	}
	return n
}

// echoAgain sends msg on conn and reads its echo back.
func echoAgain(conn net.Conn, msg string) (string, error) {
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write([]byte(msg)); err != nil {
		return "", err
	}
	got := make([]byte, len(msg))
	_, err := io.ReadFull(conn, got)
	return string(got), err
}
