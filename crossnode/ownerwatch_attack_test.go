package crossnode

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/owner"
	"github.com/tcpactor/tcpactor/remotenode"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// The owner watcher (actors.OwnerWatcherName, "tcpactor-owner-watch") is a
// named actor every peer can address: it holds the one watch of a node's
// connections on each remote owner and hands each connection the owner's
// Terminated. So a Terminated it takes ends every connection of that owner
// on the node. The guard lets a peer report the end only of actors of its
// own node (remotenode.peerMayNotSend, on the remote's lane and on the
// streams'): an attacker ends its own connections there, and nobody else's.

// ownerWatchVictims is the scene of the attack: a `tcpactor node` process
// whose server's connections are owned by a local owner (its --handler),
// by an owner on a third node (node 1 of this process) and by the
// attacker's own owner (node 0 of this process), one client each.
type ownerWatchVictims struct {
	srv                     *nodeProc
	remote                  string     // the server node's remote address
	watcher                 *actor.PID // its owner watcher
	local, third, attackers *actor.PID // the three owners
	connL, connR, connA     *actor.PID // their connections
	clientL, clientR        net.Conn   // the clients of the victims' connections
	clientA                 net.Conn   // the client of the attacker's own
	addr                    string     // the server's TCP listener
}

func ownerWatchScene(t *testing.T) *ownerWatchVictims {
	t.Helper()
	bin := buildTCPActor(t)
	v := &ownerWatchVictims{}
	v.srv = startNode(t, bin, "server", "--remote", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--name", "echo",
		"--handler", "echo", "--debug-addr", "127.0.0.1:0", "--log-level", logLevel())
	line, _ := v.srv.waitLine("listening on ", time.Time{}, 10*time.Second)
	v.addr = addrAfter(line, "listening on ")
	line, _ = v.srv.waitLine("remote on ", time.Time{}, 10*time.Second)
	v.remote = addrAfter(line, "remote on ")
	line, _ = v.srv.waitLine("debug on ", time.Time{}, 10*time.Second)
	v.srv.debug = addrAfter(line, "debug on ")
	v.srv.waitLine("owner: subscribed to ", time.Time{}, 10*time.Second)
	v.watcher = actors.OwnerWatcher(v.remote)
	v.local = actor.NewPID(v.remote, "owner") // `node --handler` names it so
	server := actor.NewPID(v.remote, "echo")

	// The attacker hears of every connection: any peer may subscribe.
	sys := attacker(t)
	spy := testkit.NewProbe(t, sys)
	if a := request[*messages.Ack](t, sys, server, &messages.Subscribe{Subscriber: spy.PID}); a.Error.Failed() {
		t.Fatalf("the spy's Subscribe: %v", a.Error)
	}
	dial := func(tag string) net.Conn {
		c, err := net.DialTimeout("tcp", v.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		echoOn(t, c, tag)
		return c
	}

	// The local owner is the only one: it claims the first client.
	since := time.Now()
	v.clientL = dial("local")
	v.srv.waitLine("owner: claimed ", since, 10*time.Second)
	v.connL = testkit.Next[*messages.NewConnection](t, spy).Connection

	// The owners of other nodes subscribe to take connections (assign): the
	// server assigns each new one to them in turn, in the order they
	// subscribed, before the local owner could claim it.
	assigned := func(node int, tag string) (ownerPID, conn *actor.PID, client net.Conn) {
		claims := make(chan string, 16)
		var once sync.Once
		subscribed := make(chan error, 1)
		ownerPID = spawnOwner(t, node, owner.Config{
			Server:  actor.NewPID(server.Address, server.Id), // a PID caches the node it was first sent from
			Handler: owner.Echo(), Assign: true,
			Notify: func(line string) {
				if strings.HasPrefix(line, "claimed ") {
					select {
					case claims <- line:
					default:
					}
				}
			},
			OnServer: func(_ *actor.PID, err error) { once.Do(func() { subscribed <- err }) },
		})
		select {
		case err := <-subscribed:
			if err != nil {
				t.Fatalf("node %d's owner's Subscribe: %v", node, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("node %d's owner did not subscribe", node)
		}
		client = dial(tag)
		select {
		case <-claims:
		case <-time.After(10 * time.Second):
			t.Fatalf("node %d's owner was not assigned the client %q", node, tag)
		}
		return ownerPID, testkit.Next[*messages.NewConnection](t, spy).Connection, client
	}
	v.third, v.connR, v.clientR = assigned(1, "third node")
	v.attackers, v.connA, v.clientA = assigned(0, "attacker's own")
	return v
}

// refused is how many messages from remote peers the node has refused for
// reason (its /status).
func (p *nodeProc) refused(reason string) int {
	p.t.Helper()
	m, _ := p.status()["remote_refused"].(map[string]any)
	n, _ := m[reason].(float64)
	return int(n)
}

// awaitRefused waits until the node has refused at least n messages for
// reason: the proof that they reached it and were dropped there.
func (p *nodeProc) awaitRefused(reason string, n int) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.refused(reason) < n {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not refuse %d %q messages within 10 s (it has refused %d)", p.name, n, reason, p.refused(reason))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sendEncoded delivers data, as the remote's serializer (0 protobuf, 1
// JSON) of type typeName, to target in a batch of its own.
func (r *rawPeer) sendEncoded(target *actor.PID, typeName string, serializer int32, data []byte) {
	r.t.Helper()
	err := r.stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: &remote.MessageBatch{
		TypeNames: []string{typeName},
		Targets:   []*actor.PID{target},
		Envelopes: []*remote.MessageEnvelope{{MessageData: data, SerializerId: serializer}},
	}}})
	if err != nil && !errors.Is(err, io.EOF) {
		r.t.Fatal(err)
	}
}

// TestForgedMessagesToTheOwnerWatcherEndOnlyTheAttackersOwnConnections:
// from its own node, from a raw gRPC stream and (with
// TCPACTOR_REMOTE=stream) from a raw node stream, the attacker sends the
// server node's owner watcher (and the victims' connections) Terminated,
// Watch and Unwatch naming the third node's owner, the local owner, actors
// of the server's node (among them the Watch the owner watcher itself sent
// the attacker's owner, replayed) and nobody, Stop and PoisonPill, user
// messages, and messages that do not decode. Every system message is
// refused; the connections of the local owner and of the third node's
// owner go on echoing; a Terminated for the attacker's own owner, sent
// last (and replayed), ends the attacker's own connection — the owner
// watcher was reached and still works.
func TestForgedMessagesToTheOwnerWatcherEndOnlyTheAttackersOwnConnections(t *testing.T) {
	v := ownerWatchScene(t)
	sys := attacker(t)
	system, unreadable := v.srv.refused("system"), v.srv.refused("unreadable")
	nobody := actor.NewPID(sys.Address(), "")
	wantSystem, wantUnreadable := 0, 0

	// From the attacker's node, through its remote (or its stream).
	for _, f := range []struct {
		to  *actor.PID
		msg proto.Message
	}{
		{v.watcher, &actor.Terminated{Who: v.third, Why: actor.TerminatedReason_Stopped}},
		{v.watcher, &actor.Terminated{Who: v.third, Why: actor.TerminatedReason_AddressTerminated}},
		{v.watcher, &actor.Terminated{Who: v.local}},
		{v.watcher, &actor.Terminated{Who: v.watcher}},
		{v.watcher, &actor.Terminated{Who: v.connR}},
		{v.watcher, &actor.Terminated{}},
		{v.watcher, &actor.Terminated{Who: nobody}},
		{v.connR, &actor.Terminated{Who: v.third}},
		{v.connL, &actor.Terminated{Who: v.local}},
		{v.watcher, &actor.Watch{Watcher: v.third}},
		{v.watcher, &actor.Watch{Watcher: v.watcher}}, // what the watcher sent the attacker's owner
		{v.watcher, &actor.Watch{}},
		{v.watcher, &actor.Unwatch{Watcher: v.third}},
		{v.watcher, &actor.Unwatch{Watcher: v.watcher}},
		{v.watcher, &actor.Stop{}},
		{v.watcher, &actor.PoisonPill{}},
	} {
		sys.Root.Send(f.to, f.msg)
		wantSystem++
	}
	for _, m := range []proto.Message{ // delivered, and nothing to the owner watcher
		&messages.GetStatus{},
		&messages.Close{},
		&messages.SetOwner{Owner: v.attackers},
		&messages.Write{Data: []byte("forged"), AckId: 1},
		&messages.Disconnected{Connection: v.connR},
		&messages.NewConnection{Connection: v.connR, Assigned: true},
		&actor.Touch{},
	} {
		sys.Root.Send(v.watcher, m)
	}

	// From a raw gRPC stream that announces a node nobody runs.
	r := dialRaw(t, v.remote)
	r.announce("127.0.0.1:1")
	r.send(v.watcher, &actor.Terminated{Who: v.third}, nil)
	r.send(v.watcher, &actor.Watch{Watcher: v.third}, nil)
	r.send(v.connL, &actor.Terminated{Who: v.local}, nil)
	js, err := protojson.Marshal(&actor.Terminated{Who: v.third})
	if err != nil {
		t.Fatal(err)
	}
	r.sendEncoded(v.watcher, "actor.Terminated", 1, js)                 // the same forgery in JSON
	r.sendEncoded(v.watcher, "actor.Terminated", 0, []byte{0xff, 0xff}) // does not decode
	wantSystem += 5
	r.sendEncoded(v.watcher, "tcpactor.v1.NoSuchMessage", 0, []byte{1}) // a type nobody links
	r.sendEncoded(v.watcher, "actor.Terminated", 7, []byte{1})          // a serializer nobody has
	wantUnreadable += 2

	// From a raw node stream with a ticket for the attacker's node.
	if os.Getenv(testkit.RemoteEnv) == "stream" {
		w := request[*messages.StreamWelcome](t, sys, actor.NewPID(v.remote, remotenode.StreamActorName), &messages.StreamHello{})
		if w.Error.Failed() {
			t.Fatalf("StreamHello: %v", w.Error)
		}
		s, ok := openStream(t, w.Address, append([]byte(streamMagic), w.Token...))
		if !ok {
			t.Fatal("the stream with the node's ticket was refused")
		}
		// A type nobody links (a name of the same length, so the lengths hold).
		unlinked := bytes.Replace(rawFrame(t, v.watcher.Id, nil, &messages.GetStatus{}),
			[]byte("tcpactor.v1.GetStatus"), []byte("tcpactor.v1.NotLinked"), 1)
		for _, f := range [][]byte{
			rawFrame(t, v.watcher.Id, nil, &actor.Terminated{Who: v.third}),
			rawFrame(t, v.watcher.Id, nil, &actor.Terminated{Who: v.third, Why: actor.TerminatedReason_AddressTerminated}),
			rawFrame(t, v.watcher.Id, nil, &actor.Watch{Watcher: v.third}),
			rawFrame(t, v.watcher.Id, nil, &actor.Unwatch{Watcher: v.watcher}),
			rawFrame(t, v.connL.Id, nil, &actor.Terminated{Who: v.local}),
			unlinked,
			{0, 0, 0, 12, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // not a frame: ends the stream
		} {
			if _, err := s.Write(f); err != nil {
				t.Fatal(err)
			}
		}
		wantSystem += 5
		wantUnreadable += 2
	}
	v.srv.awaitRefused("system", system+wantSystem)
	v.srv.awaitRefused("unreadable", unreadable+wantUnreadable)

	// The attacker may end its own connection: the owner watcher takes
	// that Terminated (after the forged ones: a lane keeps its order), and
	// a replay of it changes nothing.
	for range 2 {
		sys.Root.Send(v.watcher, &actor.Terminated{Who: v.attackers, Why: actor.TerminatedReason_Stopped})
	}
	_ = v.clientA.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := v.clientA.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("the attacker's own connection: read %d bytes, %v; want it ended (EOF) by its owner's Terminated", n, err)
	}

	echoOn(t, v.clientL, "the local owner's connection lives")
	echoOn(t, v.clientR, "the third node's owner's connection lives")
	echoes(t, v.addr)
}
