package actors

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// pooledDispatcher runs mailbox turns on parked, long-lived goroutines
// instead of a fresh goroutine per turn (Proto.Actor's default dispatcher).
// A fresh goroutine starts with a small stack that grows again on every turn
// (runtime.newstack/copystack: a fifth of the server's CPU under 64-byte
// ping-pong); a parked one keeps its grown stack.
//
// Schedule hands fn to a parked worker when one is waiting and starts a new
// worker otherwise, so it never blocks and never queues behind a busy actor.
// A worker that finds no work for idleAfter ends, so an idle process keeps
// no goroutines around (and goleak sees them end).
type pooledDispatcher struct {
	work       chan func()
	throughput int
	idleAfter  time.Duration
	workers    atomic.Int64
}

// newPooledDispatcher makes a dispatcher whose mailboxes process up to
// throughput messages before yielding (Proto.Actor's default is 300).
func newPooledDispatcher(throughput int, idleAfter time.Duration) *pooledDispatcher {
	return &pooledDispatcher{work: make(chan func()), throughput: throughput, idleAfter: idleAfter}
}

// connectionDispatcher is the dispatcher for ConnectionActors (a prototype:
// NewConnection would pass actor.WithDispatcher(connectionDispatcher)).
var connectionDispatcher actor.Dispatcher = newPooledDispatcher(300, 200*time.Millisecond)

// Schedule runs fn on a parked worker, or on a new one.
func (d *pooledDispatcher) Schedule(fn func()) {
	select {
	case d.work <- fn:
	default:
		d.workers.Add(1)
		go d.worker(fn)
	}
}

// Throughput is how many messages a mailbox turn processes.
func (d *pooledDispatcher) Throughput() int { return d.throughput }

func (d *pooledDispatcher) worker(fn func()) {
	defer d.workers.Add(-1)
	t := time.NewTimer(d.idleAfter)
	defer t.Stop()
	for {
		fn()
		t.Reset(d.idleAfter)
		select {
		case fn = <-d.work:
		case <-t.C:
			return
		}
	}
}
