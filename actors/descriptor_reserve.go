package actors

import "sync"

// The process's descriptor reserve. An endpoint that must stay reachable
// when the process runs out of descriptors (tcpactor serve's metrics: the
// server's own accepts fail then, and its metrics matter most) keeps a
// spare descriptor and, to accept a client, frees it and accepts into the
// slot; the connection's close frees the slot, and the spare takes it
// again. A server's accept loop that retries after EMFILE can take that
// slot between the two: the spare is lost and the endpoint unreachable for
// as long as the server's clients hold their descriptors. So both steps run
// through UseDescriptorReserve, which keeps every accept loop of the process
// out of Accept meanwhile.
var descriptorReserve struct {
	use sync.Mutex // one user at a time

	mu     sync.Mutex
	active bool // a user holds the reserve: new gates start held
	gates  map[*acceptGate]struct{}
}

// UseDescriptorReserve runs use while no accept loop of this process's
// servers is inside Accept, or enters it: a descriptor use frees is not
// taken by a server's accept. use must be short and must not block (an
// accept of a client known to be waiting, a close and a reopen); the
// servers' accepts wait for it.
func UseDescriptorReserve(use func()) {
	descriptorReserve.use.Lock()
	defer descriptorReserve.use.Unlock()
	for _, g := range reserveGates(true) {
		g.hold(true)
	}
	defer func() {
		for _, g := range reserveGates(false) {
			g.hold(false)
		}
	}()
	use()
}

// reserveGates marks the reserve active or not and returns the gates.
func reserveGates(active bool) []*acceptGate {
	descriptorReserve.mu.Lock()
	defer descriptorReserve.mu.Unlock()
	descriptorReserve.active = active
	gates := make([]*acceptGate, 0, len(descriptorReserve.gates))
	for g := range descriptorReserve.gates {
		gates = append(gates, g)
	}
	return gates
}

// registerGate makes g respect the reserve until unregisterGate.
func registerGate(g *acceptGate) {
	descriptorReserve.mu.Lock()
	defer descriptorReserve.mu.Unlock()
	if descriptorReserve.gates == nil {
		descriptorReserve.gates = map[*acceptGate]struct{}{}
	}
	descriptorReserve.gates[g] = struct{}{}
	g.reserved = descriptorReserve.active // no Accept yet: nothing to interrupt
}

func unregisterGate(g *acceptGate) {
	descriptorReserve.mu.Lock()
	defer descriptorReserve.mu.Unlock()
	delete(descriptorReserve.gates, g)
}

// outsideDescriptorReserve runs take, which opens descriptors, unless the
// reserve is in use: take could have the descriptor a user has just freed
// to accept into. It reports whether take ran. It never waits for a user
// (an actor calls it); a user that comes meanwhile waits for take.
func outsideDescriptorReserve(take func()) bool {
	if !descriptorReserve.use.TryLock() {
		return false
	}
	defer descriptorReserve.use.Unlock()
	take()
	return true
}
