package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/registry"
)

// CompactRegistry makes sys's process registry keep its local PIDs in one
// concurrent map (32 shards) instead of Proto.Actor's 1,024 (32,768 shards),
// and returns sys. Those shards are Go maps, and a map's first entry
// allocates a whole group of slots (288 bytes): at 10,000 actors nearly
// every entry is alone in its map, about 245 bytes of map per actor (every
// connection is one); in 32 maps an entry costs its share of a full table.
// It also spares the empty maps themselves, about 1.5 MiB per actor system.
//
// Call it right after actor.NewActorSystem, before anything else uses sys:
// before Spawn, remote.NewRemote, a cluster, or handing sys to another
// goroutine. The registry's bucket slice is Proto.Actor's exported field and
// is swapped without a lock. Proto.Actor starts no goroutine that looks in
// the registry while it makes a system (it registers the event stream and
// the dead letters, which are moved over); anything that runs alongside the
// swap may miss an entry, or race on the field. Nothing else changes: PIDs,
// names and lookups are as before; lookups take one of 32 locks instead of
// one of 32,768, which two cores do not contend for.
func CompactRegistry(sys *actor.ActorSystem) *actor.ActorSystem {
	return registry.Compact(sys)
}
