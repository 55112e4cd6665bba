// Chat is a line-based chat room on tcpactor, in Akka's model: one room
// actor subscribes to the server's newConnection() signal and claims every
// connection as its owner, so it receives what each member sends (Received)
// and writes to the members (Write). Each line a member sends goes to every
// other member as "guestN: line"; members are told when someone joins or
// leaves. Try it with a few `nc 127.0.0.1 PORT`.
//
//	go run ./examples/chat --listen 127.0.0.1:0
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "`HOST:PORT` to listen on (port 0 picks one)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sys := actors.CompactRegistry(actor.NewActorSystem(actor.WithLoggerFactory(warnings)))
	defer sys.Shutdown()
	if err := run(ctx, sys, *listen, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		sys.Shutdown()
		os.Exit(1)
	}
}

// run serves the chat room on listen in sys until ctx ends. It prints
// "listening on HOST:PORT" once the server listens.
func run(ctx context.Context, sys *actor.ActorSystem, listen string, out io.Writer) error {
	l, err := messages.ParseListen(listen)
	if err != nil {
		return fmt.Errorf("--listen %w", err)
	}
	srv := server.Spawn(sys, server.Options{}) // no local handler: connections wait for an owner
	defer srv.Stop()
	room := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return newRoom(srv.PID()) }))
	defer func() { _ = sys.Root.StopFuture(room).Wait() }()
	// Subscribe before listening, so the room hears of every connection.
	if err := srv.Subscribe(ctx, room); err != nil {
		return err
	}
	addr, bound, err := srv.Listen(ctx, l.Address, uint16(l.Port), nil)
	if err != nil {
		return fmt.Errorf("unable to start the server: %w", err)
	}
	fmt.Fprintf(out, "listening on %s\n", net.JoinHostPort(addr, strconv.Itoa(int(bound))))
	<-ctx.Done()
	return nil
}

// maxLine bounds a line: a longer one is passed on in pieces.
const maxLine = 4 << 10

// room owns every connection of the chat.
type room struct {
	server  *actor.PID
	members map[string]*member // by connection PID
	guests  int
}

type member struct {
	conn *actor.PID
	name string
	line []byte // a line not ended yet
}

func newRoom(server *actor.PID) *room {
	return &room{server: server, members: map[string]*member{}}
}

func (r *room) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.NewConnection:
		// Claim it: the request's sender, the room, becomes the owner.
		ctx.Request(r.server, &messages.NextPendingConnection{})
	case *messages.PendingConnection:
		if m.Connection != nil {
			r.join(ctx, m.Connection)
		}
	case *messages.Received:
		r.received(ctx, m)
	case *messages.WriteFailed:
		// A member too slow to take its share: out, rather than hold the
		// room back or skip lines.
		ctx.Send(m.Connection, &messages.Abort{})
	case *messages.PeerClosed:
		// The member hung up: it has left. The connection waits for its
		// owner to close it (it could still be answered): close it now.
		r.leave(ctx, m.Connection)
		ctx.Send(m.Connection, &messages.Close{})
	case *messages.Disconnected:
		r.leave(ctx, m.Connection)
	}
	// When the room stops, every connection closes: a connection watches
	// its owner.
}

func (r *room) join(ctx actor.Context, conn *actor.PID) {
	r.guests++
	mb := &member{conn: conn, name: "guest" + strconv.Itoa(r.guests)}
	r.members[conn.String()] = mb
	r.write(ctx, mb, fmt.Appendf(nil, "welcome, %s: %d in the room\n", mb.name, len(r.members)))
	r.broadcast(ctx, mb, fmt.Appendf(nil, "* %s joined\n", mb.name))
}

func (r *room) received(ctx actor.Context, m *messages.Received) {
	mb, ok := r.members[m.Connection.String()]
	if !ok {
		return
	}
	data := m.Data
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			mb.line = append(mb.line, data...)
			if len(mb.line) >= maxLine {
				r.say(ctx, mb)
			}
			break
		}
		mb.line = append(mb.line, data[:i]...)
		data = data[i+1:]
		r.say(ctx, mb)
	}
	ctx.Send(m.Connection, &messages.Demand{N: 1}) // ready for the next chunk
}

func (r *room) say(ctx actor.Context, from *member) {
	line := bytes.TrimSuffix(from.line, []byte("\r"))
	r.broadcast(ctx, from, fmt.Appendf(nil, "%s: %s\n", from.name, line))
	from.line = from.line[:0]
}

func (r *room) leave(ctx actor.Context, conn *actor.PID) {
	mb, ok := r.members[conn.String()]
	if !ok {
		return
	}
	delete(r.members, conn.String())
	r.broadcast(ctx, mb, fmt.Appendf(nil, "* %s left\n", mb.name))
}

// broadcast writes data to every member but from.
func (r *room) broadcast(ctx actor.Context, from *member, data []byte) {
	for _, mb := range r.members {
		if mb != from {
			r.write(ctx, mb, data)
		}
	}
}

func (r *room) write(ctx actor.Context, to *member, data []byte) {
	ctx.Send(to.conn, &messages.Write{Data: data})
}

// warnings logs Proto.Actor's warnings and errors to stderr.
func warnings(*actor.ActorSystem) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
