package actors

import (
	"runtime"
	"strings"
	"sync"
	"weak"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// A request that reaches a ConnectionActor after it stopped goes to the dead
// letters of the actor system it lived in: the process registry finds no
// actor and Proto.Actor publishes a DeadLetterEvent on that system's
// EventStream — for a local sender and for a remote one alike (the remote's
// endpoint reader delivers to the local PID, which resolves to the
// dead-letter process). Proto.Actor's own subscriber answers a sender with
// DeadLetterResponse, which fails a future (actor.ErrDeadLetter) but means
// nothing to an owner actor waiting for its WriteAck. So every actor system
// that runs connections gets one more subscriber, installed by the first
// connection that starts there: it answers each connection request that
// has a sender with the reply the live connection would have given had it
// ended — WriteFailed for a Write, an Ack or ConnectionInfo carrying the
// error for the others. The reply goes through the system's root, so it
// crosses the remote back to a sender on another node.
//
// A message without a sender (ctx.Send) cannot be answered: owners send
// Write as a request (ctx.Request) for that reason. Demand has no reply.
// A future (RequestFuture) is left to Proto.Actor's DeadLetterResponse,
// which fails it with actor.ErrDeadLetter: it takes only the first reply,
// and Close also addresses ServerActors, whose callers expect Closed.

var deadLetterSystems sync.Map // weak.Pointer[actor.ActorSystem] → struct{}

// answerDeadLetters installs the subscriber on sys once.
func answerDeadLetters(sys *actor.ActorSystem) {
	key := weak.Make(sys)
	if _, loaded := deadLetterSystems.LoadOrStore(key, struct{}{}); loaded {
		return
	}
	runtime.AddCleanup(sys, func(k weak.Pointer[actor.ActorSystem]) { deadLetterSystems.Delete(k) }, key)
	root := sys.Root
	sys.EventStream.Subscribe(func(evt any) {
		dl, ok := evt.(*actor.DeadLetterEvent)
		if !ok {
			return
		}
		if so, ok := dl.Message.(*messages.SetOwner); ok && so.GetClaimant() != nil && so.GetReply() != nil {
			// A claim the connection was to answer (NextPendingConnection):
			// the claimant is answered, a future too, with the connection,
			// whose end it learns as any watcher does (Terminated).
			root.Send(so.Claimant, &messages.PendingConnection{Connection: dl.PID, Info: so.Reply.Info})
		}
		if dl.Sender == nil || strings.HasPrefix(dl.Sender.Id, "future") {
			return
		}
		if reply := deadLetterReply(dl.PID, dl.Message); reply != nil {
			root.Send(dl.Sender, reply)
		}
	})
}

// deadLetterReply is the answer to msg sent to the stopped connection pid,
// or nil when msg is not a connection request or has no reply.
func deadLetterReply(pid *actor.PID, msg any) any {
	gone := func() *messages.Error {
		return messages.NewError(messages.SocketError_SOCKET_ERROR_OPERATION,
			"connection %s/%s has ended", pid.GetAddress(), pid.GetId())
	}
	switch m := msg.(type) {
	case *messages.Write:
		return &messages.WriteFailed{Connection: pid, AckId: m.AckId, Error: gone()}
	case *messages.Close, *messages.CloseWrite, *messages.Abort, *messages.SetOwner, *messages.SetSocketOption:
		return &messages.Ack{Error: gone()}
	case *messages.GetInfo:
		return &messages.ConnectionInfo{State: messages.SocketState_SOCKET_STATE_UNCONNECTED, Error: gone()}
	}
	return nil
}
