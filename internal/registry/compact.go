// Package registry holds the process-registry compaction behind
// actors.CompactRegistry, in a package of its own so that the test kit,
// which the actors package's tests import, can use it too.
package registry

import (
	"github.com/asynkron/protoactor-go/actor"
	cmap "github.com/orcaman/concurrent-map"
)

// Buckets is how many concurrent maps a compacted registry keeps. Each is
// 32 shards, each shard a map under its own lock: one bucket is more locks
// than a few cores contend for, and every map holds many entries instead
// of one.
const Buckets = 1

// Compact moves sys's local PIDs into Buckets concurrent maps; see
// actors.CompactRegistry for when it is safe.
func Compact(sys *actor.ActorSystem) *actor.ActorSystem {
	old := sys.ProcessRegistry.LocalPIDs
	if len(old.LocalPIDs) <= Buckets {
		return sys
	}
	buckets := make([]cmap.ConcurrentMap, Buckets)
	for i := range buckets {
		buckets[i] = cmap.New()
	}
	next := &actor.SliceMap{LocalPIDs: buckets}
	for _, b := range old.LocalPIDs {
		b.IterCb(func(id string, p any) { next.GetBucket(id).Set(id, p) })
	}
	sys.ProcessRegistry.LocalPIDs = next
	return sys
}
