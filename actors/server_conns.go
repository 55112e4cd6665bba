package actors

import (
	"cmp"
	"slices"

	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/protobuf/proto"
)

// statusOf answers GetStatus: the getters, and when asked every live
// connection (Ranch's procs/info). The infos are those made at accept, kept
// by the server for as long as it watches the connection: listing them asks
// no connection anything, so a server with many connections answers at once.
func (s *ServerActor) statusOf(m *messages.GetStatus) *messages.ServerStatus {
	st := s.status()
	if !m.GetConnections() {
		return st
	}
	st.Connections = make([]*messages.ConnectionInfo, 0, len(s.live))
	for _, info := range s.live {
		// A copy: the kept info also travelled in NewConnection, perhaps to
		// a local actor that still holds it.
		st.Connections = append(st.Connections, proto.Clone(info).(*messages.ConnectionInfo))
	}
	slices.SortFunc(st.Connections, func(a, b *messages.ConnectionInfo) int { return cmp.Compare(a.Id, b.Id) })
	return st
}
