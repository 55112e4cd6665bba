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
