package testkit

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// ProbeTimeout is how long Next waits for a message.
const ProbeTimeout = 10 * time.Second

// Probe is an actor whose messages a test reads: its user messages and the
// Terminated of what it watches, in order of arrival.
type Probe struct {
	// PID is the probe's actor.
	PID     *actor.PID
	ch      chan any
	dropped atomic.Int64
}

// NewProbe spawns a Probe in sys and stops it when t ends. It holds up to
// 1024 unread messages; the test fails if more arrive while those wait.
func NewProbe(t testing.TB, sys *actor.ActorSystem) *Probe {
	t.Helper()
	p := &Probe{ch: make(chan any, 1024)}
	p.PID = sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case *actor.Terminated:
		case actor.SystemMessage, actor.AutoReceiveMessage:
			return
		}
		select {
		case p.ch <- ctx.Message():
		default:
			p.dropped.Add(1) // the actor must not block: count, and fail at the end
		}
	}))
	t.Cleanup(func() {
		_ = sys.Root.StopFuture(p.PID).Wait()
		if n := p.dropped.Load(); n > 0 {
			t.Errorf("probe %s: %d messages dropped (more than 1024 unread)", p.PID.Id, n)
		}
	})
	return p
}

// Next returns the next message of type T the probe got, skipping others,
// and fails t when none comes within ProbeTimeout.
func Next[T any](t testing.TB, p *Probe) T {
	t.Helper()
	timeout := time.After(ProbeTimeout)
	for {
		select {
		case m := <-p.ch:
			if v, ok := m.(T); ok {
				return v
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T within %v", zero, ProbeTimeout)
			return zero
		}
	}
}

// Quiet fails t when the probe gets a T within d.
func Quiet[T any](t testing.TB, p *Probe, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-p.ch:
			if _, ok := m.(T); ok {
				t.Fatalf("unexpected %T: %v", m, m)
			}
		case <-deadline:
			return
		}
	}
}

// Receive returns the next message the probe got, whatever its type, in
// order of arrival; ok is false when none comes within d. It is for tests
// that read every message in turn (strictly ordered protocols) and word
// their own failures.
func (p *Probe) Receive(d time.Duration) (m any, ok bool) {
	select { // what has arrived comes first, also with d 0
	case m = <-p.ch:
		return m, true
	default:
	}
	select {
	case m = <-p.ch:
		return m, true
	case <-time.After(d):
		return nil, false
	}
}
