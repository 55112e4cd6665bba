//go:build serverstub

package actors

import (
	"net"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// TEMPORARY stub so the server can be tested before the ConnectionActor lands.
func NewConnection(conn net.Conn, id uint64, server *actor.PID, cfg ConnectionConfig) *actor.Props {
	return actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.SetOwner:
			ctx.Watch(m.Owner)
		case *messages.GetInfo:
			ctx.Respond(ConnectionInfoOf(conn, id))
		case *messages.Close:
			ctx.Stop(ctx.Self())
		case *actor.Stopping:
			conn.Close()
		}
	})
}
