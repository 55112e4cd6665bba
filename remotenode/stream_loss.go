package remotenode

// A report that a peer with a live stream was lost, checked before it is
// believed.
//
// Proto.Actor's remote reports a node restarted on the same address lost
// after it is up (actors/incarnation.go): its EndpointTerminatedEvent for
// that address used to close the live stream to the new node and fire
// every watch the stream carried, though the stream itself showed the node
// alive. A peer names its start id in its StreamWelcome; on a report of its
// loss the stream stays while the node at the address is asked for its
// start id, as actors.AskIncarnation asks it, and ends (its watches firing)
// once another start answers, or none does.

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
)

// checkLoss runs in a goroutine of the transport (Stop waits for it: up to
// one ask's time-out once Stop has begun): it ends out unless the
// node at the lane's address answers with the start id out's peer named.
func (l *lane) checkLoss(out *outStream) {
	current := l.t.startAt(l.addr)
	l.mu.Lock()
	out.checking = false
	named := out.start
	l.mu.Unlock()
	if current == named {
		l.t.stale.Add(1)
		l.t.log.Info("tcpactor: a report that a peer node was lost was stale: the same start of it answers; its stream stays",
			"peer", l.addr)
		return
	}
	out.close()
	l.broken(out) // nothing if out has ended meanwhile
}

// startAt is the start id of the node at addr, asked through the remote
// (the way the report came), with actors.AskIncarnation's bounds: 0 when
// no node answers within actors.IncarnationAttempts ×
// actors.IncarnationTimeout, or the transport stops. Unlike
// actors.AskIncarnation it does not first try a TCP connection for a
// refusal: the stream being up shows a process there (a peer whose process
// died ends its stream at once), and a bare connection is noise to the
// peer's gRPC server.
func (t *StreamTransport) startAt(addr string) uint64 {
	target := actors.IncarnationOf(addr)
	for range actors.IncarnationAttempts {
		if t.isStopped() {
			return 0
		}
		fut := actor.NewFuture(t.sys, actors.IncarnationTimeout)
		t.directProcess(target).SendUserMessage(target, &actor.MessageEnvelope{Message: &messages.GetIncarnation{}, Sender: fut.PID()})
		if res, err := fut.Result(); err == nil {
			if inc, ok := res.(*messages.Incarnation); ok {
				return inc.StartId
			}
		}
	}
	return 0
}

// StaleReports is how many reports of a peer's loss (from the remote) the
// transport found stale: the node at the address answered with the start
// id its live stream's peer named, and the stream stayed.
func (t *StreamTransport) StaleReports() uint64 { return t.stale.Load() }
