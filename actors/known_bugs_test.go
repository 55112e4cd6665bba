package actors

import (
	"log/slog"
	"os"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// Bugs the reliability suite found in code its branch does not own. Each
// has a test that shows it, skipped until the bug is fixed (run them with
// TCPACTOR_KNOWN_BUGS=1); the fix removes the skip.

// knownBugsEnv runs the known-bug tests instead of skipping them.
const knownBugsEnv = "TCPACTOR_KNOWN_BUGS"

func skipKnownBug(t *testing.T, bug string) {
	t.Helper()
	if os.Getenv(knownBugsEnv) == "" {
		t.Skipf("known bug, not fixed yet (%s=1 runs it): %s", knownBugsEnv, bug)
	}
}

// knownBugAcceptedAsTheServerStops: the accept goroutine hands an accepted
// net.Conn to the ServerActor as a user message (acceptor.go, acceptLoop:
// send(&acceptedConn{...})). When that message is still in the mailbox as
// the actor stops — Stop is a system message and overtakes it — or is sent
// after it stopped, Proto.Actor drops it (actor_context.go,
// InvokeUserMessage returns once stopped; a dead PID goes to dead letters),
// so nobody closes the socket: the client hangs and the descriptor stays
// open until the garbage collector finalizes it.
const knownBugAcceptedAsTheServerStops = "a connection accepted as the server stops is never closed " +
	"(acceptor.go acceptLoop sends acceptedConn; the stopped ServerActor drops it)"

// TestAConnectionAcceptedAsTheServerStopsIsClosed replays the input with
// which FuzzServerRequests found the bug (listen, pause, a client waits in
// the backlog, resume, a second client, close, stop) until a client is left
// connected: under -race (as make test runs it) within a few dozen rounds
// on the 2-core CI machine, without about once in a thousand.
func TestAConnectionAcceptedAsTheServerStopsIsClosed(t *testing.T) {
	skipKnownBug(t, knownBugAcceptedAsTheServerStops)
	input := []byte("\x00\x05\n\x03::1\t\x00\x06\v\b\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x0f\x00\x05\x020\x01\n\x00\x0f\x00\v\x12\n\x05owner\x12\x06\b\x80\x80\x80\x80\x04\f\x12\n\x10\n\an")
	pl := &panicLog{}
	sys := actor.NewActorSystem(append(testkit.SystemOptions(), actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(pl) }))...)
	t.Cleanup(sys.Shutdown)
	for round := 0; round < 5000 && !t.Failed(); round++ {
		t.Run("", func(t *testing.T) { runServerInput(t, sys, pl, input, true) })
	}
}

// knownBugFutureSubscriber: Subscribe with no subscriber makes its sender
// the subscriber (the proto: "absent: the sender"), and the server watches
// it. When the sender is a Proto.Actor future — RequestFuture, the usual way
// to ask from outside an actor — the future takes the Watch system message
// for its result and ends (future.go, futureProcess.SendSystemMessage; the
// reply then overwrites the result: the caller sees *actor.Watch or the Ack
// depending on timing, and -race reports the future's result written twice
// — future.go:161 against the caller's read), and a future never answers a
// Watch with Terminated: the server keeps the gone subscriber for good and
// sends every event into the ended future. NextPendingConnection with no owner does the same
// to the connection it hands out (it watches a future that may never report
// its end, and stays open). The Go facade avoids both by always naming one.
const knownBugFutureSubscriber = "Subscribe without a subscriber, sent with RequestFuture, subscribes the future " +
	"for good (server.go subscribe watches it; a future never sends Terminated)"

// TestSubscribeWithoutSubscriberFromAFutureIsAnsweredWithAnAck asks a
// server, with RequestFuture, to subscribe the sender, many times: each
// must get its Ack. FuzzServerRequests found *actor.Watch instead; under
// -race this fails within a few dozen rounds.
func TestSubscribeWithoutSubscriberFromAFutureIsAnsweredWithAnAck(t *testing.T) {
	skipKnownBug(t, knownBugFutureSubscriber)
	s := startServer(t, ServerOptions{})
	for round := range 2000 {
		res, err := s.sys.Root.RequestFuture(s.pid, &messages.Subscribe{}, replyTimeout).Result()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := res.(*messages.Ack); !ok {
			t.Fatalf("round %d: Subscribe{} sent with RequestFuture answered %T %v, want *messages.Ack", round, res, res)
		}
	}
}
