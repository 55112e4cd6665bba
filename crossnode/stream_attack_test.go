package crossnode

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/remotenode"
	"google.golang.org/protobuf/proto"
)

// The attacks of issue 10 again, on the stream listener of a `tcpactor
// serve --remote-stream`, from this process (a peer that writes the
// stream's bytes itself). The frames are written here from the format's
// description (remotenode/stream_frame.go), not with its encoder.

const streamMagic = "TCPACTOR-STREAM/1\n"

// streamTicket asks the server's tcpactor-stream actor, through the
// remote, for a stream address and a ticket bound to the attacker's node.
func streamTicket(t *testing.T, p *servedProc) *messages.StreamWelcome {
	t.Helper()
	w := request[*messages.StreamWelcome](t, attacker(t), actor.NewPID(p.remote, remotenode.StreamActorName), &messages.StreamHello{})
	if w.Error.Failed() || w.Address == "" || len(w.Token) == 0 {
		t.Fatalf("StreamHello: %v", w)
	}
	return w
}

// openStream dials addr and writes first; accepted reports whether the
// server acknowledged the stream (one byte 1), refused that it closed it.
func openStream(t *testing.T, addr string, first []byte) (c net.Conn, accepted bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(first); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	var ack [1]byte
	n, err := c.Read(ack[:])
	_ = c.SetReadDeadline(time.Time{})
	switch {
	case n == 1 && ack[0] == 1:
		return c, true
	case n == 0 && err != nil && !isTimeout(err):
		return c, false
	}
	t.Fatalf("stream set-up answered %d bytes %v, %v: want the ack or the end", n, ack[:n], err)
	return nil, false
}

// rawFrame encodes one stream frame to the actor target (an id on the
// stream's node) from sender (nil: none).
func rawFrame(t *testing.T, target string, sender *actor.PID, msg proto.Message) []byte {
	t.Helper()
	str := func(b []byte, s string) []byte { return append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	b := make([]byte, 8)
	b = str(b, target)
	b = binary.AppendUvarint(b, 0)
	if sender != nil {
		b = str(b, sender.Address)
		b = str(b, sender.Id)
		b = binary.AppendUvarint(b, 0)
	} else {
		b = str(b, "")
	}
	b = binary.AppendUvarint(b, 0) // no headers
	b = str(b, string(proto.MessageName(msg)))
	b, err := proto.MarshalOptions{}.MarshalAppend(b, msg)
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// A stream listener closes, without a byte, every connection that is not
// a stream with a ticket the node issued and nobody used: bytes that are
// not a stream, silence, a made-up ticket, a ticket used once already. Each
// refusal is counted; the server goes on serving.
func TestStreamListenerRefusesConnectionsWithoutAValidTicket(t *testing.T) {
	p := startServe(t, "--handler", "echo", "--remote-stream")
	w := streamTicket(t, p)
	before := refusals(t, p.metrics, "forged")
	garbage := make([]byte, 64)
	_, _ = rand.Read(garbage)
	madeUp := append([]byte(streamMagic), make([]byte, len(w.Token))...)
	_, _ = rand.Read(madeUp[len(streamMagic):])
	valid := append([]byte(streamMagic), w.Token...)

	for _, c := range []struct {
		name  string
		first []byte
	}{
		{"garbage", garbage},
		{"silence", nil},
		{"a ticket the node never issued", madeUp},
	} {
		if _, ok := openStream(t, w.Address, c.first); ok {
			t.Fatalf("%s: the stream was accepted", c.name)
		}
	}
	if _, ok := openStream(t, w.Address, valid); !ok {
		t.Fatal("the stream with the node's ticket was refused")
	}
	if _, ok := openStream(t, w.Address, valid); ok {
		t.Fatal("a ticket used once already: the stream was accepted")
	}
	awaitRefusals(t, p, "forged", before+4)
	echoes(t, p.addr)
}

// A peer with a valid ticket is held to the rules of the remote: it cannot
// stop the server, watch for another node, nor write to a connection owned
// on another node (answered WriteFailed, as through the remote). The
// server and the owned connection go on.
func TestStreamWithATicketIsHeldToTheRemoteRules(t *testing.T) {
	p, _, conn, client := ownedConnection(t, "--remote-stream")
	w := streamTicket(t, p)
	s, ok := openStream(t, w.Address, append([]byte(streamMagic), w.Token...))
	if !ok {
		t.Fatal("the stream with the node's ticket was refused")
	}
	sys := attacker(t)
	thief := testkit.NewProbe(t, sys)
	system, connection := refusals(t, p.metrics, "system"), refusals(t, p.metrics, "connection")
	third := actor.NewPID("127.0.0.1:1", "victim")
	for _, f := range [][]byte{
		rawFrame(t, p.pid.Id, nil, &actor.Stop{}),
		rawFrame(t, p.pid.Id, nil, &actor.PoisonPill{}),
		rawFrame(t, p.pid.Id, nil, &actor.Watch{Watcher: third}),
		rawFrame(t, conn.Id, thief.PID, &messages.Write{Data: []byte("forged"), AckId: 7}),
	} {
		if _, err := s.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	awaitRefusals(t, p, "system", system+3)
	awaitRefusals(t, p, "connection", connection+1)
	if wf := testkit.Next[*messages.WriteFailed](t, thief); wf.AckId != 7 || wf.Error.GetCode() != messages.SocketError_SOCKET_ERROR_SOCKET_ACCESS {
		t.Fatalf("the forged Write was answered %v, want WriteFailed with SocketAccessError", wf)
	}
	echoOn(t, client, "still its owner's")
	echoes(t, p.addr)
	// The stream itself stays: refusals drop messages, not the peer.
	_ = s.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := s.Read(make([]byte, 1)); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("the stream: %v, want it open and silent", err)
	}
}
