package actors

import (
	"log/slog"

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
// needs no descriptor. An idle server costs the loops (two per
// GOMAXPROCS, each a parked goroutine and an epoll descriptor, for the
// whole process), not a goroutine per connection.

// loopAccepting is the listener a loop-mode server accepts from: ln
// accepting raw sockets (rawAccepting), once the server holds the loops.
// When the loops cannot be made (out of descriptors at Listen), it says so
// and returns ln as it is: the server listens all the same, its
// connections are net.TCPConns that a goroutine can read without a
// duplicate descriptor, and each tries the loops again when it starts (as
// does the server's next Listen).
func (s *ServerActor) loopAccepting(ctx actor.Context, ln listener, owned bool) listener {
	if !s.loops {
		if err := holdEventLoops(); err != nil {
			ctx.Logger().Warn("tcpactor: no event loops for a loop-mode server: its connections are read by goroutines until the loops can be made",
				slog.String("server", ctx.Self().String()), slog.String("address", ln.Addr().String()), slog.Any("error", err))
			return ln
		}
		s.loops = true
	}
	return rawAccepting(ln, owned)
}

// releaseLoops lets the loops go when the server stops listening; its
// connections that still read through them hold them on.
func (s *ServerActor) releaseLoops() {
	if s.loops {
		s.loops = false
		releaseEventLoops()
	}
}
