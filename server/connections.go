package server

import (
	"context"

	"github.com/tcpactor/tcpactor/messages"
)

// StatusWithConnections is Status with ServerStatus.connections filled in:
// every live connection of the server, in accept order, with its addresses
// (after a PROXY header, the real client's) and TLS session as at accept
// (Ranch's procs and info).
func (s *Server) StatusWithConnections(ctx context.Context) (*messages.ServerStatus, error) {
	return call[*messages.ServerStatus](ctx, s, &messages.GetStatus{Connections: true})
}
