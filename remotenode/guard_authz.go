package remotenode

import (
	"crypto/x509"
	"fmt"
	"maps"
	"strings"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// What the guard lets a peer send (the rest of the rules are the actors';
// see "What a remote peer may do" in package actors and the README).
//
// The node at the other end of a stream is the one its ConnectRequest
// announces: the pinned remote sends one first on every stream, with the
// node's own address. Without mutual TLS that is the peer's word; with it,
// only nodes holding a certificate of the cluster's CA can open a stream at
// all, and the guard ends a stream (gRPC PermissionDenied, counted and
// logged as forged) whose announced host the certificate does not name
// (guard_identity.go). On that basis the guard drops, counts and (at most
// once per peer per actors.RefusalLogInterval) logs:
//   - every envelope of a stream that has not announced a node, announced
//     this node's own address, or announced a second one;
//   - envelopes addressed to another node (the endpoint reader would relay
//     them there, under this node's name);
//   - envelopes whose sender claims to be on this node (replies to it would
//     go to a local actor of the peer's choosing);
//   - the system messages Stop and PoisonPill (a peer never stops another
//     node's actors); Watch and Unwatch whose watcher is not on the sending
//     node (Watch{Watcher: nil} made the watched actor panic); Terminated for
//     a PID that is not on the sending node (a forged Terminated{Who: owner}
//     closed the owner's connections).
//
// Every envelope it keeps carries actors.RemotePeerHeader = the sending
// node, replacing any value the peer set, so the actors know a request came
// from another node even when it has no sender.

// streamPeer is what the guard knows of the node at the other end of one
// stream. Only that stream's goroutine touches it.
type streamPeer struct {
	cert    *x509.Certificate     // verified by mutual TLS; nil without
	addr    string                // announced by the ConnectRequest
	bad     string                // why every envelope of the stream is dropped
	refused error                 // ends the stream at its next receive
	header  *remote.MessageHeader // {RemotePeerHeader: addr}, shared read-only by the stream's envelopes
}

func (p *streamPeer) name() string {
	if p.addr == "" {
		return "unknown"
	}
	return p.addr
}

// Started tells the guard that the remote of sys, configured with Config,
// has started: the guard learns this node's address (to drop envelopes that
// pretend to come from it), and the ServerActors of this process refuse to
// adopt the remote's listening socket (actors.ProtectListener). Call it
// right after remote.Start; until then only the address check is missing.
func (g *Guard) Started(sys *actor.ActorSystem) {
	g.local.Store(sys)
	actors.ProtectListener(sys.Address())
}

// Refused is how many envelopes the guard dropped because the peer may not
// send them.
func (g *Guard) Refused() uint64 { return g.refused.Load() }

func (g *Guard) isLocal(addr string) bool {
	if addr == "" || addr == "nonhost" {
		return true
	}
	sys := g.local.Load()
	return sys != nil && addr == sys.Address()
}

// connected records the node a ConnectRequest announces.
//
// A node that the peer's certificate does not name ends the stream, but
// only at the next receive, after the endpoint reader has answered the
// ConnectRequest: the pinned endpoint writer then takes the stream for
// connected and, when it breaks, logs why (PermissionDenied and the reason)
// and closes its gRPC connection. Refused before the answer, it would dial
// four more times over 10 s and leave all but the last of those
// connections (to this node) open: it overwrites them without closing.
func (g *Guard) connected(p *streamPeer, c *remote.ConnectRequest) {
	addr := c.GetServerConnection().GetAddress()
	switch {
	case p.bad != "":
	case p.addr != "" && addr != p.addr:
		p.bad = fmt.Sprintf("the stream announced node %s, then %s", p.addr, addr)
	case p.addr != "":
	case addr == "":
		p.bad = "the stream's ConnectRequest names no node"
	case g.isLocal(addr):
		p.bad = fmt.Sprintf("the peer claims this node's own address %s", addr)
	default:
		if p.cert != nil {
			if why := certNamesNode(p.cert, addr); why != "" {
				g.refused.Add(1)
				actors.RefuseRemote(g.log, actors.RefusedForged, certPeerName(p.cert), why+": stream refused")
				p.bad = why
				p.refused = status.Error(codes.PermissionDenied, "tcpactor: "+why)
				return
			}
		}
		p.addr = addr
		p.header = &remote.MessageHeader{HeaderData: map[string]string{actors.RemotePeerHeader: addr}}
	}
}

// authorize removes from b what the peer may not send and marks the rest
// with the peer's node. b has been through filter: its indexes are valid.
func (g *Guard) authorize(p *streamPeer, b *remote.MessageBatch) {
	kept := b.Envelopes[:0]
	for _, e := range b.Envelopes {
		if reason, why := g.check(p, b, e); why != "" {
			g.refused.Add(1)
			actors.RefuseRemote(g.log, reason, p.name(), why)
			continue
		}
		if e.MessageHeader == nil {
			e.MessageHeader = p.header
		} else {
			h := maps.Clone(e.MessageHeader.HeaderData)
			if h == nil {
				h = map[string]string{}
			}
			h[actors.RemotePeerHeader] = p.addr
			e.MessageHeader = &remote.MessageHeader{HeaderData: h}
		}
		if isProtocol(b.TypeNames[e.TypeId]) {
			g.protocol.Add(1)
		}
		kept = append(kept, e)
	}
	clear(b.Envelopes[len(kept):])
	b.Envelopes = kept
}

// isProtocol tells whether a message type is tcpactor's own protocol
// (servers, connections, owners), the stream transport's set-up aside,
// which always takes the remote.
func isProtocol(name string) bool {
	return strings.HasPrefix(name, "tcpactor.v1.") && name != streamHelloName && name != streamWelcomeName
}

var (
	streamHelloName   = string(proto.MessageName(&messages.StreamHello{}))
	streamWelcomeName = string(proto.MessageName(&messages.StreamWelcome{}))
)

// check says why e may not be delivered, or "".
func (g *Guard) check(p *streamPeer, b *remote.MessageBatch, e *remote.MessageEnvelope) (actors.RefusalReason, string) {
	name := b.TypeNames[e.TypeId]
	switch {
	case p.bad != "":
		return actors.RefusedForged, name + ": " + p.bad
	case p.addr == "":
		return actors.RefusedForged, name + " before the stream announced its node"
	}
	if t := b.Targets[e.Target]; g.local.Load() != nil && !g.isLocal(t.Address) {
		return actors.RefusedForged, fmt.Sprintf("%s addressed to %s, another node: not relayed", name, t)
	}
	var sender *actor.PID
	if e.Sender > 0 {
		sender = b.Senders[e.Sender-1]
	}
	return peerMayNotSend(g.isLocal, p.addr, name, sender, func() (any, error) {
		return remote.Deserialize(e.MessageData, name, e.SerializerId)
	})
}

// peerMayNotSend is the rule both lanes from a peer node apply to each
// message, the remote's stream (Guard) and the stream transport (Stream):
// it says why a message of type name (its protobuf full name) from the
// node peer, with sender (nil: none), may not be delivered, or "". isLocal
// tells whether an address is this node's; decode gives the message, and
// is called only for the system messages whose PIDs the rule checks.
func peerMayNotSend(isLocal func(string) bool, peer, name string, sender *actor.PID, decode func() (any, error)) (actors.RefusalReason, string) {
	if sender != nil && isLocal(sender.Address) {
		return actors.RefusedForged, fmt.Sprintf("%s with a sender on this node (%s)", name, sender)
	}
	switch name {
	case "actor.Stop", "actor.PoisonPill":
		return actors.RefusedSystem, name + ": a remote peer may not stop this node's actors"
	case "actor.Watch", "actor.Unwatch", "actor.Terminated":
	default:
		return 0, ""
	}
	m, err := decode()
	if err != nil {
		return actors.RefusedSystem, fmt.Sprintf("%s that does not decode: %v", name, err)
	}
	var pid *actor.PID
	switch m := m.(type) {
	case *actor.Watch:
		pid = m.Watcher
	case *actor.Unwatch:
		pid = m.Watcher
	case *actor.Terminated:
		pid = m.Who
	}
	if pid == nil || pid.Id == "" || pid.Address != peer {
		return actors.RefusedSystem, fmt.Sprintf("%s naming %v: a peer may watch for, and report the end of, only actors of its own node", name, pid)
	}
	return 0, ""
}
