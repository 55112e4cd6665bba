package actors

// Assigning connections to subscribers that take them (Subscribe.assign):
// Akka's Bind(handler), Ranch's protocol module. A claim costs the owner a
// NewConnection event and a NextPendingConnection round trip per connection
// — across nodes, three messages on the wire before the first byte is read.
// An assigned connection costs one: the NewConnection that tells the owner
// it owns the connection, which the server hands the connection in its
// SetOwner (announce) and the connection sends once it has taken the owner,
// before anything else it sends: the owner hears of the connection first,
// and whatever it sends back finds the connection already its own.

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// assignee is a subscriber that takes connections, with the claim options
// each assignment carries.
type assignee struct {
	pid  *actor.PID
	opts *messages.ClaimOptions
}

// assignees are the subscribers that take connections, in the order they
// subscribed; connections go to them in turn.
type assignees struct {
	list []assignee
	next int
}

// set records whether sub takes connections, and with which options.
func (a *assignees) set(sub *actor.PID, assign bool, opts *messages.ClaimOptions) {
	a.remove(sub)
	if assign && sub != nil {
		a.list = append(a.list, assignee{pid: sub, opts: opts})
	}
}

// remove forgets sub (unsubscribed, or stopped).
func (a *assignees) remove(sub *actor.PID) {
	for i, x := range a.list {
		if x.pid.Equal(sub) {
			a.list = append(a.list[:i], a.list[i+1:]...)
			return
		}
	}
}

// pick is the next assignee in turn, or false when there is none.
func (a *assignees) pick() (assignee, bool) {
	if len(a.list) == 0 {
		return assignee{}, false
	}
	a.next %= len(a.list)
	x := a.list[a.next]
	a.next++
	return x, true
}

// subscriberOf is the subscriber a Subscribe names (absent: its sender).
func (s *ServerActor) subscriberOf(ctx actor.Context, sub *actor.PID) *actor.PID {
	if sub == nil {
		return ctx.Sender()
	}
	return sub
}

// assign hands a new connection to the next assignee, if there is one: its
// NewConnection says assigned, the other subscribers hear of the connection
// as usual (there is nothing to claim), and SetOwner starts the reading.
func (s *ServerActor) assign(ctx actor.Context, pid *actor.PID, info *messages.ConnectionInfo) bool {
	a, ok := s.assignees.pick()
	if !ok {
		return false
	}
	ev := &messages.NewConnection{Server: ctx.Self(), Connection: pid, Pending: int32(len(s.pending)), Info: info}
	for _, sub := range s.subscribers {
		if !sub.pid.Equal(a.pid) {
			ctx.Send(sub.pid, ev)
		}
	}
	// The connection tells the assignee (SetOwner.announce): the owner's
	// first word of it comes from the connection itself, ahead of its bytes,
	// and an owner that answers it with Close finds itself the owner already.
	ctx.Send(pid, &messages.SetOwner{Owner: a.pid, Options: a.opts, Announce: &messages.NewConnection{
		Server: ctx.Self(), Pending: int32(len(s.pending)), Info: info}})
	return true
}
