// Package clusterkind is the Proto.Actor cluster kind of tcpactor servers:
// a ServerActor reachable by identity, listening on activation and
// publishing its events on the identity's topic.
package clusterkind

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
	"google.golang.org/protobuf/proto"
)

// Name is the cluster kind of a tcpactor server: a server is
// reached from any member by its identity, e.g. identity "echo" of kind
// "tcpserver".
const Name = "tcpserver"

// Config configures the activations of Kind. Each
// activation is one ServerActor that listens as soon as it is activated.
type Config struct {
	// Options are the Go options of each activation's ServerActor.
	Options server.Options
	// Listen gives the Listen request of an identity. nil: ListenFromIdentity.
	Listen func(identity string) (*messages.Listen, error)
	// Topic names the cluster PubSub topic on which an identity's
	// NewConnection and AcceptError events go out, besides the server's
	// direct subscribers. nil: TopicOf. An empty name publishes nothing.
	Topic func(identity string) string
	// OnListen, when set, hears the outcome of each activation's listen. It
	// runs in the actor: it must not block.
	OnListen func(identity string, r *messages.ListenResult)
	// ListenRetry is how long a listen that fails with AddressInUse is
	// retried: when an identity moves between members, the new activation may
	// start before the old one has closed its listener. 0 means 10 s.
	ListenRetry time.Duration
	// Reannounce is how long connections may wait unclaimed, with no event
	// published meanwhile, before the last NewConnection is published on the
	// topic again. 0 means 1 s; negative, never. See Kind.
	Reannounce time.Duration
}

// TopicOf is the default topic of a server identity: "tcpserver/IDENTITY".
func TopicOf(identity string) string { return Name + "/" + identity }

// ListenFromIdentity reads the listen address from the identity itself:
// "HOST:PORT" or "NAME@HOST:PORT" (HOST as in Listen: an IP literal, Any,
// LocalHost...).
func ListenFromIdentity(identity string) (*messages.Listen, error) {
	addr := identity
	if i := strings.LastIndexByte(identity, '@'); i >= 0 {
		addr = identity[i+1:]
	}
	return messages.ParseListen(addr)
}

// ListenTable is a kind-level configuration: each identity listens where the
// table says.
func ListenTable(table map[string]string) func(identity string) (*messages.Listen, error) {
	return func(identity string) (*messages.Listen, error) {
		addr, ok := table[identity]
		if !ok {
			return nil, fmt.Errorf("no listen address configured for server identity %q", identity)
		}
		return messages.ParseListen(addr)
	}
}

// Kind is the cluster kind (Name) of tcpactor servers:
// register it on the members that may host servers. An activation listens
// at once, forwards every request of the protocol to its ServerActor (so
// c.Request(identity, Name, &messages.GetStatus{}) works from any
// member), and publishes NewConnection and AcceptError on the identity's
// topic. When the member that hosts an identity is lost, the next request
// for it activates it on another member, which listens again (see
// KeepActivated).
//
// A NewConnection on the topic reaches the subscribers the topic has when it
// is published: none before the first subscribes, none on a topic activated
// anew (its member was lost, or the cluster's topology changed) until they
// subscribe again. A claim drains a server's whole queue, so the event of
// any later connection makes up for a lost one, but a connection that came
// alone would wait for good. So while connections wait unclaimed and no
// event went out for Config.Reannounce, the last NewConnection is published
// again: on the topic, NewConnection is at least once.
func Kind(cfg Config) *cluster.Kind {
	return cluster.NewKind(Name, actor.PropsFromProducer(func() actor.Actor {
		return &clusterServer{cfg: cfg}
	}))
}

// Local messages of the grain.
type (
	retryListen struct{}
	reannounce  struct{} // time to check for connections waiting unclaimed
)

type clusterServer struct {
	cfg      Config
	identity string
	server   *actor.PID
	listen   *messages.Listen
	deadline time.Time
	pub      *topicPublisher

	// The last NewConnection published (nil once none waits), when, and
	// the timer of the next check for connections waiting unclaimed
	// (Config.Reannounce), set while one is due.
	last            *messages.NewConnection
	lastAt          time.Time
	reannounceTimer *time.Timer
}

func (g *clusterServer) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *cluster.ClusterInit:
		g.init(ctx, m)
	case *retryListen:
		ctx.Request(g.server, proto.Clone(g.listen))
	case *messages.ListenResult: // the answer to the grain's own Listen
		g.listened(ctx, m)
	case *messages.NewConnection: // the grain subscribed to its server
		if g.pub != nil {
			g.last, g.lastAt = m, time.Now()
			g.pub.publish(m)
			if every := g.reannounceEvery(); every > 0 && g.reannounceTimer == nil {
				g.armReannounce(ctx, every)
			}
		}
	case *messages.AcceptError, *messages.HandshakeFailed:
		if g.pub != nil {
			g.pub.publish(m.(proto.Message))
		}
	case *reannounce:
		g.checkUnclaimed(ctx)
	case *messages.ServerStatus: // the answer to checkUnclaimed's GetStatus
		g.reannounced(ctx, m)
	case *messages.Ack: // the server's answer to the grain's Subscribe
	case *actor.Terminated:
		if g.server != nil && m.Who.Equal(g.server) {
			ctx.Stop(ctx.Self()) // the next request activates a fresh one
		}
	case *actor.Stopping:
		if g.reannounceTimer != nil {
			g.reannounceTimer.Stop()
		}
		if g.pub != nil {
			g.pub.stop()
		}
	case actor.SystemMessage, actor.AutoReceiveMessage:
	default:
		if g.server != nil {
			ctx.Forward(g.server)
		} else if ctx.Sender() != nil {
			ctx.Respond(&messages.Ack{Error: messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
				"server %q is not initialised", g.identity)})
		}
	}
}

func (g *clusterServer) init(ctx actor.Context, m *cluster.ClusterInit) {
	g.identity = m.Identity.GetIdentity()
	g.server = ctx.Spawn(actors.NewServer(g.cfg.Options))
	ctx.Watch(g.server)
	topic := TopicOf(g.identity)
	if g.cfg.Topic != nil {
		topic = g.cfg.Topic(g.identity)
	}
	if topic != "" && m.Cluster != nil {
		g.pub = newTopicPublisher(m.Cluster, topic)
		// A long-lived subscriber names its node's start id, so that the
		// server checks a report of that node's loss before it drops it
		// (Subscribe.subscriber_start_id).
		ctx.Request(g.server, &messages.Subscribe{Subscriber: ctx.Self(), SubscriberStartId: actors.StartID(ctx.ActorSystem())})
	}
	listen := ListenFromIdentity
	if g.cfg.Listen != nil {
		listen = g.cfg.Listen
	}
	l, err := listen(g.identity)
	if err != nil {
		g.report(&messages.ListenResult{Error: messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION, "%v", err)})
		return
	}
	retry := g.cfg.ListenRetry
	if retry <= 0 {
		retry = 10 * time.Second
	}
	g.listen, g.deadline = l, time.Now().Add(retry)
	ctx.Request(g.server, proto.Clone(l))
}

func (g *clusterServer) listened(ctx actor.Context, r *messages.ListenResult) {
	if r.Error.GetCode() == messages.SocketError_SOCKET_ERROR_ADDRESS_IN_USE && time.Now().Before(g.deadline) {
		self, root := ctx.Self(), ctx.ActorSystem().Root
		time.AfterFunc(100*time.Millisecond, func() { root.Send(self, &retryListen{}) })
		return
	}
	g.report(r)
}

// reannounceEvery is Config.Reannounce with its default; 0: never.
func (g *clusterServer) reannounceEvery() time.Duration {
	switch d := g.cfg.Reannounce; {
	case d < 0:
		return 0
	case d == 0:
		return time.Second
	default:
		return d
	}
}

// armReannounce sets the next check for connections waiting unclaimed,
// after d.
func (g *clusterServer) armReannounce(ctx actor.Context, d time.Duration) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	g.reannounceTimer = time.AfterFunc(d, func() { root.Send(self, &reannounce{}) })
}

// checkUnclaimed asks the server whether connections wait once a whole
// period has passed since the last event went out; the answer comes to
// reannounced.
func (g *clusterServer) checkUnclaimed(ctx actor.Context) {
	g.reannounceTimer = nil
	if g.last == nil {
		return
	}
	if wait := g.reannounceEvery() - time.Since(g.lastAt); wait > 0 {
		g.armReannounce(ctx, wait)
		return
	}
	ctx.Request(g.server, &messages.GetStatus{})
}

// reannounced publishes the last NewConnection again while connections wait
// unclaimed: the owners that hear it claim the whole queue. With none
// waiting, the next NewConnection sets the next check.
func (g *clusterServer) reannounced(ctx actor.Context, st *messages.ServerStatus) {
	if g.last == nil || g.reannounceTimer != nil {
		return // a NewConnection since the request has set the next check
	}
	if st.Pending == 0 {
		g.last = nil
		return
	}
	g.lastAt = time.Now()
	g.pub.publish(g.last)
	g.armReannounce(ctx, g.reannounceEvery())
}

func (g *clusterServer) report(r *messages.ListenResult) {
	if g.cfg.OnListen != nil {
		g.cfg.OnListen(g.identity, r)
	}
}

// topicPublisher publishes a grain's events on its topic, in order, from a
// goroutine of its own (a cluster publish is a blocking grain request, which
// must not run in the actor). A publish that fails is retried; events that
// still cannot be published are counted and logged, never dropped silently.
type topicPublisher struct {
	c       *cluster.Cluster
	topic   string
	ch      chan proto.Message
	done    chan struct{}
	wg      sync.WaitGroup
	dropped atomic.Uint64
}

const (
	publishQueue   = 1024
	publishBatch   = 256
	publishTimeout = 2 * time.Second
	publishTries   = 3
)

func newTopicPublisher(c *cluster.Cluster, topic string) *topicPublisher {
	p := &topicPublisher{c: c, topic: topic, ch: make(chan proto.Message, publishQueue), done: make(chan struct{})}
	p.wg.Add(1)
	go p.run()
	return p
}

func (p *topicPublisher) publish(m proto.Message) {
	select {
	case p.ch <- m:
	default:
		p.drop(1, errors.New("publish queue full"))
	}
}

func (p *topicPublisher) stop() {
	close(p.done)
	p.wg.Wait()
}

func (p *topicPublisher) run() {
	defer p.wg.Done()
	for {
		var first proto.Message
		select {
		case first = <-p.ch:
		case <-p.done:
			return
		}
		batch := &cluster.PubSubBatch{Envelopes: []proto.Message{first}}
	fill:
		for len(batch.Envelopes) < publishBatch {
			select {
			case m := <-p.ch:
				batch.Envelopes = append(batch.Envelopes, m)
			default:
				break fill
			}
		}
		var err error
		for try := 0; try < publishTries; try++ {
			forgetMisplaced(p.c, p.topic, cluster.TopicActorKind)
			ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
			_, err = p.c.Publisher().PublishBatch(ctx, p.topic, batch, cluster.WithTimeout(publishTimeout), cluster.WithRetryCount(2))
			cancel()
			if err == nil {
				break
			}
			select {
			case <-p.done:
				p.drop(len(batch.Envelopes), err)
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		if err != nil {
			p.drop(len(batch.Envelopes), err)
		}
	}
}

func (p *topicPublisher) drop(n int, err error) {
	p.dropped.Add(uint64(n))
	p.c.Logger().Error("tcpactor: events not published on their topic", "topic", p.topic, "events", n, "error", err)
}

// KeepActivated makes sure the server identities are activated somewhere in
// the cluster: it asks each for its status at once, every `every` (0: 1 s)
// and whenever the cluster topology changes, so that an identity whose
// member was lost is activated on another member, which listens again,
// without waiting for a client's request. stop ends it.
func KeepActivated(c *cluster.Cluster, identities []string, every time.Duration) (stop func()) {
	return keepDoing(c, every, func() {
		for _, id := range identities {
			forgetMisplaced(c, id, Name)
			_, _ = c.Request(id, Name, &messages.GetStatus{},
				cluster.WithTimeout(2*time.Second), cluster.WithRetryCount(2))
		}
	})
}

// KeepSubscribed subscribes pid to the topics and subscribes it again every
// `every` (0: 1 s) and on every topology change: a topic is itself a grain,
// and the member that hosted it may be lost with its subscriber list.
// Subscribing twice is harmless. stop ends it.
func KeepSubscribed(c *cluster.Cluster, pid *actor.PID, topics []string, every time.Duration) (stop func()) {
	return keepDoing(c, every, func() {
		for _, t := range topics {
			forgetMisplaced(c, t, cluster.TopicActorKind)
			_, _ = c.SubscribeByPid(t, pid, cluster.WithTimeout(2*time.Second), cluster.WithRetryCount(2))
		}
	})
}

// keepDoing runs f now, every `every` and on each topology change, in a
// goroutine, until stop.
func keepDoing(c *cluster.Cluster, every time.Duration, f func()) (stop func()) {
	if every <= 0 {
		every = time.Second
	}
	nudge := make(chan struct{}, 1)
	sub := c.ActorSystem.EventStream.Subscribe(func(ev any) {
		if _, ok := ev.(*cluster.ClusterTopology); ok {
			select {
			case nudge <- struct{}{}:
			default:
			}
		}
	})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			f()
			select {
			case <-done:
				return
			case <-t.C:
			case <-nudge:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.ActorSystem.EventStream.Unsubscribe(sub)
			close(done)
			wg.Wait()
		})
	}
}

// Get returns a Server for a cluster identity, activating it when needed.
// The PID is the activation's: when the identity moves to another member,
// call Get again.
func Get(c *cluster.Cluster, identity string) (*server.Server, error) {
	pid := c.Get(identity, Name)
	if pid == nil {
		return nil, fmt.Errorf("server identity %q: no member could activate it", identity)
	}
	return server.Wrap(c.ActorSystem, pid), nil
}

// KeepSubscribedToServer subscribes pid directly to the server identity (a
// Subscribe sent by identity) now, every `every` (0: 1 s) and on every
// topology change, so that the subscription follows the identity when it is
// activated again on another member. stop ends it. A pid of c's own member
// is subscribed with that member's start id, so that the server checks a
// report of the member's loss before it drops pid (a member restarted on
// the same address is reported lost after it is up); a pid elsewhere is
// subscribed without one (every report of its node's loss believed) unless
// WithSubscriberStartID names its node's.
func KeepSubscribedToServer(c *cluster.Cluster, identity string, pid *actor.PID, every time.Duration, opts ...SubscribeOption) (stop func()) {
	startID := server.SubscriberStartID(c.ActorSystem, pid, opts...)
	return keepDoing(c, every, func() {
		forgetMisplaced(c, identity, Name)
		_, _ = c.Request(identity, Name, &messages.Subscribe{Subscriber: pid, SubscriberStartId: startID},
			cluster.WithTimeout(2*time.Second), cluster.WithRetryCount(2))
	})
}

// SubscribeOption is an option of KeepSubscribedToServer: Server.Subscribe's.
type SubscribeOption = server.SubscribeOption

// WithSubscriberStartID names the start id of the subscriber's node
// (actors.StartID of its actor system, on that node; 0: none), for a
// subscriber on another member: the server then checks a report of that
// node's loss before it drops the subscriber, as it does for a subscriber
// of c's own member. KeepSubscribedToServer cannot ask the node itself: the
// node that answers at the subscriber's address may be a later start, in
// which the subscriber does not run, and the check would keep a subscriber
// that is gone. Only whoever has the PID from that node knows its start.
// It is server.WithSubscriberStartID.
func WithSubscriberStartID(startID uint64) SubscribeOption {
	return server.WithSubscriberStartID(startID)
}
