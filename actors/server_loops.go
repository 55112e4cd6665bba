package actors

import (
	"log/slog"
	"net"
	"runtime"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// A loop-mode server holds the process's event loops from its Listen to
// its close, so that they run before its first accept. Made by the first
// connection instead, they needed descriptors (one epoll instance each)
// just when a burst of accepts may have taken every one: the connections
// then fell back to the goroutine reader, whose promotion of the raw
// socket needs a duplicate descriptor too, and each was closed as soon as
// accepted — the server cycled at the limit without serving anyone. With
// the loops already running, a connection joins one with epoll_ctl, which
// needs no descriptor. An idle server costs the loops (four per
// GOMAXPROCS, each a parked goroutine and an epoll descriptor, for the
// whole process), not a goroutine per connection.
//
// A server that cannot make them at Listen (out of descriptors) listens
// all the same, accepting net.TCPConns, and tries again as it accepts
// (retryLoops): an accept is when the loops would serve, and it needed a
// descriptor itself. Once the loops are made the server accepts raw
// sockets into them from its next Accept on, not from its next Listen.

// loopAccept is a loop-mode server's hold on the event loops, and what it
// needs to try again for them while it has none.
type loopAccept struct {
	held bool // holds the process's event loops (holdEventLoops)
	// plain is the listener while it accepts net.TCPConns for want of the
	// loops or of its duplicate (rawAccepting), to be made raw at an
	// accept (retryLoops); nil otherwise.
	plain *net.TCPListener
	owned bool      // plain is the server's own socket: rawAccepting may set its options
	tried time.Time // the last try at an accept
}

// loopRetryInterval bounds how often a server tries for its loops at its
// accepts: the first accept after Listen tries, then one at most every
// 100 ms. A try that fails still makes and closes epoll descriptors (up to
// four per GOMAXPROCS) just when descriptors are short and each of its
// accepts needs one: tried at every accept of a burst, it would take
// their descriptors and double their system calls. What waiting costs is
// small: a connection accepted meanwhile is a net.TCPConn, read by a
// goroutine or, once the loops run, by a loop all the same (it tries them
// when it starts), only not raw.
const loopRetryInterval = 100 * time.Millisecond

// loopAccepting is the listener a loop-mode server accepts from: ln
// accepting raw sockets (rawAccepting), once the server holds the loops.
// When the loops cannot be made (out of descriptors at Listen), it says so
// and returns ln as it is: the server listens all the same, its
// connections are net.TCPConns that a goroutine can read without a
// duplicate descriptor, and each tries the loops again when it starts (as
// does the server at its accepts: retryLoops).
func (s *ServerActor) loopAccepting(ctx actor.Context, ln listener, owned bool) listener {
	s.loops.plain, s.loops.tried = nil, time.Time{}
	acc, err := s.rawWithLoops(ln, owned)
	if err != nil {
		ctx.Logger().Warn("tcpactor: no event loops for a loop-mode server: its connections are read by goroutines until the loops can be made, which it tries again as it accepts",
			slog.String("server", ctx.Self().String()), slog.String("address", ln.Addr().String()), slog.Any("error", err))
	}
	// Raw sockets are Linux's: elsewhere a listener stays as it is, and
	// there is nothing to try again.
	if tl, ok := ln.(*net.TCPListener); ok && acc == ln && runtime.GOOS == "linux" {
		s.loops.plain, s.loops.owned = tl, owned
	}
	return acc
}

// rawWithLoops holds the loops, unless the server does already, and gives
// ln accepting raw sockets (rawAccepting, which gives ln itself when it
// cannot); ln itself and the error when the loops cannot be made.
func (s *ServerActor) rawWithLoops(ln listener, owned bool) (listener, error) {
	if !s.loops.held {
		if err := holdEventLoops(); err != nil {
			return ln, err
		}
		s.loops.held = true
	}
	return rawAccepting(ln, owned), nil
}

// retryLoops tries again, at an accept, for what the server's Listen could
// not have: its loops, and raw accepts (at most every loopRetryInterval).
// Once it has them, the accept goroutine accepts raw sockets from its next
// Accept on; the connection in hand was accepted a net.TCPConn, and joins
// a loop when it starts. It does not try while the descriptor reserve is
// in use: the loops would take the descriptor the reserve has just freed.
func (s *ServerActor) retryLoops(ctx actor.Context) {
	l := &s.loops
	if l.plain == nil || time.Since(l.tried) < loopRetryInterval {
		return
	}
	var acc listener
	if !outsideDescriptorReserve(func() { acc, _ = s.rawWithLoops(l.plain, l.owned) }) {
		return // the next accept tries
	}
	l.tried = time.Now()
	if acc == listener(l.plain) {
		return
	}
	l.plain = nil
	s.ln = acc // its Close closes what it added
	s.gate.swap(acc)
	ctx.Logger().Info("tcpactor: a loop-mode server has made its event loops: it accepts raw sockets into them from now on",
		slog.String("server", ctx.Self().String()), slog.String("address", acc.Addr().String()))
}

// releaseLoops lets the loops go when the server stops listening; its
// connections that still read through them hold them on.
func (s *ServerActor) releaseLoops() {
	if s.loops.held {
		releaseEventLoops()
	}
	s.loops = loopAccept{}
}
