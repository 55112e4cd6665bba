package actors

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"google.golang.org/protobuf/proto"
)

// What the request fuzzers share: an actor system whose log is watched for
// panics, and a decoder that turns the fuzzer's bytes into a bounded
// sequence of operations — a request of the protocol with random field
// values (the bytes after the kind are unmarshalled into the message), or an
// action of the peer.

// fuzzBound is how long any reply may take; the machine running the fuzzer
// may be busy, so it is generous, but it is a bound.
const fuzzBound = 5 * time.Second

// maxFuzzOps bounds the operations of one input.
const maxFuzzOps = 24

// fuzzOp is one decoded operation: kind indexes the caller's table.
type fuzzOp struct {
	kind int
	body []byte
}

// decodeOps reads data as [kind][length][length bytes]... with kind taken
// modulo kinds.
func decodeOps(data []byte, kinds int) []fuzzOp {
	var ops []fuzzOp
	for len(data) >= 2 && len(ops) < maxFuzzOps {
		k, n := int(data[0])%kinds, int(data[1])
		data = data[2:]
		n = min(n, len(data))
		ops = append(ops, fuzzOp{kind: k, body: data[:n]})
		data = data[n:]
	}
	return ops
}

// encodeOps is decodeOps' inverse, for seeds.
func encodeOps(ops ...any) []byte {
	var out []byte
	for i := 0; i+1 < len(ops); i += 2 {
		body := []byte(nil)
		switch b := ops[i+1].(type) {
		case proto.Message:
			var err error
			if body, err = proto.Marshal(b); err != nil {
				panic(err)
			}
		case []byte:
			body = b
		case nil:
		default:
			panic(fmt.Sprintf("encodeOps: %T", b))
		}
		if len(body) > 255 {
			panic("encodeOps: body over 255 bytes")
		}
		out = append(out, byte(ops[i].(int)), byte(len(body)))
		out = append(out, body...)
	}
	return out
}

// replyActor is the sender of one fuzzed request: a real actor, as the Go
// facade uses (server.request), not a Proto.Actor future. A future takes
// the first system message it gets for its result, so a request that makes
// its sender the subscriber or owner (Subscribe or NextPendingConnection
// without one: "absent: the sender") would see the server's Watch as its
// reply — see TestSubscribeWithoutSubscriberFromAFutureIsAnsweredWithAnAck.
//
// It watches its target: Proto.Actor drops the user messages still queued
// at an actor when it stops (Stop is a system message and overtakes them),
// so a request that reaches a ConnectionActor as it ends itself gets no
// reply, and its sender learns of the end from Terminated instead.
type replyActor struct {
	pid     *actor.PID
	replies chan any
}

// targetEnded is what a replyActor reports when its target stopped without
// answering.
type targetEnded struct{}

// endedMarker is the message a replyActor sends itself on Terminated: it
// queues behind any reply already sent, which system messages overtake.
type endedMarker struct{}

// sendRequest sends req to pid from a new replyActor; stop it once done.
func sendRequest(sys *actor.ActorSystem, pid *actor.PID, req any) *replyActor {
	r := &replyActor{replies: make(chan any, 1)}
	offer := func(m any) {
		select {
		case r.replies <- m:
		default: // only the first reply counts
		}
	}
	r.pid = sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			c.Watch(pid)
			c.RequestWithCustomSender(pid, req, c.Self())
		case *actor.Terminated:
			if m.Who.Equal(pid) {
				c.Send(c.Self(), endedMarker{})
			}
		case endedMarker:
			offer(targetEnded{})
		case actor.SystemMessage, actor.AutoReceiveMessage:
		default:
			offer(m)
		}
	}))
	return r
}

// reply waits up to fuzzBound (plus extra) for the reply — or targetEnded
// — then stops the reply actor.
func (r *replyActor) reply(sys *actor.ActorSystem, extra time.Duration) (any, bool) {
	defer sys.Root.Stop(r.pid)
	select {
	case m := <-r.replies:
		return m, true
	case <-time.After(fuzzBound + extra):
		return nil, false
	}
}

// randomMessage is a new message of template's type with the fuzzer's
// bytes as its fields; bytes that do not parse leave what parsed.
func randomMessage(template proto.Message, body []byte) proto.Message {
	m := template.ProtoReflect().New().Interface()
	_ = proto.UnmarshalOptions{AllowPartial: true}.Unmarshal(body, m)
	return m
}

// panicLog records the log lines that say an actor panicked: the
// ConnectionActor's own recover ("panicked") and Proto.Actor's supervisor
// ("[ACTOR] Recovering", logged before a restart).
type panicLog struct {
	mu    sync.Mutex
	lines []string
}

func (p *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicLog) WithAttrs([]slog.Attr) slog.Handler       { return p }
func (p *panicLog) WithGroup(string) slog.Handler            { return p }
func (p *panicLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "panicked") && !strings.Contains(r.Message, "Recovering") {
		return nil
	}
	line := r.Message
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	p.mu.Lock()
	p.lines = append(p.lines, line)
	p.mu.Unlock()
	return nil
}

// take returns and forgets what was recorded.
func (p *panicLog) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.lines
	p.lines = nil
	return l
}

// newFuzzSystem is an actor system for one fuzz target, its log watched for
// panics; it shuts down when the target ends.
func newFuzzSystem(f *testing.F) (*actor.ActorSystem, *panicLog) {
	f.Helper()
	pl := &panicLog{}
	opts := append(testkit.SystemOptions(), actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(pl) }))
	sys := actor.NewActorSystem(opts...)
	f.Cleanup(sys.Shutdown)
	return sys, pl
}

// noPanics fails the input if an actor panicked while it ran.
func noPanics(t *testing.T, pl *panicLog) {
	t.Helper()
	if l := pl.take(); len(l) > 0 {
		t.Fatalf("an actor panicked:\n%s", strings.Join(l, "\n"))
	}
}

// openFDs counts this process's descriptors.
func openFDs(t testing.TB) int { return testkit.OpenFDs(t) }

// fdsBackTo waits until the process has at most base descriptors again:
// every socket the input made is closed. A fuzzing worker process is left
// out: the fuzzer itself opens descriptors in it (its shared memory with the
// coordinator), so there clientsStillConnected is the check.
func fdsBackTo(t *testing.T, base int, what string) {
	t.Helper()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		return
	}
	deadline := time.Now().Add(fuzzBound)
	for {
		n := openFDs(t)
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d descriptors open, %d before the input", what, n, base)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// clientsStillConnected returns the clients whose server end was not
// closed: each client reads, past whatever the server wrote, until an EOF
// or a reset, and those that reach the bound instead are returned. Every
// client is closed.
func clientsStillConnected(clients []net.Conn) []net.Conn {
	var open []net.Conn
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(fuzzBound)
	for _, c := range clients {
		_ = c.SetReadDeadline(deadline)
		for {
			_, err := c.Read(buf)
			if err == nil {
				continue
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				open = append(open, c)
			}
			break
		}
		c.Close()
	}
	return open
}

// isListeningSocket says whether fd is a listening socket of this process.
func isListeningSocket(fd int64) bool {
	if fd < 0 || fd > 1<<30 {
		return false
	}
	on, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	return err == nil && on == 1
}

// freshListenerFD is a listening socket on 127.0.0.1 as a bare descriptor
// that the caller owns.
func freshListenerFD(t *testing.T) int64 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return int64(fd)
}
