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
	sys := testkit.NewSystem(b)
	props := actor.PropsFromFunc(func(actor.Context) {},
		actor.WithDispatcher(connectionDispatcher), actor.WithMailbox(connectionMailbox))
	pid := sys.Root.Spawn(props)
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
