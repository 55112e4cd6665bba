package actors

// A report that a subscriber's node was lost, checked before it is believed.
//
// Proto.Actor's remote reports a node restarted on the same address lost
// after it is up (incarnation.go), and a server used to drop every
// subscriber there at the report: a handler subscribed directly
// (owner.New{Server}) then heard of no connection again. A subscriber that
// named its node's start id (Subscribe.subscriber_start_id) is dropped only
// once the node at that address refuses connections, answers with another
// start id, or does not answer; while the check runs it is told of
// connections as before the report.

import (
	"github.com/asynkron/protoactor-go/actor"
)

// checkSubscriberLoss takes a report that the node of a subscriber which
// named its start id was lost, and checks it with the node at that address
// before the subscriber is dropped; it reports false, leaving m to
// onTerminated, for any other Terminated. Reports of one address wait for
// one check.
func (s *ServerActor) checkSubscriberLoss(ctx actor.Context, m *actor.Terminated) bool {
	who := m.Who
	if sub, ok := s.subscribers[pidKey(who)]; m.Why != actor.TerminatedReason_AddressTerminated || !ok ||
		sub.startID == 0 || s.isLive(ctx, who) {
		return false
	}
	s.lossChecks.Add(ctx, who.Address, who, func(current uint64, reported []*actor.PID) {
		for _, who := range reported {
			sub, ok := s.subscribers[pidKey(who)]
			switch {
			case !ok: // unsubscribed meanwhile
			case current != 0 && sub.startID == current:
				ctx.Logger().Info("tcpactor: a report that the node of a subscriber was lost was stale: the same start of it answers; it stays subscribed",
					"subscriber", who.Address+"/"+who.Id)
				ctx.Watch(who) // the report ended the remote's watch
			default:
				s.onTerminated(ctx, who)
			}
		}
	})
	return true
}
