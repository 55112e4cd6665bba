package remotenode

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
)

// Setting a stream up. The dialling node A asks B's "tcpactor-stream"
// actor, through the remote, for a StreamWelcome: B's stream address and a
// ticket B binds to A (the node B's guard named on the StreamHello). A
// dials, writes streamMagic and the ticket, and waits for streamAccepted;
// B redeems the ticket once and from then on takes every frame of that
// connection as sent by A. With TLS, A's client certificate must also
// name A's host, as on the remote (guard_identity.go).

// streamMagic opens every stream, so that a stray client fails at once.
const streamMagic = "TCPACTOR-STREAM/1\n"

const (
	ticketLen  = 32
	ticketTTL  = 30 * time.Second
	maxTickets = 4096 // outstanding; a flood of StreamHello cannot grow them further

	streamAccepted = 1
)

var errStopped = errors.New("stream transport stopped")

// tickets are the outstanding tickets of one node: ticket → node it was
// issued to, until redeemed once or expired.
type tickets struct {
	mu sync.Mutex
	m  map[string]ticket
}

type ticket struct {
	node    string
	expires time.Time
}

func (k *tickets) issue(node string) []byte {
	tok := make([]byte, ticketLen)
	_, _ = rand.Read(tok) // never fails (crypto/rand's contract since Go 1.24)
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string]ticket{}
	}
	if len(k.m) >= maxTickets {
		for s, t := range k.m {
			if now.After(t.expires) {
				delete(k.m, s)
			}
		}
		if len(k.m) >= maxTickets { // all fresh: the oldest go first, whoever asked
			for s := range k.m {
				delete(k.m, s)
				if len(k.m) < maxTickets/2 {
					break
				}
			}
		}
	}
	k.m[string(tok)] = ticket{node: node, expires: now.Add(ticketTTL)}
	return tok
}

// redeem takes a ticket: the node it was issued to, or false when it is
// unknown, expired or already used.
func (k *tickets) redeem(tok []byte) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t, ok := k.m[string(tok)]
	delete(k.m, string(tok))
	if !ok || time.Now().After(t.expires) {
		return "", false
	}
	return t.node, true
}

// helloActor is the well-known "tcpactor-stream" actor: it answers a
// StreamHello from another node with a ticket bound to that node.
type helloActor struct{ t *StreamTransport }

func (a *helloActor) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*messages.StreamHello); !ok {
		return
	}
	snd := ctx.Sender()
	if snd == nil {
		return
	}
	peer := helloPeer(ctx)
	if peer == "" || a.t.isLocal(snd.Address) {
		ctx.Respond(&messages.StreamWelcome{Error: messages.NewError(messages.SocketError_SOCKET_ERROR_SOCKET_ACCESS,
			"a stream is for another node; %s is this node's", snd)})
		return
	}
	if err := a.t.Listen(); err != nil {
		if err != errStopped {
			a.t.log.Warn("tcpactor: the stream listener cannot listen; peers' messages come through the remote", "error", err)
		}
		a.t.directProcess(snd).SendUserMessage(snd, &messages.StreamWelcome{
			Error: messages.NewError(messages.SocketError_SOCKET_ERROR_SOCKET_RESOURCE, "no stream listener: %v", err)})
		return
	}
	w := &messages.StreamWelcome{Address: a.t.Address(), Token: a.t.tickets.issue(peer), NodeStartId: actors.StartID(a.t.sys)}
	// Through the remote, not the lane to the asker: the asker may be
	// setting its own stream up and this node its stream to the asker,
	// each lane waiting for the other's answer.
	a.t.directProcess(snd).SendUserMessage(snd, w)
}

// helloPeer is the node a StreamHello came from: the one the guard stamped
// on it, or (on a node without a guard) its sender's, the peer's word.
func helloPeer(ctx actor.Context) string {
	if h := ctx.MessageHeader(); h != nil {
		if p := h.Get(actors.RemotePeerHeader); p != "" {
			return p
		}
	}
	return ctx.Sender().Address
}

// dial sets up this node's stream to the node at addr: conn to use, raw
// its TCP connection (the same without TLS), which the transport tracks,
// and the start id the node named in its welcome (0: none).
func (t *StreamTransport) dial(addr string) (conn, raw net.Conn, start uint64, err error) {
	fut := actor.NewFuture(t.sys, t.timeout)
	target := actor.NewPID(addr, StreamActorName)
	t.directProcess(target).SendUserMessage(target, &actor.MessageEnvelope{Message: &messages.StreamHello{}, Sender: fut.PID()})
	res, err := fut.Result()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("StreamHello: %w", err)
	}
	w, ok := res.(*messages.StreamWelcome)
	switch {
	case !ok:
		return nil, nil, 0, fmt.Errorf("StreamHello answered with %T", res)
	case w.Error != nil:
		return nil, nil, 0, fmt.Errorf("StreamHello refused: %s", w.Error.GetMessage())
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, 0, err
	}
	if h, _, err := net.SplitHostPort(w.Address); err != nil || h != host {
		return nil, nil, 0, fmt.Errorf("the peer's stream address %q is not on its host %s", w.Address, host)
	}
	d := net.Dialer{Timeout: t.timeout}
	raw, err = d.Dial("tcp", w.Address)
	if err != nil {
		return nil, nil, 0, err
	}
	if !t.track(raw) {
		raw.Close()
		return nil, nil, 0, errStopped
	}
	if conn, err = t.present(raw, host, w.Token); err != nil {
		t.untrack(raw)
		return nil, nil, 0, err
	}
	return conn, raw, w.NodeStartId, nil
}

// present does the dialler's side of a stream's set-up on raw.
func (t *StreamTransport) present(raw net.Conn, host string, token []byte) (net.Conn, error) {
	if err := raw.SetDeadline(time.Now().Add(t.timeout)); err != nil {
		return nil, err
	}
	conn := raw
	if t.clientT != nil {
		cfg := t.clientT.Clone()
		cfg.ServerName = host
		tc := tls.Client(raw, cfg)
		if err := tc.Handshake(); err != nil {
			return nil, err
		}
		conn = tc
	}
	pre := append([]byte(streamMagic), token...)
	if _, err := conn.Write(pre); err != nil {
		return nil, err
	}
	var ack [1]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		return nil, fmt.Errorf("the peer refused the stream: %w", err)
	}
	if ack[0] != streamAccepted {
		return nil, fmt.Errorf("the peer refused the stream (%d)", ack[0])
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return conn, nil
}

// acceptLoop accepts the streams peers dial, as net/http's Serve: on a
// temporary error it waits 5 ms doubling to 1 s; a closed listener ends it.
func (t *StreamTransport) acceptLoop(ln net.Listener) {
	defer t.wg.Done()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || t.isStopped() {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("tcpactor: stream listener: accept failed; retrying", "error", err, "in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if !t.track(c) {
			c.Close()
			return
		}
		t.wg.Add(1)
		go t.serveIncoming(c)
	}
}

// serveIncoming checks the ticket of a stream a peer dialled, then reads
// its frames until it ends.
func (t *StreamTransport) serveIncoming(raw net.Conn) {
	defer t.wg.Done()
	defer t.untrack(raw)
	from := raw.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(from); err == nil {
		from = h // refusals are logged per host, not per connection
	}
	refuse := func(why string) {
		t.refused.Add(1)
		actors.RefuseRemote(t.log, actors.RefusedForged, "stream from "+from, why+": stream refused")
	}
	if err := raw.SetDeadline(time.Now().Add(t.timeout)); err != nil {
		return
	}
	conn := raw
	if t.serverT != nil {
		tc := tls.Server(raw, t.serverT)
		if err := tc.Handshake(); err != nil {
			refuse("TLS handshake: " + err.Error())
			return
		}
		conn = tc
	}
	pre := make([]byte, len(streamMagic)+ticketLen)
	if _, err := io.ReadFull(conn, pre); err != nil {
		refuse("no ticket: " + err.Error())
		return
	}
	if !bytes.Equal(pre[:len(streamMagic)], []byte(streamMagic)) {
		refuse("not a tcpactor stream")
		return
	}
	peer, ok := t.tickets.redeem(pre[len(streamMagic):])
	if !ok {
		refuse("an unknown, expired or used ticket")
		return
	}
	if tc, ok := conn.(*tls.Conn); ok {
		st := tc.ConnectionState()
		if len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
			refuse("no verified client certificate")
			return
		}
		if why := certNamesNode(st.VerifiedChains[0][0], peer); why != "" {
			refuse(why)
			return
		}
	}
	if _, err := conn.Write([]byte{streamAccepted}); err != nil {
		return
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return
	}
	t.readFrames(conn, peer)
}

// readFrames delivers the frames of an incoming stream from peer, each as
// the remote's endpoint reader would, after the guard's rules.
func (t *StreamTransport) readFrames(conn net.Conn, peer string) {
	fr := newFrameReader(conn, t.sys.Address())
	stamp := map[string]string{actors.RemotePeerHeader: peer} // shared, read-only, by the frames without headers
	for {
		f, err := fr.next()
		if err != nil {
			if errors.Is(err, errBadFrame) {
				t.refused.Add(1)
				actors.RefuseRemote(t.log, actors.RefusedUnreadable, peer, err.Error()+": stream closed")
			}
			return
		}
		t.received.Add(1)
		t.deliver(peer, stamp, f)
	}
}

// deliver hands one frame from peer to its local target.
func (t *StreamTransport) deliver(peer string, stamp map[string]string, f *inFrame) {
	if f.decodeFail != nil {
		t.dropped.Add(1)
		actors.RefuseRemote(t.log, actors.RefusedUnreadable, peer, "dropped a message this node cannot read: "+f.decodeFail.Error())
		return
	}
	if reason, why := peerMayNotSend(t.isLocal, peer, f.name, f.sender, func() (any, error) { return f.msg, nil }); why != "" {
		t.refused.Add(1)
		actors.RefuseRemote(t.log, reason, peer, why)
		return
	}
	ref, _ := t.sys.ProcessRegistry.GetLocal(f.target.Id)
	switch m := f.msg.(type) {
	case *actor.Terminated:
		if l, ok := t.lanes.Load(peer); ok {
			l.(*lane).ended(f.target, m.Who)
		}
		ref.SendSystemMessage(f.target, m)
	case actor.SystemMessage:
		ref.SendSystemMessage(f.target, m)
	default:
		h := stamp
		if f.header != nil {
			f.header[actors.RemotePeerHeader] = peer
			h = f.header
		}
		ref.SendUserMessage(f.target, &actor.MessageEnvelope{Header: h, Message: m, Sender: f.sender})
	}
}
