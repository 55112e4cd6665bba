package crossnode

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/tcpactor/tcpactor/clusterkind"
)

// healthGate is a real TCP forwarder in front of a member's automanaged
// health endpoint: shut, it closes each connection at once (the member
// polling through it sees a failed check, as a check that times out under
// load); open, it forwards to the endpoint. It makes one member see another
// later than the rest do, which is what a loaded machine does by chance.
type healthGate struct {
	ln        net.Listener
	target    string
	open      atomic.Bool
	refused   atomic.Int64 // connections closed at once, shut
	forwarded atomic.Int64 // connections forwarded, open
	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

func newHealthGate(t *testing.T, target string) *healthGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &healthGate{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	g.wg.Add(1)
	go g.accept()
	t.Cleanup(g.close)
	return g
}

func (g *healthGate) addr() string { return g.ln.Addr().String() }

// shut shuts the gate, and ends the connections it forwards (the poller
// keeps its connection alive between polls).
func (g *healthGate) shut() {
	g.open.Store(false)
	g.mu.Lock()
	defer g.mu.Unlock()
	for c := range g.conns {
		c.Close()
		delete(g.conns, c)
	}
}

func (g *healthGate) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return // closed
		}
		if !g.open.Load() {
			c.Close()
			g.refused.Add(1)
			continue
		}
		up, err := net.DialTimeout("tcp", g.target, time.Second)
		if err != nil {
			c.Close()
			continue
		}
		if !g.track(c, up) {
			return
		}
		g.forwarded.Add(1)
		g.wg.Add(2)
		go g.pipe(c, up)
		go g.pipe(up, c)
	}
}

// track registers a forwarded pair, unless the gate is closing.
func (g *healthGate) track(cs ...net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		g.conns[c] = struct{}{}
	}
	return true
}

func (g *healthGate) pipe(dst, src net.Conn) {
	defer g.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func (g *healthGate) close() {
	g.ln.Close()
	g.mu.Lock()
	for c := range g.conns {
		c.Close()
	}
	g.conns = nil
	g.mu.Unlock()
	g.wg.Wait()
}

// placedOn is the member a disthash lookup from a member that sees members
// sends identity (of kind) to: the rendezvous hash of Proto.Actor's disthash.
func placedOn(identity, kind string, members ...*cluster.Member) string {
	r := cluster.NewRendezvous()
	r.UpdateMembers(members)
	return r.GetByClusterIdentity(cluster.NewClusterIdentity(identity, kind))
}

// clusterView is what a member's /status says of its cluster.
func (p *nodeProc) clusterView() (members []string, cached map[string]string) {
	p.t.Helper()
	cl, _ := p.status()["cluster"].(map[string]any)
	for _, m := range asSlice(cl["members"]) {
		members = append(members, fmt.Sprint(m))
	}
	cached = map[string]string{}
	if c, ok := cl["cached"].(map[string]any); ok {
		for k, v := range c {
			cached[k] = fmt.Sprint(v)
		}
	}
	return members, cached
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// waitView polls the member's /status until ok holds of its view of the
// cluster, and fails the test after within (the view changes with the
// provider's polls, every --refresh).
func (p *nodeProc) waitView(what string, within time.Duration, ok func(members []string, cached map[string]string) bool) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		m, c := p.clusterView()
		if ok(m, c) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s not within %v; members %q, cached %q", p.name, what, within, m, c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestATopicActivatedForAMemberThatSawTheClusterLateStillReachesTheSubscribers:
// a member that sees a new member later than the others (a health check that
// failed under load) sends the server's events to the topic's owner by its
// own, older view; that member activates the topic although, by its newer
// view, the topic is not its own, and nothing ever stops that activation.
// Once the late member sees the whole cluster too, its events must go to the
// topic where the subscriber is, and the connection that arrived in between
// must be served, not left waiting for an owner.
//
// Three `tcpactor node` members: A and B may host the server identity
// "echo", C serves its connections (owner actors on its topic). The remote
// ports are picked so that the server lives on A, the topic's owner is B
// while C is unseen and C once it is seen; A polls C's health endpoint
// through a gate that stays shut until A has published an event.
func TestATopicActivatedForAMemberThatSawTheClusterLateStillReachesTheSubscribers(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	c := newTestCluster(t, 3)
	topic := clusterkind.TopicOf("echo")
	member := func(i int, kinds ...string) *cluster.Member {
		return &cluster.Member{Host: "127.0.0.1", Port: int32(c.slots[i].remote), Id: fmt.Sprint(i), Kinds: kinds}
	}
	// Candidates are only hashed; the ports are bound to check them only
	// once they place the identities right, not to hold ports other test
	// processes may be choosing from too.
	placed := false
	for try := 0; try < 1000 && !placed; try++ {
		for i := range c.slots {
			c.slots[i].remote = candidatePort()
		}
		a := member(0, clusterkind.Name, cluster.TopicActorKind)
		b := member(1, clusterkind.Name, cluster.TopicActorKind)
		cc := member(2, cluster.TopicActorKind)
		placed = placedOn("echo", clusterkind.Name, a, b) == a.Address() &&
			placedOn(topic, cluster.TopicActorKind, a, b) == b.Address() &&
			placedOn(topic, cluster.TopicActorKind, a, b, cc) == cc.Address() &&
			isFree(c.slots[0].remote) && isFree(c.slots[1].remote) && isFree(c.slots[2].remote)
	}
	if !placed {
		t.Fatal("no ports found that place the server on A and the topic on B, then on C")
	}
	aAddr, bAddr, cAddr := hostport(c.slots[0].remote), hostport(c.slots[1].remote), hostport(c.slots[2].remote)

	gate := newHealthGate(t, hostport(c.slots[2].health))
	aSees := strings.Join([]string{hostport(c.slots[0].health), hostport(c.slots[1].health), gate.addr()}, ",")
	a := c.startSeeing("A", 0, aSees, c.serverRole()...)
	b := c.start("B", 1, c.serverRole()...)
	a.waitLine("listening on "+c.listen, time.Time{}, 20*time.Second)
	cm := c.start("C", 2, "--handler", "echo", "--server", "echo")

	// C subscribes where its view says the topic lives (itself); B sees C;
	// A does not.
	has := func(addr string) func([]string, map[string]string) bool {
		return func(ms []string, _ map[string]string) bool {
			for _, m := range ms {
				if strings.HasPrefix(m, addr+" ") {
					return true
				}
			}
			return false
		}
	}
	cm.waitView("the topic's PID cached", 20*time.Second, func(_ []string, cached map[string]string) bool {
		return strings.HasPrefix(cached[cluster.TopicActorKind+"/"+topic], cAddr+"/")
	})
	b.waitView("C seen", 20*time.Second, has(cAddr))
	if ms, _ := a.clusterView(); has(cAddr)(ms, nil) {
		t.Fatalf("A sees C through a shut gate: %q", ms)
	}

	// A client while A's view is behind: A publishes its NewConnection to
	// the topic on B, which has no subscriber.
	early, err := net.DialTimeout("tcp", c.listen, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	if _, err := early.Write([]byte("early")); err != nil {
		t.Fatal(err)
	}
	a.waitView("the topic activated on B", 20*time.Second, func(_ []string, cached map[string]string) bool {
		return strings.HasPrefix(cached[cluster.TopicActorKind+"/"+topic], bAddr+"/")
	})

	// A sees C: every member now places the topic on C.
	gate.open.Store(true)
	a.waitView("C seen", 20*time.Second, has(cAddr))
	t.Logf("A (%s) sees C (%s); the topic was activated on B (%s) for A's older view", aAddr, cAddr, bAddr)

	probe, took := c.echoEventually("after", 15*time.Second)
	probe.Close()
	t.Logf("a client is served %v after A saw C", took)
	_ = early.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len("early"))
	if _, err := io.ReadFull(early, got); err != nil || string(got) != "early" {
		t.Fatalf("the client that came while A's view was behind: read %q, %v; want its echo", got, err)
	}
}

// TestAConnectionThatCameBeforeAnyHandlerSubscribedIsServedOnceOneDoes: a
// client connects to a cluster's server while no member serves its topic
// yet (the handler member is still starting), so its NewConnection reaches
// no one. When the handler member has subscribed, that client must be
// served without waiting for another client's connection to announce the
// queue.
func TestAConnectionThatCameBeforeAnyHandlerSubscribedIsServedOnceOneDoes(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	c := newTestCluster(t, 2)
	a := c.start("A", 0, c.serverRole()...)
	a.waitLine("listening on "+c.listen, time.Time{}, 20*time.Second)

	early, err := net.DialTimeout("tcp", c.listen, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	if _, err := early.Write([]byte("early")); err != nil {
		t.Fatal(err)
	}
	// The server has accepted it and published its NewConnection, to
	// nobody: the topic's PID is in A's cache once A has looked it up.
	a.waitView("the topic looked up", 20*time.Second, func(_ []string, cached map[string]string) bool {
		return cached[cluster.TopicActorKind+"/"+clusterkind.TopicOf("echo")] != ""
	})

	h := c.start("C", 1, "--handler", "echo", "--server", "echo")
	started := time.Now()
	_ = early.SetReadDeadline(time.Now().Add(15 * time.Second))
	got := make([]byte, len("early"))
	if _, err := io.ReadFull(early, got); err != nil || string(got) != "early" {
		t.Fatalf("the client that came before the handler: read %q, %v; want its echo; handler:\n%s", got, err, h.output())
	}
	t.Logf("the early client was served %v after the handler member started", time.Since(started))
}

// TestAMemberThatMissesAHealthCheckStaysInTheCluster: a member whose health
// check fails once (an answer later than the check's time-out, on a loaded
// machine) but whose endpoint still accepts connections stays in the
// pollers' view: Proto.Actor blocks for good a member that once leaves the
// topology, so taking it out at one failed check would put a live member out
// of one member's view for good while the others keep it.
func TestAMemberThatMissesAHealthCheckStaysInTheCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	c := newTestCluster(t, 3)
	gate := newHealthGate(t, hostport(c.slots[2].health))
	gate.open.Store(true)
	aSees := strings.Join([]string{hostport(c.slots[0].health), hostport(c.slots[1].health), gate.addr()}, ",")
	a := c.startSeeing("A", 0, aSees, c.serverRole()...)
	c.start("B", 1, c.serverRole()...)
	cm := c.start("C", 2, "--handler", "echo", "--server", "echo")
	cAddr := hostport(c.slots[2].remote)
	seesC := func(ms []string, _ map[string]string) bool {
		for _, m := range ms {
			if strings.HasPrefix(m, cAddr+" ") {
				return true
			}
		}
		return false
	}
	a.waitView("C seen", 20*time.Second, seesC)

	// One failed check of C: A's next poll finds the gate shut.
	gate.shut()
	deadline := time.Now().Add(20 * time.Second)
	for gate.refused.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("A did not poll C's health endpoint within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	forwarded := gate.forwarded.Load()
	gate.open.Store(true)
	// A poll after the failed one has begun: the failed one is over and
	// A's view has taken its outcome in.
	for gate.forwarded.Load() == forwarded {
		if time.Now().After(deadline) {
			t.Fatal("A did not poll C's health endpoint again within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	members, _ := a.clusterView()
	cl, _ := a.status()["cluster"].(map[string]any)
	id, _ := cm.status()["cluster"].(map[string]any)["id"].(string)
	for _, b := range asSlice(cl["blocked"]) {
		if b == id {
			t.Fatalf("A blocked C (%s) after one failed health check; A sees %q", id, members)
		}
	}
	if !seesC(members, nil) {
		t.Fatalf("A took C out after one failed health check: it sees %q", members)
	}
}
