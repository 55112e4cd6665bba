package actors

import "github.com/asynkron/protoactor-go/actor"

// connectionDispatcher runs a ConnectionActor's mailbox on the goroutine
// that sends to it (Proto.Actor's synchronized dispatcher): a chunk the
// reader goroutine reads is handled — a local handler's echo written —
// before that goroutine reads again, with no hand-over to another goroutine
// in between. Proto.Actor's default dispatcher starts a fresh goroutine for
// every mailbox run, whose stack grows again each time; measured under
// 64-byte ping-pong this raised the local-handler round trips from 0.52× to
// 0.84× a plain net.Listener server (README, Benchmarks).
//
// The mailbox still lets one goroutine at a time in, so the actor's state
// stays single-threaded. The price: whoever sends to a connection (an owner,
// the remote endpoint reader, a timer) runs its Receive, so that Receive
// never blocks — the connection waits for none of its goroutines.
var connectionDispatcher = actor.NewSynchronizedDispatcher(300)

// OwnerDispatcher is the dispatcher for owner actors (Akka's model: an actor
// that claims connections and gets their Received, WriteAck, Disconnected):
// like a connection's, it runs the owner's mailbox on the goroutine that
// sends to it. On the connection's node a chunk then goes from the reader
// goroutine through the connection, the owner's Receive and the owner's
// Write back into the connection without a hand-over to another goroutine;
// on Proto.Actor's default dispatcher each of the owner's mailbox runs is a
// fresh goroutine whose stack grows again every time (runtime.newstack and
// copystack took a third of the server's CPU under 64-byte ping-pong). On an
// owner's own node the remote's endpoint reader runs it the same way.
//
// Give it to an owner with actor.WithDispatcher(actors.OwnerDispatcher()),
// and OwnerMailbox with it. The price is the connection's: the owner's
// Receive runs on its senders' goroutines (a connection's reader, a timer,
// the remote's endpoint reader), so it must never block — which an owner's
// Receive must not anyway — and must not hold a lock that a sender to the
// owner can hold while sending.
func OwnerDispatcher() actor.Dispatcher { return connectionDispatcher }

// OwnerMailbox is the mailbox for owner actors, to give with
// OwnerDispatcher: actor.WithMailbox(actors.OwnerMailbox()). It is a
// connection's mailbox (mailbox.go): Proto.Actor's default unbounded
// mailbox in behaviour — system messages first, SuspendMailbox and
// ResumeMailbox, a panic escalated to the supervisor, one Receive at a time,
// each poster's messages in the order posted — but on OwnerDispatcher a
// message posted to an idle owner with nothing queued is handled at once by
// its poster, with no queue node, scheduling closure or deferred recover
// per run. A chunk's Received then reaches the owner's Receive as a call
// from the connection, and the owner's Write comes back into the
// connection's queue on the same goroutine. It takes no mailbox
// middlewares (the default takes none unless given some).
func OwnerMailbox() actor.MailboxProducer { return connectionMailbox }
