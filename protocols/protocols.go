// Package protocols holds the demo protocols of the examples, the CLI and
// the benchmark, as local handlers: echo, discard, Qt's Fortune Server and
// a chat room, chosen by name with HandlerByName.
package protocols

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"unicode/utf16"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
)

// Echo is the handler factory of an echo server: every byte received is
// written back (see actors.EchoHandler).
func Echo() actors.HandlerFactory { return actors.EchoHandler() }

// Discard is the handler factory of a sink: bytes are read and dropped, one
// more chunk granted per chunk received.
func Discard() actors.HandlerFactory {
	return func() actors.Handler { return discardHandler{} }
}

type discardHandler struct{ actors.BaseHandler }

func (discardHandler) Received(s *actors.Socket, _ []byte) { s.Demand(1) }

// HandlerNames lists the names HandlerByName knows.
const HandlerNames = "echo, discard, fortune, chat or none"

// HandlerByName maps a handler's command-line name to its factory: "echo",
// "discard", "fortune" (Qt's Fortune Server), "chat" (one chat room for all
// connections), or "none" (nil: connections wait in the pending queue for an
// owner actor).
func HandlerByName(name string) (actors.HandlerFactory, error) {
	switch name {
	case "echo":
		return Echo(), nil
	case "discard":
		return Discard(), nil
	case "fortune":
		return Fortune(nil), nil
	case "chat":
		return Chat(), nil
	case "none":
		return nil, nil
	default:
		return nil, fmt.Errorf("unknown handler %q: want %s", name, HandlerNames)
	}
}

// ---------------------------------------------------------------------------
// Qt's Fortune Server

// Fortunes are the fortunes of Qt's Fortune Server example.
var Fortunes = []string{
	"You've been leading a dog's life. Stay off the furniture.",
	"You've got to think about tomorrow.",
	"You will be surprised by a loud noise.",
	"You will feel hungry again in another hour.",
	"You might have mail.",
	"You cannot kill time without injuring eternity.",
	"Computers are not intelligent. They only think they are.",
}

// QString serializes s exactly as Qt's `QDataStream << QString` does (every
// stream version since Qt 4): the byte length as a big-endian quint32, then
// the UTF-16 code units, big-endian.
func QString(s string) []byte {
	units := utf16.Encode([]rune(s))
	b := make([]byte, 4+2*len(units))
	binary.BigEndian.PutUint32(b, uint32(2*len(units)))
	for i, u := range units {
		binary.BigEndian.PutUint16(b[4+2*i:], u)
	}
	return b
}

// Fortune is the handler factory of Qt's Fortune Server: each connection
// gets one fortune, picked at random from fortunes (Fortunes when empty) and
// written as a QDataStream QString, then the server disconnects (flush, FIN).
// Qt's Fortune Client reads it with a QDataStream transaction.
func Fortune(fortunes []string) actors.HandlerFactory {
	if len(fortunes) == 0 {
		fortunes = Fortunes
	}
	return func() actors.Handler { return fortuneHandler{fortunes: fortunes} }
}

type fortuneHandler struct {
	actors.BaseHandler
	fortunes []string
}

func (h fortuneHandler) Connected(s *actors.Socket) {
	s.Write(QString(h.fortunes[rand.IntN(len(h.fortunes))]), 0)
	s.Close()
}

// ---------------------------------------------------------------------------
// chat

// maxChatLine bounds a chat line: a longer one is passed on in pieces.
const maxChatLine = 4 << 10

// Chat is the handler factory of a line-based chat room: every connection
// made with it joins one room actor, and each line a member sends ("\n"
// ends it) goes to every other member as "ID: line\n". The room is spawned
// in the connection's actor system on first use, one per system. A member
// too slow to take its share of the traffic (its write queue fills) is
// disconnected rather than allowed to hold the others back.
func Chat() actors.HandlerFactory {
	rooms := &chatRooms{pids: map[*actor.ActorSystem]*actor.PID{}}
	return func() actors.Handler { return &chatHandler{rooms: rooms} }
}

// Messages between a chat member's handler and the room, local only.
type (
	chatJoin struct{ member *actor.PID }
	chatLine struct {
		from *actor.PID
		text []byte
	}
	chatWrite struct{ data []byte }
)

type chatRooms struct {
	mu   sync.Mutex
	pids map[*actor.ActorSystem]*actor.PID
}

func (r *chatRooms) room(sys *actor.ActorSystem) *actor.PID {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, ok := r.pids[sys]
	if !ok {
		pid = sys.Root.SpawnPrefix(actor.PropsFromProducer(func() actor.Actor {
			return &chatRoom{members: map[string]*actor.PID{}}
		}), "chatroom")
		r.pids[sys] = pid
	}
	return pid
}

// chatRoom broadcasts the lines of its members. It watches each member and
// forgets it when its connection ends.
type chatRoom struct {
	members map[string]*actor.PID
}

func (c *chatRoom) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *chatJoin:
		c.members[m.member.String()] = m.member
		ctx.Watch(m.member)
	case *chatLine:
		w := &chatWrite{data: m.text}
		for key, pid := range c.members {
			if key != m.from.String() {
				ctx.Send(pid, w)
			}
		}
	case *actor.Terminated:
		delete(c.members, m.Who.String())
	}
}

type chatHandler struct {
	actors.BaseHandler
	rooms *chatRooms
	room  *actor.PID
	line  []byte
}

func (h *chatHandler) Connected(s *actors.Socket) {
	h.room = h.rooms.room(s.Context().ActorSystem())
	s.Context().Send(h.room, &chatJoin{member: s.Self()})
}

func (h *chatHandler) Received(s *actors.Socket, data []byte) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			h.line = append(h.line, data...)
			if len(h.line) >= maxChatLine {
				h.say(s)
			}
			break
		}
		h.line = append(h.line, data[:i]...)
		data = data[i+1:]
		h.say(s)
	}
	s.Demand(1)
}

// say sends the line gathered so far to the room.
func (h *chatHandler) say(s *actors.Socket) {
	text := fmt.Appendf(nil, "%d: %s\n", s.ID(), bytes.TrimSuffix(h.line, []byte("\r")))
	h.line = h.line[:0]
	s.Context().Send(h.room, &chatLine{from: s.Self(), text: text})
}

// Message takes the room's broadcasts.
func (h *chatHandler) Message(s *actors.Socket, msg any) {
	if m, ok := msg.(*chatWrite); ok {
		s.Write(m.data, 0)
	}
}

// WriteFailed disconnects a member whose write queue is full.
func (h *chatHandler) WriteFailed(s *actors.Socket, _ uint64, _ *messages.Error) { s.Abort() }

// PeerClosed keeps nothing open: the member has left.
func (h *chatHandler) PeerClosed(*actors.Socket) bool { return false }
