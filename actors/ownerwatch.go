package actors

// One watch per remote owner for all of a system's connections it owns.
//
// A connection watches its owner, to close when the owner stops or its node
// is lost. Across nodes each watch is a Watch on the wire, an entry in both
// remotes' books and an Unwatch at the end: for a connection that only
// connects and closes, two of the ten messages between the nodes, and two
// more through each remote's endpoint watcher. So the connections of one
// actor system share one watch per owner on another node (Ranch's
// connections supervisor watches once for all its connections too): the
// system's owner watcher (OwnerWatcherName) watches the owner once, keeps
// the set of connections it owns, and hands each of them the owner's
// Terminated (its node lost: AddressTerminated) as a watch of its own would.
// The watch outlives the owner's last connection by ownerWatchLinger, so an
// owner that serves one short connection after another is watched once.
// Owners on the connection's own node are watched by the connection, as
// before: a local watch costs no message on the wire.
//
// A report that an owner's node was lost is checked first when the claims
// of its connections named the owner's start id (incarnation.go): the
// connections whose claim named the start id that the node at that address
// answers with stay open, and the owner is watched again.

import (
	"runtime"
	"sync"
	"time"
	"weak"

	"github.com/asynkron/protoactor-go/actor"
)

// OwnerWatcherName is the actor name of a system's owner watcher: an owner
// that learns its connections' node is lost forgets it as a watcher, as it
// forgets the connections themselves.
const OwnerWatcherName = "tcpactor-owner-watch"

// OwnerWatcher is the owner watcher of the node at address.
func OwnerWatcher(address string) *actor.PID { return actor.NewPID(address, OwnerWatcherName) }

// ownerWatchLinger is how long an owner stays watched after its last
// connection here ended.
const ownerWatchLinger = time.Second

// ownerWatch is a system's owner watcher: the shared book (under mu, since
// connections register from their own goroutines) and the actor that holds
// the watches. It is kept in a process-wide map keyed by its system, so it
// holds its system only weakly: the map must not keep a system alive.
type ownerWatch struct {
	mu     sync.Mutex
	sys    weak.Pointer[actor.ActorSystem]
	pid    *actor.PID // nil: the watcher could not be spawned, connections watch for themselves
	owners map[pidID]*watchedOwner
	arming bool // a sweep is armed
}

// watchedOwner is one remote owner and the connections of this system it
// owns, by actor id (not by pointer: the book, in a process-wide map, must
// not hold their system), each with the owner's start id its claim named
// (0: none).
type watchedOwner struct {
	pid   *actor.PID
	conns map[string]uint64
	idle  time.Duration // monoNow() when its last connection left
}

// Messages of the watcher actor (local only).
type (
	watchOwner  struct{ pid *actor.PID }
	sweepOwners struct{}
)

var ownerWatches sync.Map // weak.Pointer[actor.ActorSystem] → *ownerWatch

// ownerWatchOf is sys's owner watcher, spawned on first use; nil when it
// cannot be (its name is taken).
func ownerWatchOf(sys *actor.ActorSystem) *ownerWatch {
	key := weak.Make(sys)
	if w, ok := ownerWatches.Load(key); ok {
		return w.(*ownerWatch).usable()
	}
	fresh := &ownerWatch{sys: key, owners: map[pidID]*watchedOwner{}}
	fresh.mu.Lock() // others wait in usable until it is spawned
	defer fresh.mu.Unlock()
	if w, loaded := ownerWatches.LoadOrStore(key, fresh); loaded {
		return w.(*ownerWatch).usable()
	}
	runtime.AddCleanup(sys, func(k weak.Pointer[actor.ActorSystem]) { ownerWatches.Delete(k) }, key)
	pid, err := sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &ownerWatcher{w: fresh} }), OwnerWatcherName)
	if err != nil {
		return nil
	}
	fresh.pid = pid
	return fresh
}

// usable is w once spawned, nil when it could not be.
func (w *ownerWatch) usable() *ownerWatch {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pid == nil {
		return nil
	}
	return w
}

// send tells the watcher actor msg, while its system lives.
func (w *ownerWatch) send(msg any) {
	if sys := w.sys.Value(); sys != nil {
		sys.Root.Send(w.pid, msg)
	}
}

// add makes c one of owner's connections, claimed naming the owner's start
// id startID (0: none), watching owner if nobody here does yet.
func (w *ownerWatch) add(owner *actor.PID, startID uint64, c *connection) {
	w.mu.Lock()
	defer w.mu.Unlock()
	key := pidKey(owner)
	o, ok := w.owners[key]
	if !ok {
		o = &watchedOwner{pid: owner, conns: map[string]uint64{}}
		w.owners[key] = o
		w.send(&watchOwner{pid: owner})
	}
	o.conns[c.self().Id] = startID
}

// remove forgets c as one of owner's connections; the watch stays for
// ownerWatchLinger.
func (w *ownerWatch) remove(owner *actor.PID, c *connection) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o, ok := w.owners[pidKey(owner)]
	if !ok {
		return
	}
	delete(o.conns, c.self().Id)
	if len(o.conns) > 0 {
		return
	}
	o.idle = monoNow()
	if !w.arming {
		w.arming = true
		time.AfterFunc(ownerWatchLinger, func() { w.send(&sweepOwners{}) })
	}
}

// ownerWatcher is the actor that holds the watches.
type ownerWatcher struct {
	w      *ownerWatch
	checks LossChecks[*actor.Terminated]
}

func (a *ownerWatcher) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *watchOwner:
		ctx.Watch(m.pid)
	case *sweepOwners:
		for _, pid := range a.w.sweep() {
			ctx.Unwatch(pid)
		}
	case *actor.Terminated:
		if m.Why != actor.TerminatedReason_AddressTerminated || !a.w.namesStartID(m.Who) {
			a.w.terminated(m, 0)
			return
		}
		// Perhaps a stale report (incarnation.go): the node there answers.
		a.checks.Add(ctx, m.Who.Address, m, func(current uint64, reports []*actor.Terminated) {
			for _, m := range reports {
				if a.w.terminated(m, current) {
					ctx.Logger().Info("tcpactor: a report that the node of an owner was lost was stale: the same start of it answers; its connections here stay open",
						"owner", m.Who.Address+"/"+m.Who.Id)
					ctx.Watch(m.Who) // the report ended the remote's watch
				}
			}
		})
	}
}

// namesStartID tells whether a connection of owner was claimed naming the
// owner's start id.
func (w *ownerWatch) namesStartID(owner *actor.PID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if o, ok := w.owners[pidKey(owner)]; ok {
		for _, id := range o.conns {
			if id != 0 {
				return true
			}
		}
	}
	return false
}

// sweep forgets the owners without connections for ownerWatchLinger and
// returns them, to be unwatched; it arms the next sweep while some owner is
// without connections.
func (w *ownerWatch) sweep() []*actor.PID {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.arming = false
	var gone []*actor.PID
	now, waiting := monoNow(), false
	for key, o := range w.owners {
		switch {
		case len(o.conns) > 0: // still in use
		case now-o.idle >= ownerWatchLinger:
			delete(w.owners, key)
			gone = append(gone, o.pid)
		default:
			waiting = true
		}
	}
	if waiting {
		w.arming = true
		time.AfterFunc(ownerWatchLinger, func() { w.send(&sweepOwners{}) })
	}
	return gone
}

// terminated hands an owner's end to each of its connections, as the
// system message a watch of its own would have brought, except to those
// claimed naming current, the start id that the owner's node answers with
// now (0: none, or not asked): for them the report was stale, and
// terminated says whether there are any, to watch the owner again.
func (w *ownerWatch) terminated(m *actor.Terminated, current uint64) (kept bool) {
	var ended []string
	w.mu.Lock()
	if o, ok := w.owners[pidKey(m.Who)]; ok {
		for id, startID := range o.conns {
			if current == 0 || startID != current {
				ended = append(ended, id)
				delete(o.conns, id)
			}
		}
		kept = len(o.conns) > 0
		if !kept {
			delete(w.owners, pidKey(m.Who))
		}
	}
	w.mu.Unlock()
	sys := w.sys.Value()
	if sys == nil {
		return false
	}
	for _, id := range ended {
		if p, ok := sys.ProcessRegistry.GetLocal(id); ok {
			p.SendSystemMessage(actor.NewPID(sys.Address(), id), &actor.Terminated{Who: m.Who, Why: m.Why})
		}
	}
	return kept
}

// pidID is a PID as a map key: its address and id side by side. Joined
// with a "/" two PIDs could share a key (an id may hold a "/"), and
// PID.String() is the generated protobuf String, by reflection.
type pidID struct{ address, id string }

// pidKey is pid's map key.
func pidKey(pid *actor.PID) pidID { return pidID{pid.Address, pid.Id} }

// watchOwner watches a connection's new owner: one on another node through
// the system's owner watcher, one here directly. startID is the owner's
// start id as its claim named it (0: none).
func (c *connection) watchOwner(owner *actor.PID, startID uint64) {
	if !IsLocalAddress(c.ctx.ActorSystem(), owner.Address) {
		if w := ownerWatchOf(c.ctx.ActorSystem()); w != nil {
			w.add(owner, startID, c)
			return
		}
	}
	c.ctx.Watch(owner)
}

// unwatchOwner stops watching the connection's owner (none: nothing).
func (c *connection) unwatchOwner() {
	if c.owner == nil {
		return
	}
	if !IsLocalAddress(c.ctx.ActorSystem(), c.owner.Address) {
		if w := ownerWatchOf(c.ctx.ActorSystem()); w != nil {
			w.remove(c.owner, c)
			return
		}
	}
	c.ctx.Unwatch(c.owner)
}
