package actors

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// What a remote peer may do.
//
// A request comes from another node when remotenode.Guard, which sees
// every envelope a peer's stream delivers, names that node in the message
// header RemotePeerHeader (overwriting whatever the peer put there), or when
// its sender is a PID of another node. A peer cannot pass for a local actor:
// the guard drops envelopes whose sender claims this node's address, and
// marks sender-less ones through the header. So a request is local when it
// has no such header and no sender, or a sender on this node.
//
// From a remote node:
//   - a ServerActor answers GetStatus, Subscribe/Unsubscribe,
//     NextPendingConnection and WaitForNewConnection (how remote handlers
//     work); the administrative requests (Listen, Close, SetProxy,
//     SetMaxPendingConnections, PauseAccepting, ResumeAccepting,
//     AddPendingConnection) only with ServerOptions.AllowRemoteAdmin, and
//     SetSocketDescriptor never (a descriptor number means something only
//     inside this process);
//   - a PID a remote request names (subscriber, owner) and its sender must be
//     on the node the request came from: a peer cannot make the server watch,
//     dial or send to a third node;
//   - one node holds at most RemoteLimits waiters, subscribers and added
//     pending connections;
//   - a ConnectionActor takes requests only from the node of its current
//     owner; one without an owner (pending) or with a local handler takes
//     none.
//
// Every refusal is answered (when the request has a sender) with an error of
// code SocketAccessError, counted in RemoteRefusals and logged at most once
// per peer node per RefusalLogInterval.

// RemotePeerHeader is the message header in which remotenode.Guard names
// the node (its remote address) that sent a message.
const RemotePeerHeader = "tcpactor-remote-peer"

// localAddress is what Proto.Actor calls a process without remote
// ("nonhost"): PIDs spawned before the remote started carry it.
const localAddress = "nonhost"

// Defaults of RemoteLimits. A remote handler needs one subscriber and one
// waiter per serving actor; these leave room for many.
const (
	DefaultRemoteWaitersPerNode     = 1024
	DefaultRemoteSubscribersPerNode = 64
	DefaultRemotePendingPerNode     = 64
)

// RemoteLimits cap what one remote node can make a ServerActor hold. A zero
// field takes its default.
type RemoteLimits struct {
	WaitersPerNode     int // WaitForNewConnection waiting for an answer
	SubscribersPerNode int // subscribers on the node
	PendingPerNode     int // AddPendingConnection entries the node added
}

func (l RemoteLimits) withDefaults() RemoteLimits {
	if l.WaitersPerNode <= 0 {
		l.WaitersPerNode = DefaultRemoteWaitersPerNode
	}
	if l.SubscribersPerNode <= 0 {
		l.SubscribersPerNode = DefaultRemoteSubscribersPerNode
	}
	if l.PendingPerNode <= 0 {
		l.PendingPerNode = DefaultRemotePendingPerNode
	}
	return l
}

// peerOf is the remote node a message came from, or "" when it is local.
func peerOf(ctx actor.Context) string {
	if h := ctx.MessageHeader(); h != nil {
		if p := h.Get(RemotePeerHeader); p != "" {
			return p
		}
	}
	if s := ctx.Sender(); s != nil && !IsLocalAddress(ctx.ActorSystem(), s.Address) {
		return s.Address
	}
	return ""
}

// IsLocalAddress says whether a PID address names sys itself.
func IsLocalAddress(sys *actor.ActorSystem, addr string) bool {
	return addr == "" || addr == localAddress || addr == sys.Address()
}

// accessDenied is the error of every refusal.
func accessDenied(format string, args ...any) *messages.Error {
	return messages.NewError(messages.SocketError_SOCKET_ERROR_SOCKET_ACCESS, format, args...)
}

// ---------------------------------------------------------------------------
// counting and logging refusals

// RefusalReason says why a message from a remote peer was refused or dropped.
type RefusalReason int

// The reasons, as the /metrics label "reason" shows them.
const (
	RefusedAdmin      RefusalReason = iota // an administrative request without AllowRemoteAdmin
	RefusedConnection                      // a connection request not from its owner's node
	RefusedSystem                          // a Proto.Actor system message the peer may not send
	RefusedForged                          // a sender, target or named PID not on the sending node
	RefusedLimit                           // over a RemoteLimits cap
	RefusedUnreadable                      // an envelope the remote could not have read
	numRefusalReasons
)

var refusalNames = [numRefusalReasons]string{"admin", "connection", "system", "forged", "limit", "unreadable"}

func (r RefusalReason) String() string {
	if r < 0 || r >= numRefusalReasons {
		return "unknown"
	}
	return refusalNames[r]
}

// RefusalLogInterval is how often, at most, a refusal from one peer node is
// logged: a peer that floods the node with refused requests does not flood
// its log.
const RefusalLogInterval = 10 * time.Second

var (
	refusals   [numRefusalReasons]atomic.Uint64
	refusalLog = struct {
		sync.Mutex
		last map[string]time.Time
	}{last: map[string]time.Time{}}
)

// RemoteRefusals is how many messages from remote peers this process refused
// or dropped since it started, by reason.
func RemoteRefusals() map[string]uint64 {
	m := make(map[string]uint64, numRefusalReasons)
	for i := range refusals {
		m[refusalNames[i]] = refusals[i].Load()
	}
	return m
}

// RefuseRemote counts a refusal and logs it, unless one from the same peer
// was logged less than RefusalLogInterval ago.
func RefuseRemote(log *slog.Logger, reason RefusalReason, peer, what string) {
	if reason >= 0 && reason < numRefusalReasons {
		refusals[reason].Add(1)
	}
	now := time.Now()
	refusalLog.Lock()
	last, seen := refusalLog.last[peer]
	if seen && now.Sub(last) < RefusalLogInterval {
		refusalLog.Unlock()
		return
	}
	if len(refusalLog.last) >= 4096 { // many peers: forget them rather than grow
		clear(refusalLog.last)
	}
	refusalLog.last[peer] = now
	refusalLog.Unlock()
	if log != nil {
		log.Warn("tcpactor: refused a message from a remote peer (further refusals from it are not logged for a while)",
			"peer", peer, "reason", reason.String(), "what", what, "interval", RefusalLogInterval)
	}
}

// ---------------------------------------------------------------------------
// the ServerActor

// authorize applies the rules for remote peers to the current message; when
// it returns false the message was refused (and answered, if it has a
// sender).
func (s *ServerActor) authorize(ctx actor.Context) bool {
	peer := peerOf(ctx)
	if peer == "" {
		return true
	}
	m := ctx.Message()
	refuse := func(reason RefusalReason, e *messages.Error) bool {
		RefuseRemote(ctx.Logger(), reason, peer, typeName(m))
		if ctx.Sender() != nil {
			ctx.Respond(serverRefusal(m, e))
		}
		return false
	}
	if snd := ctx.Sender(); snd != nil && snd.Address != peer {
		return refuse(RefusedForged, accessDenied("a request from node %s with a sender on %s: not allowed from a remote node", peer, snd.Address))
	}
	switch m := m.(type) {
	case *messages.SetSocketDescriptor:
		return refuse(RefusedAdmin, accessDenied("SetSocketDescriptor is not allowed from a remote node (%s)", peer))
	case *messages.Listen, *messages.Close, *messages.SetProxy, *messages.SetMaxPendingConnections,
		*messages.PauseAccepting, *messages.ResumeAccepting, *messages.AddPendingConnection:
		if !s.opts.AllowRemoteAdmin {
			return refuse(RefusedAdmin, accessDenied("%s is not allowed from a remote node (%s): the server does not allow remote administration", typeName(m), peer))
		}
		if a, ok := m.(*messages.AddPendingConnection); ok && a.Connection != nil && s.pendingAddedBy(peer) >= s.limits.PendingPerNode {
			return refuse(RefusedLimit, accessDenied("a remote node (%s) may add at most %d pending connections", peer, s.limits.PendingPerNode))
		}
	case *messages.Subscribe:
		if m.Subscriber.GetId() != "" && m.Subscriber.Address != peer {
			return refuse(RefusedForged, accessDenied("a remote node (%s) may subscribe only its own actors, not %s", peer, m.Subscriber))
		}
		sub := m.Subscriber
		if sub.GetId() == "" {
			sub = ctx.Sender()
		}
		if sub != nil && !s.isSubscriber(sub) && s.subscribersOn(peer) >= s.limits.SubscribersPerNode {
			return refuse(RefusedLimit, accessDenied("a remote node (%s) may have at most %d subscribers", peer, s.limits.SubscribersPerNode))
		}
	case *messages.Unsubscribe:
		if m.Subscriber.GetId() != "" && m.Subscriber.Address != peer {
			return refuse(RefusedForged, accessDenied("a remote node (%s) may unsubscribe only its own actors, not %s", peer, m.Subscriber))
		}
	case *messages.NextPendingConnection:
		if m.Owner.GetId() != "" && m.Owner.Address != peer {
			return refuse(RefusedForged, accessDenied("a remote node (%s) may claim only for its own actors, not %s", peer, m.Owner))
		}
	case *messages.WaitForNewConnection:
		if s.waitersOf[peer] >= s.limits.WaitersPerNode {
			return refuse(RefusedLimit, accessDenied("a remote node (%s) may have at most %d WaitForNewConnection waiting", peer, s.limits.WaitersPerNode))
		}
	}
	return true
}

// serverRefusal is the reply to a refused request, of the type its sender
// waits for.
func serverRefusal(m any, e *messages.Error) any {
	switch m.(type) {
	case *messages.Listen, *messages.SetSocketDescriptor:
		return &messages.ListenResult{Error: e}
	case *messages.NextPendingConnection:
		return &messages.PendingConnection{Error: e}
	case *messages.WaitForNewConnection:
		return &messages.WaitResult{Error: e}
	}
	return &messages.Ack{Error: e}
}

func (s *ServerActor) subscribersOn(node string) int {
	n := 0
	for _, sub := range s.subscribers {
		if sub.pid.Address == node {
			n++
		}
	}
	return n
}

func (s *ServerActor) pendingAddedBy(node string) int {
	n := 0
	for _, p := range s.pending {
		if p.addedBy == node {
			n++
		}
	}
	return n
}

// holdWaiter and releaseWaiter count the waiters of each remote node.
func (s *ServerActor) holdWaiter(w *waiter) {
	if w.peer != "" {
		s.waitersOf[w.peer]++
	}
}

func (s *ServerActor) releaseWaiter(w *waiter) {
	if w.peer == "" {
		return
	}
	if s.waitersOf[w.peer]--; s.waitersOf[w.peer] <= 0 {
		delete(s.waitersOf, w.peer)
	}
}

// checkAddPending refuses, from anyone, what is not a ConnectionActor of this
// process that waits for an owner: the server itself, a made-up PID, a
// connection with a local handler.
func (s *ServerActor) checkAddPending(ctx actor.Context, pid *actor.PID) *messages.Error {
	switch {
	case pid.Equal(ctx.Self()):
		return invalid("the server cannot be its own pending connection")
	case !IsLocalAddress(ctx.ActorSystem(), pid.Address):
		return invalid("%s is not a connection of this node", pid)
	}
	handled, ok := liveConnections.load(connKey{ctx.ActorSystem(), pid.Id})
	switch {
	case !ok:
		return invalid("%s is not a ConnectionActor of this process", pid)
	case handled:
		return invalid("%s is served by a local handler and cannot take an owner", pid)
	}
	return nil
}

// endPending closes a connection left in the queue when the server closes:
// one the server spawned is stopped; one added with AddPendingConnection is
// only forgotten (its maker keeps it).
func (s *ServerActor) endPending(ctx actor.Context, p pendingConn) {
	if !p.added {
		// Close, not Stop: the connection lingers (reads and throws away
		// what the peer still sends) so that it ends with FIN, not a reset.
		ctx.Send(p.pid, &messages.Close{})
		return
	}
	ctx.Unwatch(p.pid)
	delete(s.live, p.pid.Id)
}

// withoutPassword is the proxy as GetStatus shows it: never its password.
func withoutPassword(p *messages.NetworkProxy) *messages.NetworkProxy {
	if p.GetPassword() == "" {
		return p
	}
	c := proto.Clone(p).(*messages.NetworkProxy) // every field but the password, new ones too
	c.Password = ""
	return c
}

// ---------------------------------------------------------------------------
// the ConnectionActor

// liveConnections holds this process's ConnectionActors, by actor system
// and name, and whether a local handler serves each, so that
// AddPendingConnection takes only real ones. Plain maps under a mutex: a
// sync.Map entry took about 130 bytes per idle connection (its trie nodes
// and the boxed key); one map keyed by system and name with a bool, about
// 64; a set of names per system and kind, about 35 (issue 14: its slot is
// the name's 16 bytes alone); a set of the names' 64-bit hashes, about 20
// (a slot of 8 bytes). The hash is maphash's, with this process's secret
// random seed: a name that is not a live connection's passes only if its
// hash equals one of theirs, a chance of one in 2^64 per live connection
// that nobody can steer. A system whose connections have all ended is
// forgotten: the map does not hold it.
var liveConnections = connRegistry{bySys: map[*actor.ActorSystem]*sysConns{}}

type connRegistry struct {
	mu    sync.Mutex
	bySys map[*actor.ActorSystem]*sysConns
}

// sysConns are one actor system's connections, by the hash of the name.
type sysConns struct {
	owned   map[uint64]struct{} // served by an owner, or waiting for one
	handled map[uint64]struct{} // served by a local handler
}

// connSeed seeds the hash of the names in liveConnections.
var connSeed = maphash.MakeSeed()

func (r *connRegistry) store(k connKey, handled bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.bySys[k.sys]
	if s == nil {
		s = &sysConns{owned: map[uint64]struct{}{}, handled: map[uint64]struct{}{}}
		r.bySys[k.sys] = s
	}
	if handled {
		s.handled[k.hash()] = struct{}{}
	} else {
		s.owned[k.hash()] = struct{}{}
	}
}

func (r *connRegistry) delete(k connKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.bySys[k.sys]
	if s == nil {
		return
	}
	h := k.hash()
	delete(s.handled, h)
	delete(s.owned, h)
	if len(s.handled) == 0 && len(s.owned) == 0 {
		delete(r.bySys, k.sys) // and a Go map keeps the room it grew to
	}
}

func (r *connRegistry) load(k connKey) (handled, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.bySys[k.sys]
	if s == nil {
		return false, false
	}
	h := k.hash()
	if _, ok := s.handled[h]; ok {
		return true, true
	}
	_, ok = s.owned[h]
	return false, ok
}

type connKey struct {
	sys *actor.ActorSystem
	id  string
}

// hash is the key of the name in its system's sets.
func (k connKey) hash() uint64 { return maphash.String(connSeed, k.id) }

// connectionName is a fresh, unguessable actor name for a connection: its
// PID is not a capability anyone can guess (sequential names were). The 128
// random bits are in base64url, 22 characters: the name fits 32 bytes where
// hex took 48 (issue 14). Nothing parses it.
func connectionName() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand's contract since Go 1.24)
	// Encoded in place: the name is the only allocation, not the garbage
	// of a second string (issue 14).
	var name [len(connNamePrefix) + 22]byte
	copy(name[:], connNamePrefix)
	base64.RawURLEncoding.Encode(name[len(connNamePrefix):], b[:])
	return string(name[:])
}

const connNamePrefix = "conn-"

// spawnConnection spawns a connection under an unguessable name.
func spawnConnection(root *actor.RootContext, props *actor.Props) *actor.PID {
	pid, err := root.SpawnNamed(props, connectionName())
	if err != nil { // a name taken: 128 random bits make it impossible
		pid = root.SpawnPrefix(props, "conn")
	}
	return pid
}

// authorize applies the rules for remote peers to the current message of a
// connection (and keeps liveConnections); false: refused.
func (c *connection) authorize(ctx actor.Context) bool {
	switch ctx.Message().(type) {
	case *actor.Started:
		liveConnections.store(connKey{ctx.ActorSystem(), ctx.Self().Id}, c.cfg.Handler != nil)
		return true
	case *actor.Stopped:
		liveConnections.delete(connKey{ctx.ActorSystem(), ctx.Self().Id})
		return true
	}
	peer := peerOf(ctx)
	if peer == "" {
		return true
	}
	var e *messages.Error
	reason := RefusedConnection
	switch snd := ctx.Sender(); {
	case snd != nil && snd.Address != peer:
		e, reason = accessDenied("a request from node %s with a sender on %s: not allowed from a remote node", peer, snd.Address), RefusedForged
	case c.cfg.Handler != nil:
		e = accessDenied("connection %d is served by a local handler: no requests from a remote node (%s)", c.id, peer)
	case c.owner == nil:
		e = accessDenied("connection %d has no owner yet: it takes requests from a remote node (%s) only once claimed by an actor there", c.id, peer)
	case c.owner.Address != peer:
		e = accessDenied("connection %d takes requests only from its owner's node, not from %s", c.id, peer)
	default:
		return true
	}
	m := ctx.Message()
	RefuseRemote(ctx.Logger(), reason, peer, typeName(m))
	if ctx.Sender() == nil {
		return false
	}
	if w, ok := m.(*messages.Write); ok {
		ctx.Respond(&messages.WriteFailed{Connection: ctx.Self(), AckId: w.AckId, Error: e})
	} else {
		ctx.Respond(&messages.Ack{Error: e})
	}
	return false
}

// typeName names a message for errors and logs: "Listen", "actor.Stop".
func typeName(m any) string {
	return strings.TrimPrefix(fmt.Sprintf("%T", m), "*messages.")
}
