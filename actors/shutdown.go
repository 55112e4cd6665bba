package actors

import (
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Proto.Actor's ActorSystem.Shutdown (pinned version) only closes a private
// channel: it stops no actor and tells none. A ServerActor must still close
// its listener and its unclaimed connections when its system shuts down, so
// each system that runs servers gets one goroutine that notices the shutdown
// (IsStopped is the only public signal, hence the poll) and stops them. The
// goroutine ends with its system's last server or with the system.

const shutdownPoll = 20 * time.Millisecond

type systemWatch struct {
	servers map[*actor.PID]bool
}

var (
	watchMu sync.Mutex
	watches = map[*actor.ActorSystem]*systemWatch{}
)

// stopOnShutdown registers a server to be stopped when sys shuts down.
func stopOnShutdown(sys *actor.ActorSystem, pid *actor.PID) {
	watchMu.Lock()
	defer watchMu.Unlock()
	w, ok := watches[sys]
	if !ok {
		w = &systemWatch{servers: map[*actor.PID]bool{}}
		watches[sys] = w
		go watchSystem(sys, w)
	}
	w.servers[pid] = true
}

// forgetOnShutdown unregisters a server that stopped.
func forgetOnShutdown(sys *actor.ActorSystem, pid *actor.PID) {
	watchMu.Lock()
	defer watchMu.Unlock()
	if w, ok := watches[sys]; ok {
		delete(w.servers, pid)
	}
}

func watchSystem(sys *actor.ActorSystem, w *systemWatch) {
	t := time.NewTicker(shutdownPoll)
	defer t.Stop()
	for range t.C {
		watchMu.Lock()
		stopped, idle := sys.IsStopped(), len(w.servers) == 0
		var pids []*actor.PID
		if stopped || idle {
			for pid := range w.servers {
				pids = append(pids, pid)
			}
			delete(watches, sys)
		}
		watchMu.Unlock()
		for _, pid := range pids {
			sys.Root.Stop(pid)
		}
		if stopped || idle {
			return
		}
	}
}
