package actors

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
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

func TestServerClosesListenerAndUnclaimedConnectionsWhenItsSystemShutsDown(t *testing.T) {
	sys := actor.NewActorSystem(testkit.SystemOptions()...)
	s := &testServer{t: t, sys: sys, pid: sys.Root.Spawn(NewServer(ServerOptions{}))}
	addr := s.listen()
	client := dial(t, addr)
	s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })

	sys.Shutdown()

	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := client.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("unclaimed client read %d bytes, %v: want EOF or reset", n, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepts after the system shut down")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
