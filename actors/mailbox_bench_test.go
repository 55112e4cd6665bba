package actors

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
)

// BenchmarkConnectionMailboxPost is one user message posted to an idle
// connection mailbox and handled by an empty Receive: the hand-off a read
// result pays between an event loop and the connection's handling of it.
func BenchmarkConnectionMailboxPost(b *testing.B) {
	benchmarkPost(b, actor.WithDispatcher(connectionDispatcher), actor.WithMailbox(connectionMailbox))
}

// benchmarkPost posts one user message at a time to an idle actor, spawned
// with opts, whose Receive is empty.
func benchmarkPost(b *testing.B, opts ...actor.PropsOption) {
	sys := testkit.NewSystem(b)
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}, opts...))
	defer sys.Root.Stop(pid)
	p, ok := sys.ProcessRegistry.GetLocal(pid.Id)
	if !ok {
		b.Fatal("no process")
	}
	msg := &readResult{}
	b.ReportAllocs()
	for b.Loop() {
		p.SendUserMessage(pid, msg)
	}
}

// BenchmarkOwnerMailboxPost is one user message posted to an idle owner
// actor on OwnerDispatcher and handled by an empty Receive: the hop a
// Received pays from its connection into an owner, with Proto.Actor's
// default mailbox and with OwnerMailbox.
func BenchmarkOwnerMailboxPost(b *testing.B) {
	for _, mb := range []struct {
		name    string
		mailbox actor.MailboxProducer
	}{{"default", actor.Unbounded()}, {"OwnerMailbox", OwnerMailbox()}} {
		b.Run(mb.name, func(b *testing.B) {
			benchmarkPost(b, actor.WithDispatcher(OwnerDispatcher()), actor.WithMailbox(mb.mailbox))
		})
	}
}
