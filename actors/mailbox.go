package actors

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
)

// connMailbox is a ConnectionActor's mailbox, and an owner actor's
// (OwnerMailbox: a connection's Received is one call into the owner, its
// Write one queued message back). It behaves as Proto.Actor's
// default (unbounded) mailbox — actor/mailbox.go at the pinned version,
// followed line by line below: system messages before user messages,
// SuspendMailbox and ResumeMailbox, a runtime.Gosched after each
// dispatcher Throughput, a panic escalated to the invoker, a MessageBatch
// posted as its messages and then itself — but its queues hold no memory
// while they are empty, or almost none.
//
// The default mailbox keeps a 10-slot ring for user messages and a
// lock-free queue for system messages, about 370 bytes per actor whether
// any message ever comes: for an idle connection (issue 14) that was as
// much as the connection's own state. Here the user ring is made by the
// first user message and kept while it is small (a connection that reads
// on reuses it for every message, as the default ring), the system ring
// is dropped once drained (system messages are rare: Started, Stop, a
// watch, Terminated), and both share one mutex, as goring's ring takes one
// per user message already.
//
// On connectionDispatcher, which runs a mailbox on the goroutine that posts
// to it, a user message posted to an idle mailbox with nothing queued is
// handled at once, without the ring (PostUserMessage): an event loop's read
// result goes straight to the connection's Receive. Per message
// (BenchmarkConnectionMailboxPost, an empty Receive) that costs about a
// quarter of the way through the ring, and no allocation.
type connMailbox struct {
	mu   sync.Mutex
	user mailRing
	sys  *mailRing // made by a system message, dropped once drained: 8 bytes idle, not 32

	scheduled    atomic.Int32 // idle or running, as the default's schedulerStatus
	userMessages atomic.Int32
	sysMessages  atomic.Int32
	suspended    atomic.Int32 // notSuspended, suspended or stopped

	invoker actor.MessageInvoker
	// other is the dispatcher unless it is connectionDispatcher, on which a
	// run is a call (see schedule): nil says inline. No flag beside it
	// keeps the mailbox 96 bytes, a size class down from 112 (issue 14).
	other actor.Dispatcher
}

// inline says whether the mailbox runs on connectionDispatcher.
func (m *connMailbox) inline() bool { return m.other == nil }

// connectionMailbox is the MailboxProducer of every ConnectionActor.
func connectionMailbox() actor.Mailbox { return &connMailbox{} }

const (
	mailboxIdle int32 = iota
	mailboxRunning
)

// The values of connMailbox.suspended.
const (
	notSuspended int32 = iota
	isSuspended
	// actorStopped: the actor has stopped. Proto.Actor's context drops
	// every user message it is given from then on (InvokeUserMessage
	// returns at stateStopped), and those that were queued behind the Stop
	// — or posted by a sender that looked the actor up before it left the
	// registry — would be lost without a word: a Write with no WriteFailed,
	// a request with no reply. The mailbox gives them to the dead letters
	// instead, as the registry does for a message sent after the end, so
	// their senders are answered (answerDeadLetters, Proto.Actor's
	// DeadLetterResponse).
	actorStopped
)

// keptRing is the largest ring a drained user queue keeps for the next
// messages: enough for a connection's steady traffic (a read, a write
// outcome, a timer tick), small enough to cost little on an idle one.
const keptRing = 4

// PostUserMessage queues a user message and schedules the mailbox.
func (m *connMailbox) PostUserMessage(message any) {
	// A batch is posted as its messages, then itself, as the default does.
	if batch, ok := message.(actor.MessageBatch); ok {
		for _, msg := range batch.GetMessages() {
			m.PostUserMessage(msg)
		}
	}
	if env, ok := message.(*actor.MessageEnvelope); ok {
		if batch, ok := env.Message.(actor.MessageBatch); ok {
			for _, msg := range batch.GetMessages() {
				m.PostUserMessage(msg)
			}
		}
	}
	// The mailbox is taken before its handlers are looked at: the taking
	// reads the state its spawn's first run stored, after RegisterHandlers,
	// so this goroutine sees them even when it learned of the actor by a
	// way the race detector cannot follow (a PID that came over a socket).
	if m.scheduled.Load() == mailboxIdle && m.scheduled.CompareAndSwap(mailboxIdle, mailboxRunning) {
		if !m.inline() {
			m.enqueue(message)
			m.other.Schedule(m.processMessages)
			return
		}
		// Ours to run, on this goroutine, as schedule would. With nothing
		// queued the message is handled now, without going through the
		// ring: what run would do with it, two locks later. A message
		// posted meanwhile is queued (the mailbox is running), and handled
		// after this one: posts that race have no order, and one poster's
		// earlier message is counted before it posts again. The checks
		// come after taking the mailbox: a run that suspended it has ended.
		if m.userMessages.Load() == 0 && m.sysMessages.Load() == 0 && m.suspended.Load() == notSuspended {
			m.invokeNow(message)
			if m.release() {
				m.processMessages()
			}
			return
		}
		m.enqueue(message)
		m.processMessages()
		return
	}
	m.enqueue(message)
	m.schedule()
}

// enqueue queues a user message.
func (m *connMailbox) enqueue(message any) {
	m.mu.Lock()
	m.user.push(message)
	m.mu.Unlock()
	m.userMessages.Add(1)
}

// invokeNow handles one user message while the caller holds the mailbox.
func (m *connMailbox) invokeNow(msg any) {
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	m.invoker.InvokeUserMessage(msg)
}

// PostSystemMessage queues a system message and schedules the mailbox.
func (m *connMailbox) PostSystemMessage(message any) {
	m.mu.Lock()
	if m.sys == nil {
		m.sys = sysRings.Get().(*mailRing)
	}
	m.sys.push(message)
	m.mu.Unlock()
	m.sysMessages.Add(1)
	m.schedule()
}

// RegisterHandlers is called once, at spawn.
func (m *connMailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker = invoker
	if dispatcher != connectionDispatcher {
		m.other = dispatcher
	}
}

// Start has nothing to do: there are no mailbox middlewares.
func (m *connMailbox) Start() {}

// UserMessageCount is the number of user messages waiting.
func (m *connMailbox) UserMessageCount() int { return int(m.userMessages.Load()) }

// schedule runs the mailbox unless it runs already. On connectionDispatcher
// — Proto.Actor's synchronized dispatcher, whose Schedule only calls the
// function — the run is called directly: a method value given to Schedule
// is a closure allocated at every call, the one allocation of a round trip.
func (m *connMailbox) schedule() {
	if m.scheduled.CompareAndSwap(mailboxIdle, mailboxRunning) {
		if m.inline() {
			m.processMessages()
			return
		}
		m.other.Schedule(m.processMessages)
	}
}

func (m *connMailbox) processMessages() {
	for {
		m.run()
		if !m.release() {
			return
		}
	}
}

// release marks the running mailbox idle. Messages posted after the run
// found the queues empty are its caller's to run: release reports whether
// there are any and it took the mailbox again for them (a poster may have
// taken it meanwhile, and runs them itself).
func (m *connMailbox) release() bool {
	m.scheduled.Store(mailboxIdle)
	sys, user := m.sysMessages.Load(), m.userMessages.Load()
	if sys == 0 && (m.suspended.Load() == isSuspended || user == 0) {
		return false
	}
	return m.scheduled.CompareAndSwap(mailboxIdle, mailboxRunning)
}

func (m *connMailbox) run() {
	var msg any
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	d := m.other
	if d == nil {
		d = connectionDispatcher
	}
	i, t := 0, d.Throughput()
	for {
		if i > t {
			i = 0
			runtime.Gosched()
		}
		i++
		// The count says whether to look (it is raised after the push, and
		// processMessages runs again for a message counted late), so a
		// user message costs no second lock.
		msg = nil
		if m.sysMessages.Load() > 0 {
			msg = m.popSys()
		}
		if msg != nil {
			m.sysMessages.Add(-1)
			switch msg.(type) {
			case *actor.SuspendMailbox:
				m.suspended.CompareAndSwap(notSuspended, isSuspended)
			case *actor.ResumeMailbox:
				m.suspended.CompareAndSwap(isSuspended, notSuspended)
			case *actor.Stop, *actor.Terminated:
				// The two that end an actor: a Stop, or the Terminated of
				// the last child it waited for.
				m.invoker.InvokeSystemMessage(msg)
				m.noteStop()
			default:
				m.invoker.InvokeSystemMessage(msg)
			}
			continue
		}
		s := m.suspended.Load()
		if s == isSuspended {
			return
		}
		if msg = m.pop(&m.user, keptRing); msg == nil {
			return
		}
		m.userMessages.Add(-1)
		if s == actorStopped {
			m.toDeadLetters(msg)
			continue
		}
		m.invoker.InvokeUserMessage(msg)
	}
}

// noteStop marks the mailbox of an actor that has stopped: one no longer in
// its system's registry (finalizeStop removes it there before it sends
// Terminated to its watchers).
func (m *connMailbox) noteStop() {
	ctx, ok := m.invoker.(actor.Context)
	if !ok {
		return
	}
	if _, alive := ctx.ActorSystem().ProcessRegistry.Get(ctx.Self()); !alive {
		m.suspended.Store(actorStopped)
	}
}

// toDeadLetters gives a user message the stopped actor will never handle
// to its system's dead letters, as if it had been sent after the end: one
// with a sender, or of the protocol (a proto message). An actor's own
// timer ticks and read results, which nobody waits for, are dropped as
// Proto.Actor would have, without a dead-letter line in the log.
func (m *connMailbox) toDeadLetters(msg any) {
	ctx, ok := m.invoker.(actor.Context)
	if !ok {
		return
	}
	_, body, sender := actor.UnwrapEnvelope(msg)
	if _, isProto := body.(proto.Message); sender == nil && !isProto {
		return
	}
	ctx.ActorSystem().DeadLetter.SendUserMessage(ctx.Self(), msg)
}

// pop takes the oldest message of r, nil when there is none; a ring
// drained empty keeps its buffer only up to keep slots.
func (m *connMailbox) pop(r *mailRing, keep int) any {
	m.mu.Lock()
	defer m.mu.Unlock()
	return r.pop(keep)
}

// popSys takes the oldest system message, nil when there is none; the ring
// goes once drained.
func (m *connMailbox) popSys() any {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sys == nil {
		return nil
	}
	msg := m.sys.pop(sysRingKeep)
	if m.sys.n == 0 {
		sysRings.Put(m.sys)
		m.sys = nil
	}
	return msg
}

// sysRings are the system rings of mailboxes with no system message queued.
// Every connection gets one at spawn (Started) and lets it go at once: from
// a pool, that is no garbage among the long-lived objects an accept makes
// (issue 14), while an idle mailbox still holds no ring.
var sysRings = sync.Pool{New: func() any { return &mailRing{} }}

// sysRingKeep is the buffer a pooled system ring keeps: Started, and a
// Stop or a Watch beside it.
const sysRingKeep = 2

// mailRing is a FIFO of messages in a ring buffer that grows by doubling.
// Its zero value is empty and holds no buffer. Its counts are 32 bits:
// a ring of 32 bytes keeps an idle connection's mailbox at 96 bytes, not
// 128 (issue 14), and 2^31 queued messages are more memory than a process
// has.
type mailRing struct {
	buf  []any
	head int32 // index of the oldest message
	n    int32 // messages queued
}

func (r *mailRing) push(msg any) {
	if int(r.n) == len(r.buf) {
		grown := make([]any, max(2*len(r.buf), 2))
		for i := range int(r.n) {
			grown[i] = r.buf[(int(r.head)+i)%len(r.buf)]
		}
		r.buf, r.head = grown, 0
	}
	r.buf[(int(r.head)+int(r.n))%len(r.buf)] = msg
	r.n++
}

// pop takes the oldest message, nil when empty. Once empty, a buffer of
// more than keep slots is let go.
func (r *mailRing) pop(keep int) any {
	if r.n == 0 {
		return nil
	}
	msg := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = int32((int(r.head) + 1) % len(r.buf))
	r.n--
	if r.n == 0 {
		r.head = 0
		if len(r.buf) > keep {
			r.buf = nil
		}
	}
	return msg
}
