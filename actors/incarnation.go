package actors

// Which start of a node is running at an address.
//
// Proto.Actor's remote reports a node lost (Terminated{AddressTerminated})
// when an endpoint to its address ends, and it does not tell one start of a
// node from the next: a node restarted on the same address is reported lost
// after it is up. The endpoint writer that was dialling the old node's
// address (it retries for ~12 s) connects to the new node, finds an
// EndpointTerminatedEvent queued behind its dial, stops, and its own
// stream's receive goroutine, cut by that stop, publishes another
// EndpointTerminatedEvent for the address; the endpoint manager removes the
// endpoint by address, so the live one goes, and every watch of the new
// node's actors fires. So each actor system has a start id, random, made
// once; the claim carries the owner's (ClaimOptions.owner_start_id), a
// connection's info its node's (ConnectionInfo.node_start_id), and a loss
// report is checked by asking the node at that address (GetIncarnation to
// IncarnationName there): the same start id answering means the report
// concerns nobody we know.

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"
	"weak"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// IncarnationName is the actor name, on every node where tcpactor asked for
// StartID, of the actor that answers GetIncarnation with the node's start id.
const IncarnationName = "tcpactor-incarnation"

// IncarnationOf is the PID of the incarnation actor of the node at address.
func IncarnationOf(address string) *actor.PID { return actor.NewPID(address, IncarnationName) }

// IncarnationTimeout and IncarnationAttempts bound a check of a loss
// report (AskIncarnation, and the node stream's own, remotenode): a live node answers in a round trip; a lost one never does (the
// remote dials its address for ~12 s before it gives up). A second try
// covers an ask lost in the cascade of endpoint ends that a stale report
// is (see the package comment above).
const (
	IncarnationTimeout  = 1500 * time.Millisecond
	IncarnationAttempts = 2
)

var startIDs sync.Map // weak.Pointer[actor.ActorSystem] → uint64

var startIDMu sync.Mutex // one spawn of the incarnation actor per system

// StartID is sys's start id: random, not 0, made on the first call, which
// also spawns the actor (IncarnationName) that tells it to other nodes.
// owner.New puts it in its claims; a server in the ConnectionInfo of each
// connection it announces.
func StartID(sys *actor.ActorSystem) uint64 {
	key := weak.Make(sys)
	if id, ok := startIDs.Load(key); ok {
		return id.(uint64)
	}
	startIDMu.Lock()
	defer startIDMu.Unlock()
	if id, ok := startIDs.Load(key); ok {
		return id.(uint64)
	}
	id := newStartID()
	// A name already taken leaves the node silent: a report of its loss is
	// then taken as true, as before start ids.
	_, _ = sys.Root.SpawnNamed(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*messages.GetIncarnation); ok && ctx.Sender() != nil {
			ctx.Respond(&messages.Incarnation{StartId: id})
		}
	}), IncarnationName)
	startIDs.Store(key, id)
	runtime.AddCleanup(sys, func(k weak.Pointer[actor.ActorSystem]) { startIDs.Delete(k) }, key)
	return id
}

func newStartID() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// AskIncarnation asks the node at address for its start id and calls then
// with it, once, in ctx's actor (ReenterAfter), or with 0 when no node
// there answered within IncarnationAttempts × IncarnationTimeout, or the
// address refused a TCP connection meanwhile (no process listens there: a
// node lost, as most are, is known so at once instead of after the
// time-outs; tcpactor's health checks take a refusal so too). A report
// that the node at address was lost is true for an actor whose start id
// (from its claim or its connection's info) is not the answer.
func AskIncarnation(ctx actor.Context, address string, then func(startID uint64)) {
	done := false // read and set in ctx's actor only
	once := func(id uint64) {
		if !done {
			done = true
			then(id)
		}
	}
	refused := actor.NewFuture(ctx.ActorSystem(), IncarnationAttempts*IncarnationTimeout)
	root := ctx.ActorSystem().Root
	go func() {
		c, err := net.DialTimeout("tcp", address, IncarnationTimeout)
		switch {
		case err == nil:
			c.Close()
		case errors.Is(err, syscall.ECONNREFUSED):
			root.Send(refused.PID(), &messages.Incarnation{})
		}
	}()
	ctx.ReenterAfter(refused, func(_ any, err error) {
		if err == nil {
			once(0)
		}
	})
	askIncarnation(ctx, address, IncarnationAttempts, once)
}

// LossChecks gathers reports that a node was lost by its address, so that
// the reports of one address wait for one AskIncarnation: the first report
// of an address asks, and then runs with the answer and every report of
// that address that came meanwhile. Its zero value is ready; it belongs to
// one actor, whose ctx every call passes.
type LossChecks[T any] struct{ waiting map[string][]T }

// Add queues report for address and, if no check of address is under way,
// starts one that calls then in ctx's actor (see AskIncarnation for
// current).
func (c *LossChecks[T]) Add(ctx actor.Context, address string, report T, then func(current uint64, reports []T)) {
	if c.waiting == nil {
		c.waiting = map[string][]T{}
	}
	waiting, asked := c.waiting[address]
	c.waiting[address] = append(waiting, report)
	if asked {
		return
	}
	AskIncarnation(ctx, address, func(current uint64) {
		reports := c.waiting[address]
		delete(c.waiting, address)
		then(current, reports)
	})
}

func askIncarnation(ctx actor.Context, address string, attempts int, then func(uint64)) {
	f := ctx.RequestFuture(IncarnationOf(address), &messages.GetIncarnation{}, IncarnationTimeout)
	ctx.ReenterAfter(f, func(res any, err error) {
		if inc, ok := res.(*messages.Incarnation); ok && err == nil {
			then(inc.StartId)
			return
		}
		if attempts > 1 {
			askIncarnation(ctx, address, attempts-1, then)
			return
		}
		then(0)
	})
}
