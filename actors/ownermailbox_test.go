package actors

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
)

// mailboxes are the mailboxes an owner on OwnerDispatcher may have:
// Proto.Actor's default and OwnerMailbox, which must behave alike.
var mailboxes = []struct {
	name    string
	mailbox actor.MailboxProducer
}{{"default", actor.Unbounded()}, {"OwnerMailbox", OwnerMailbox()}}

// journal records what an actor was given, in order, from any goroutine.
type journal struct {
	mu    sync.Mutex
	lines []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines = append(j.lines, fmt.Sprintf(format, args...))
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.lines)
}

// waitJournal waits until j holds want lines, each time something is added
// polled briefly: the restart of a root actor runs on the sender's goroutine
// on OwnerDispatcher, but nothing in Proto.Actor promises it.
func waitJournal(t *testing.T, j *journal, want int) []string {
	t.Helper()
	deadline := time.Now().Add(connWait)
	for {
		if got := j.get(); len(got) >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(time.Millisecond)
	}
}

// owned spawns an owner-like actor on OwnerDispatcher with mailbox and
// returns its PID and its process (to post system messages to).
func owned(t *testing.T, sys *actor.ActorSystem, mailbox actor.MailboxProducer, producer actor.Producer) (*actor.PID, actor.Process) {
	t.Helper()
	pid := sys.Root.Spawn(actor.PropsFromProducer(producer,
		actor.WithDispatcher(OwnerDispatcher()), actor.WithMailbox(mailbox)))
	t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
	p, ok := sys.ProcessRegistry.GetLocal(pid.Id)
	if !ok {
		t.Fatal("the actor has no process")
	}
	return pid, p
}

// serialOwner notes any Receive that starts while another runs, and any
// message out of its sender's order.
type serialOwner struct {
	in       atomic.Bool
	overlaps atomic.Int32
	last     []int
	disorder int
	got      int
	want     int
	done     chan struct{}
}

func (o *serialOwner) Receive(ctx actor.Context) {
	m, ok := ctx.Message().(*seqMsg)
	if !ok {
		return
	}
	if o.in.Swap(true) {
		o.overlaps.Add(1)
	}
	runtime.Gosched() // widen the window in which a second call could start
	if m.n != o.last[m.sender]+1 {
		o.disorder++
	}
	o.last[m.sender] = m.n
	if o.got++; o.got == o.want {
		close(o.done)
	}
	o.in.Store(false)
}

// TestAnOwnerMailboxRunsOneReceiveAtATimeInEachSendersOrder: an owner on
// OwnerMailbox is run by whoever posts to it while it is idle (an owner of
// many connections hears from each connection's goroutine). Posters that
// race must still find it handling one message at a time, each poster's
// messages in the order posted, none lost — as Proto.Actor's default
// mailbox does.
func TestAnOwnerMailboxRunsOneReceiveAtATimeInEachSendersOrder(t *testing.T) {
	const senders, perSender = 6, 500
	for _, mb := range mailboxes {
		t.Run(mb.name, func(t *testing.T) {
			sys := testkit.NewSystem(t)
			o := &serialOwner{last: make([]int, senders), want: senders * perSender, done: make(chan struct{})}
			for i := range o.last {
				o.last[i] = -1
			}
			pid, _ := owned(t, sys, mb.mailbox, func() actor.Actor { return o })
			var wg sync.WaitGroup
			for s := range senders {
				wg.Go(func() {
					for n := range perSender {
						sys.Root.Send(pid, &seqMsg{sender: s, n: n})
					}
				})
			}
			wg.Wait()
			select {
			case <-o.done:
			case <-time.After(connWait):
				t.Fatalf("%d of %d messages handled within %v", o.got, o.want, connWait)
			}
			if n := o.overlaps.Load(); n != 0 {
				t.Fatalf("%d Receives began while another ran", n)
			}
			if o.disorder != 0 {
				t.Fatalf("%d messages out of their sender's order", o.disorder)
			}
		})
	}
}

// orderOwner journals its messages; "go" queues a user message to itself,
// then a system message (Terminated, which Proto.Actor hands to Receive).
type orderOwner struct {
	j    *journal
	self actor.Process
}

func (o *orderOwner) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case string:
		o.j.add("%s", m)
		if m == "go" {
			ctx.Send(ctx.Self(), "user")
			o.self.SendSystemMessage(ctx.Self(), &actor.Terminated{Who: actor.NewPID("nonhost", "gone")})
		}
	case *actor.Terminated:
		o.j.add("terminated")
	}
}

// TestAnOwnerMailboxHandlesSystemMessagesFirstAndHoldsUserMessagesWhileSuspended:
// as Proto.Actor's default mailbox, OwnerMailbox handles a system message
// queued after a user message before it, and takes no user message while
// suspended (SuspendMailbox, which Proto.Actor posts while a failure is
// supervised) — not even one posted to an idle mailbox, which it would
// otherwise hand to Receive at once — until ResumeMailbox.
func TestAnOwnerMailboxHandlesSystemMessagesFirstAndHoldsUserMessagesWhileSuspended(t *testing.T) {
	for _, mb := range mailboxes {
		t.Run(mb.name, func(t *testing.T) {
			sys := testkit.NewSystem(t)
			j := &journal{}
			o := &orderOwner{j: j}
			pid, p := owned(t, sys, mb.mailbox, func() actor.Actor { return o })
			o.self = p

			sys.Root.Send(pid, "go")
			if got, want := waitJournal(t, j, 3), []string{"go", "terminated", "user"}; !slices.Equal(got, want) {
				t.Fatalf("handled %q; want %q (the system message first)", got, want)
			}

			p.SendSystemMessage(pid, &actor.SuspendMailbox{})
			sys.Root.Send(pid, "while suspended")
			sys.Root.Send(pid, "also while suspended")
			// On OwnerDispatcher a Send to a mailbox that nothing else runs
			// returns once the message is handled, with either mailbox:
			// what is not handled now is held.
			if got := j.get(); len(got) != 3 {
				t.Fatalf("handled %q while suspended", got[3:])
			}
			p.SendSystemMessage(pid, &actor.ResumeMailbox{})
			want := []string{"go", "terminated", "user", "while suspended", "also while suspended"}
			if got := waitJournal(t, j, len(want)); !slices.Equal(got, want) {
				t.Fatalf("handled %q; want %q (held, then in order once resumed)", got, want)
			}
		})
	}
}

// boomOwner panics at "boom" and journals the rest, each line with the
// incarnation that handled it.
type boomOwner struct {
	j    *journal
	life int
}

func (p *boomOwner) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		p.j.add("%d started", p.life)
	case *actor.Restarting:
		p.j.add("%d restarting", p.life)
	case string:
		if m == "boom" {
			panic("boom")
		}
		p.j.add("%d %s", p.life, m)
	}
}

// TestAPanicInAnOwnerOnOwnerMailboxIsSupervisedAsProtoActorDoes: a panic in
// an owner's Receive does not reach the goroutine that posted the message
// (OwnerMailbox runs the owner on its posters' goroutines); it is escalated
// to the supervisor, which restarts the owner as with Proto.Actor's default
// mailbox, and the messages posted after it are handled by the new
// incarnation, in order.
func TestAPanicInAnOwnerOnOwnerMailboxIsSupervisedAsProtoActorDoes(t *testing.T) {
	for _, mb := range mailboxes {
		t.Run(mb.name, func(t *testing.T) {
			sys := testkit.NewSystem(t)
			j := &journal{}
			var lives atomic.Int32
			pid, _ := owned(t, sys, mb.mailbox, func() actor.Actor {
				return &boomOwner{j: j, life: int(lives.Add(1))}
			})
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("the owner's panic reached its poster: %v", r)
					}
				}()
				sys.Root.Send(pid, "before")
				sys.Root.Send(pid, "boom")
				sys.Root.Send(pid, "after")
				sys.Root.Send(pid, "later")
			}()
			want := []string{"1 started", "1 before", "1 restarting", "2 started", "2 after", "2 later"}
			if got := waitJournal(t, j, len(want)); !slices.Equal(got, want) {
				t.Fatalf("handled %q; want %q", got, want)
			}
		})
	}
}
