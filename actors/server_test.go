package actors

import (
	"testing"

	"github.com/tcpactor/tcpactor/messages"
)

func TestListenOnLoopbackPicksAPortAndReportsIt(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	st := s.status()
	if !st.Listening || st.Address != "127.0.0.1" || st.Port == 0 || st.SocketDescriptor < 0 {
		t.Fatalf("status after listen: %v", st)
	}
	dial(t, addr)
	st = s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
	if !st.HasPendingConnections || st.AcceptedTotal != 1 || st.Active != 1 {
		t.Fatalf("status after one client: %v", st)
	}
}
