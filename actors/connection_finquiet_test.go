package actors

import (
	"testing"

	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// An owner that claimed with peer_close_without_error hears the peer's FIN
// as PeerClosed alone, right after the last Received (the connection's
// error() is still RemoteHostClosedError); a reset is still an
// ErrorOccurred.
func TestAClaimWithPeerCloseWithoutErrorHearsTheFINAsPeerClosedAlone(t *testing.T) {
	sys := testkit.NewSystem(t)
	quiet := &messages.ClaimOptions{PeerCloseWithoutError: true}

	cc, sc := socketPair(t)
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{})
	owner := newInbox(t, sys)
	claim(t, sys, conn, owner.pid, quiet)
	if _, err := cc.Write([]byte("question")); err != nil {
		t.Fatal(err)
	}
	_ = cc.CloseWrite()
	if r := expectNext[*messages.Received](t, owner); string(r.Data) != "question" {
		t.Fatalf("Received %q", r.Data)
	}
	expectNext[*messages.PeerClosed](t, owner)
	if i := info(t, sys, conn); i.Error.GetCode() != messages.SocketError_SOCKET_ERROR_REMOTE_HOST_CLOSED {
		t.Fatalf("GetInfo.error after the peer's FIN: %v, want RemoteHostClosedError", i.Error)
	}
	sys.Root.Send(conn, &messages.Write{Data: []byte("answer"), AckId: 1})
	expectNext[*messages.WriteAck](t, owner)
	if a := call[*messages.Ack](t, sys, conn, &messages.Close{}); a.Error.Failed() {
		t.Fatal(a.Error)
	}
	if d := expectNext[*messages.Disconnected](t, owner); d.Error.Failed() {
		t.Fatalf("Disconnected after the peer's FIN and Close: %v", d.Error)
	}
	if got, err := readAll(t, cc); err != nil || string(got) != "answer" {
		t.Fatalf("peer read %q, %v; want \"answer\" then EOF", got, err)
	}

	cc, sc = socketPair(t)
	conn = startConn(t, sys, sc, 2, nil, ConnectionConfig{})
	owner = newInbox(t, sys)
	claim(t, sys, conn, owner.pid, quiet)
	_ = cc.SetLinger(0)
	cc.Close()
	if e := expectNext[*messages.ErrorOccurred](t, owner).Error; e.GetCode() != messages.SocketError_SOCKET_ERROR_REMOTE_HOST_CLOSED {
		t.Fatalf("ErrorOccurred after a reset: %v", e)
	}
	expectNext[*messages.PeerClosed](t, owner)
	expectNext[*messages.Disconnected](t, owner)
}
