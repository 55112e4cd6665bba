package actors

import (
	"cmp"
	"net"
	"slices"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/protobuf/proto"
)

// The server's side of its live connections: how it spawns them, what it
// keeps of each, and GetStatus{connections}. An idle connection's every
// byte counts (issue 14), so what the server keeps per connection is small:
// one shared Props, no watch, and an info built when asked.

// liveConn is the server's record of a live connection, from which
// GetStatus{connections} reports it as it was at accept. A plain TCP
// connection keeps only its socket (a *net.TCPConn, whose addresses Go
// caches, or a raw socket, asked when needed): its info is built again when
// asked. Any other (TLS, a hook's wrapper, one added with
// AddPendingConnection, in an addedConn) keeps the info made at accept. One
// field holds any of them, so the record stays 24 bytes and the server's
// map slot 40 (issue 14).
type liveConn struct {
	src any    // the plain socket (net.Conn), the *messages.ConnectionInfo, or an addedConn
	id  uint64 // with a socket
}

// addedConn is the info of a connection added with AddPendingConnection,
// which the server watches for its end. One pointer: in an interface it is
// not boxed.
type addedConn struct{ info *messages.ConnectionInfo }

// added says whether the connection came by AddPendingConnection.
func (l liveConn) added() bool {
	_, ok := l.src.(addedConn)
	return ok
}

func newLiveConn(conn net.Conn, id uint64, info *messages.ConnectionInfo) liveConn {
	if plainTCP(conn) {
		return liveConn{src: conn, id: id}
	}
	return liveConn{src: info}
}

// infoAt is the connection's info as at accept, a fresh message: the kept
// one also travelled in NewConnection, perhaps to a local actor that still
// holds it.
func (l liveConn) infoAt(server *actor.PID) *messages.ConnectionInfo {
	var conn net.Conn
	switch src := l.src.(type) {
	case addedConn:
		return proto.Clone(src.info).(*messages.ConnectionInfo)
	case *messages.ConnectionInfo:
		return proto.Clone(src).(*messages.ConnectionInfo)
	default:
		conn = src.(net.Conn)
	}
	info := ConnectionInfoOf(conn, l.id)
	info.Server = server
	return info
}

// infoOf is the info of a live connection as at accept; nil for one the
// server does not know.
func (s *ServerActor) infoOf(ctx actor.Context, pid *actor.PID) *messages.ConnectionInfo {
	if !s.isLive(ctx, pid) {
		return nil
	}
	info := s.live[pid.Id].infoAt(ctx.Self())
	info.NodeStartId = s.nodeStartID(ctx)
	return info
}

// nodeStartID is the node's StartID, which each ConnectionInfo the server
// gives names: an owner on another node checks a report of this node's
// loss against it.
func (s *ServerActor) nodeStartID(ctx actor.Context) uint64 {
	if s.startID == 0 {
		s.startID = StartID(ctx.ActorSystem())
	}
	return s.startID
}

// isLive says whether pid is a live connection of this server.
func (s *ServerActor) isLive(ctx actor.Context, pid *actor.PID) bool {
	_, ok := s.live[pid.Id]
	return ok && IsLocalAddress(ctx.ActorSystem(), pid.Address)
}

// spawnConnection spawns the ConnectionActor of an accepted connection,
// from the server's one Props: the producer hands over the connection made
// here (Proto.Actor calls it inside the spawn, on this goroutine), so no
// Props and no closure are made per connection. The connection tells the
// server when it stops (connection.onStopped) instead of being watched.
func (s *ServerActor) spawnConnection(ctx actor.Context, conn net.Conn, id uint64) *actor.PID {
	if s.connProps == nil {
		s.connCfg = s.opts.Connection.withDefaults()
		s.connProps = actor.PropsFromProducer(func() actor.Actor {
			if s.spawning == nil {
				return replacedConnection{}
			}
			return s.spawning
		}, actor.WithDispatcher(connectionDispatcher), actor.WithMailbox(connectionMailbox))
	}
	c := newConnection(conn, id, ctx.Self(), s.connCfg)
	c.tellServer = true
	s.spawning = c
	defer func() { s.spawning = nil }()
	return spawnConnection(ctx.ActorSystem().Root, s.connProps)
}

// replacedConnection is what the shared Props make when Proto.Actor
// restarts a connection, which it never should: Receive's recover stops a
// connection that panics, but a panic in that recovery would reach
// Proto.Actor's supervision, which restarts. The Props have no connection to
// give then; the restarted one has torn down and told its server (its
// Restarting), and this stops at once, leaving the registry of connections.
type replacedConnection struct{}

func (replacedConnection) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		ctx.Stop(ctx.Self())
	case *actor.Stopped:
		liveConnections.delete(connKey{ctx.ActorSystem(), ctx.Self().Id})
	}
}

// statusOf answers GetStatus: the getters, and when asked every live
// connection (Ranch's procs/info). The infos are those made at accept:
// listing them asks no connection anything, so a server with many
// connections answers at once.
func (s *ServerActor) statusOf(ctx actor.Context, m *messages.GetStatus) *messages.ServerStatus {
	st := s.status()
	if !m.GetConnections() {
		return st
	}
	st.Connections = make([]*messages.ConnectionInfo, 0, len(s.live))
	for _, l := range s.live {
		st.Connections = append(st.Connections, l.infoAt(ctx.Self()))
	}
	slices.SortFunc(st.Connections, func(a, b *messages.ConnectionInfo) int { return cmp.Compare(a.Id, b.Id) })
	return st
}
