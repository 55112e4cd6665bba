package actors

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
)

// A compacted registry keeps what Proto.Actor registered while making the
// system (the event stream, the dead letters) and serves spawns, lookups,
// requests and stops as before, from one bucket.
func TestCompactRegistryKeepsTheSystemWorking(t *testing.T) {
	sys := actor.NewActorSystem(testkit.SystemOptions()...)
	t.Cleanup(sys.Shutdown)
	if got := CompactRegistry(sys); got != sys {
		t.Fatal("CompactRegistry returned another system")
	}
	if n := len(sys.ProcessRegistry.LocalPIDs.LocalPIDs); n != 1 {
		t.Fatalf("%d buckets after CompactRegistry, want 1", n)
	}
	for _, id := range []string{"eventstream", "deadletter"} {
		if _, ok := sys.ProcessRegistry.GetLocal(id); !ok {
			t.Errorf("%q is not in the compacted registry", id)
		}
	}
	CompactRegistry(sys) // twice is harmless
	if _, ok := sys.ProcessRegistry.GetLocal("deadletter"); !ok {
		t.Error("a second CompactRegistry lost the dead letters")
	}

	echo := actor.PropsFromFunc(func(ctx actor.Context) {
		if s, ok := ctx.Message().(string); ok {
			ctx.Respond(s)
		}
	})
	const n = 200
	pids := make([]*actor.PID, 0, n)
	for range n {
		pids = append(pids, sys.Root.Spawn(echo))
	}
	for _, pid := range pids {
		if _, ok := sys.ProcessRegistry.GetLocal(pid.Id); !ok {
			t.Fatalf("%s is not registered", pid)
		}
		res, err := sys.Root.RequestFuture(pid, "hi", 5*time.Second).Result()
		if err != nil || res != "hi" {
			t.Fatalf("%s answered %v, %v", pid, res, err)
		}
	}
	for _, pid := range pids {
		if err := sys.Root.StopFuture(pid).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, ok := sys.ProcessRegistry.GetLocal(pid.Id); ok {
			t.Fatalf("%s is still registered after it stopped", pid)
		}
	}
	// A request to a stopped actor still comes back from the dead letters.
	if _, err := sys.Root.RequestFuture(pids[0], "hi", 5*time.Second).Result(); err == nil {
		t.Error("a stopped actor answered")
	}
}
