// Package testkit holds what the tests of several packages share: quiet
// actor systems, remote pairs on loopback, descriptor counts and the goleak
// options that name Proto.Actor's own long-lived goroutines.
package testkit

import (
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"
)

// QuietLogger discards Proto.Actor's logging so test output stays readable.
func QuietLogger(*actor.ActorSystem) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// SystemOptions make an actor system quiet. The dead-letter throttle starts a
// goroutine that lives for one throttle interval after a dead letter (1 s by
// default); a short interval lets goleak see it end instead of ignoring it.
func SystemOptions() []actor.ConfigOption {
	return []actor.ConfigOption{
		actor.WithLoggerFactory(QuietLogger),
		actor.WithDeadLetterThrottleInterval(10 * time.Millisecond),
	}
}

// NewSystem starts a quiet actor system and shuts it down when t ends.
func NewSystem(t testing.TB) *actor.ActorSystem {
	t.Helper()
	sys := actor.NewActorSystem(SystemOptions()...)
	t.Cleanup(sys.Shutdown)
	return sys
}

// LeakOptions are the goleak options every test package uses. A plain
// actor system leaves nothing behind; remote and cluster members do (gRPC
// client connections that keep retrying): each function ignored here must
// name the library goroutine and say why, and nothing is ignored broadly.
func LeakOptions() []goleak.Option {
	return nil
}

// OpenFDs counts this process's open file descriptors.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("read /proc/self/fd: %v", err)
	}
	return len(ents)
}
