package actors

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// acceptGate is the accept credit between a ServerActor and its accept
// goroutine (Akka's ResumeAccepting(batchSize), Ranch's go-ahead). The actor
// sets how many connections it can still take; the goroutine accepts only
// while fewer than that are on their way to the actor. When the actor lowers
// the allowance under what an Accept in progress needs, the Accept is
// interrupted through the listener's deadline, so a full queue or a pause
// stops accepting at once and the kernel backlog holds the rest.
type acceptGate struct {
	mu        sync.Mutex
	cond      sync.Cond
	ln        listener // accepted from; swap changes it
	allowance int      // connections the actor can still take
	inflight  int      // accepted (or being accepted), not yet taken by the actor
	accepting bool     // the goroutine is inside Accept
	closed    bool
	reserved  bool          // the descriptor reserve is in use: no Accept (descriptor_reserve.go)
	stop      chan struct{} // closed with the gate: ends a back-off sleep
	// quiet is set by quiesce (a Close): no new Accept, but a connection
	// already accepted goes on to the actor, to be served or closed
	// gracefully, instead of being reset with the gate.
	quiet  bool
	quietC chan struct{} // closed by quiesce: ends a back-off sleep

	// accepted holds each accepted connection until the actor takes it
	// (onAccepted): closing the gate closes those it never took.
	accepted handover[net.Conn]
}

// listener is what the accept goroutine accepts from: a TCP listener, or a
// listener through a SOCKS5 proxy. The deadline interrupts an Accept.
type listener interface {
	Accept() (net.Conn, error)
	SetDeadline(t time.Time) error
	Close() error
	Addr() net.Addr
}

func newAcceptGate(ln listener) *acceptGate {
	g := &acceptGate{ln: ln, stop: make(chan struct{}), quietC: make(chan struct{})}
	g.cond.L = &g.mu
	registerGate(g)
	return g
}

// hold keeps the goroutine out of Accept while the descriptor reserve is
// in use; with on, it interrupts an Accept in progress and returns once it
// has ended, so no descriptor freed from now on goes to this listener.
func (g *acceptGate) hold(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reserved = on
	if !on {
		g.cond.Broadcast()
		return
	}
	if g.accepting {
		_ = g.ln.SetDeadline(time.Unix(1, 0))
	}
	for g.accepting && !g.closed {
		g.cond.Wait()
	}
}

// update is called by the actor whenever its limits or counts change: n is
// the connections it can still take, taken how many accepted connections it
// has just received (they stop counting as in flight).
func (g *acceptGate) update(n, taken int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inflight -= taken
	g.allowance = n
	if g.accepting && g.inflight > g.allowance {
		// The Accept in progress is no longer covered: wake it.
		_ = g.ln.SetDeadline(time.Unix(1, 0))
	}
	g.cond.Broadcast()
}

// close ends the gate: the goroutine stops waiting and sleeping, and the
// connections it accepted that the actor has not taken are closed (their
// acceptedConn may be queued behind the actor's Stop, and dropped).
func (g *acceptGate) close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.stop)
		g.cond.Broadcast()
	}
	g.mu.Unlock()
	g.accepted.close()
	unregisterGate(g)
}

// quiesce stops accepting without dropping what was accepted: the Accept in
// progress is woken, a connection it returns goes on to the actor whatever
// the allowance, and the goroutine then ends, saying so with acceptStopped.
func (g *acceptGate) quiesce() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.quiet || g.closed {
		return
	}
	g.quiet = true
	close(g.quietC)
	if g.accepting {
		_ = g.ln.SetDeadline(time.Unix(1, 0))
	}
	g.cond.Broadcast()
}

// take hands the actor the connection an acceptedConn announced; false: the
// gate closed and closed it.
func (g *acceptGate) take(m *acceptedConn) (net.Conn, bool) {
	return g.accepted.take(m.id)
}

// enter blocks the accept goroutine until it may call Accept once, and
// gives the listener to call it on; false means the gate is closed.
func (g *acceptGate) enter() (listener, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for !g.closed && !g.quiet && (g.inflight >= g.allowance || g.reserved) {
		g.cond.Wait()
	}
	if g.closed || g.quiet {
		return nil, false
	}
	g.inflight++
	g.accepting = true
	_ = g.ln.SetDeadline(time.Time{})
	return g.ln, true
}

// swap has the goroutine accept from ln from its next Accept on (a
// loop-mode server's raw accepts, once it has its loops: server_loops.go).
// An Accept in progress on the old listener is woken, so that the next
// connection is not accepted the old way; one that returns a connection
// all the same delivers it as usual.
func (g *acceptGate) swap(ln listener) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.accepting {
		_ = g.ln.SetDeadline(time.Unix(1, 0))
	}
	g.ln = ln
}

// leave records the end of an Accept; ok reports whether it produced a
// connection. The deadline cannot stop an Accept that is already past its
// deadline check, so a connection can arrive after its room went (a pause, a
// lower limit): leave then holds it, as the kernel backlog would have, until
// there is room again. It reports whether the connection may go on to the
// actor; false means the gate closed meanwhile.
func (g *acceptGate) leave(ok bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.accepting = false
	g.cond.Broadcast() // hold waits for the Accept to end
	if !ok {
		g.inflight--
		return true
	}
	for !g.closed && !g.quiet && g.inflight > g.allowance {
		g.cond.Wait()
	}
	return !g.closed
}

// sleep waits d unless the gate closes first.
func (g *acceptGate) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-g.stop:
		return false
	case <-g.quietC:
		return false
	}
}

// Messages from the accept goroutine to its ServerActor (local only).
type (
	// acceptedConn announces a connection the gate holds: the actor takes
	// it with acceptGate.take.
	acceptedConn struct {
		gen uint64
		id  uint64
	}
	acceptFailed struct {
		gen     uint64
		err     error
		backoff time.Duration
	}
	// acceptStopped is the accept goroutine's last message, whatever ended
	// it: after it, nothing more is accepted for this listen.
	acceptStopped struct{ gen uint64 }
)

// acceptLoop accepts while the gate allows and hands each connection to the
// actor. Listener closed: return. Allowance withdrawn (deadline): wait again.
// Anything else (EMFILE and friends): report, back off 5 ms doubling to 1 s,
// go on.
func acceptLoop(gate *acceptGate, gen uint64, send func(any)) {
	defer send(&acceptStopped{gen: gen})
	var backoff time.Duration
	for {
		ln, ok := gate.enter()
		if !ok {
			return
		}
		conn, err := ln.Accept()
		if !gate.leave(err == nil) {
			conn.Close() // held until the gate closed
			return
		}
		switch {
		case err == nil:
			backoff = 0
			id, held := gate.accepted.put(conn)
			if !held { // the gate closed meanwhile, and closed conn
				return
			}
			send(&acceptedConn{gen: gen, id: id})
		case errors.Is(err, net.ErrClosed):
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
		default:
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			send(&acceptFailed{gen: gen, err: err, backoff: backoff})
			if !gate.sleep(backoff) {
				return
			}
		}
	}
}
