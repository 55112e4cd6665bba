package remotenode

import (
	"bufio"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// laneState is where the lane to one peer is; see Stream.
type laneState int

const (
	laneIdle       laneState = iota // no stream yet, or the last one broke
	laneConnecting                  // setting one up; messages wait in order
	laneStream                      // messages go on out
	laneFallback                    // messages go through the remote, for good
)

// item is a message that waits while its lane connects: the message
// itself, for the remote if the set-up fails, and its frame for the stream.
type item struct {
	pid    *actor.PID
	msg    any
	system bool
	f      *frame
}

// watchKey is a watch this node sent on a stream: local watcher, remote
// watchee.
type watchKey struct{ watcher, watchee string }

type watch struct{ watcher, watchee *actor.PID }

// lane is everything sent to one peer address, in order.
type lane struct {
	t    *StreamTransport
	addr string

	mu      sync.Mutex
	state   laneState
	queue   []item
	out     *outStream
	watches map[watchKey]watch // sent on a stream of this lane and not ended since

	fallback atomic.Bool // state == laneFallback, read without the lock
}

// send puts a message on the lane. The message is framed before the lane
// is locked (senders to one peer do not wait for each other's
// marshalling); a frame made while the lane fell back is dropped.
func (l *lane) send(pid *actor.PID, msg any, system bool) {
	if l.fallback.Load() {
		l.direct(pid, msg, system)
		return
	}
	f, err := l.encode(pid, msg)
	if err != nil {
		return
	}
	l.mu.Lock()
	switch l.state {
	case laneFallback:
		l.mu.Unlock()
		l.direct(pid, msg, system)
		return
	case laneIdle:
		if !l.t.spawn(l.connect) { // the transport stopped: the remote carries the rest
			l.fallBack()
			l.mu.Unlock()
			l.direct(pid, msg, system)
			return
		}
		l.state = laneConnecting
		fallthrough
	case laneConnecting:
		l.queue = append(l.queue, item{pid: pid, msg: msg, system: system, f: f})
	case laneStream:
		l.commit(pid, msg, f)
	}
	l.mu.Unlock()
}

// fallBack makes the remote the lane's for good. l.mu is held.
func (l *lane) fallBack() {
	l.state = laneFallback
	l.fallback.Store(true)
}

// encode frames a message; a message the stream cannot carry is refused.
// A refused Write is answered WriteFailed, as the connection would have
// answered it: every Write ends as WriteAck or WriteFailed.
func (l *lane) encode(pid *actor.PID, msg any) (*frame, error) {
	header, m, sender := actor.UnwrapEnvelope(msg)
	f, name, err := encodeFrame(pid, header, m, sender)
	if err != nil {
		l.t.refuseSend(pid, name, err)
		if w, ok := m.(*messages.Write); ok && sender != nil && l.t.isLocal(sender.Address) {
			if ref, ok := l.t.sys.ProcessRegistry.GetLocal(sender.Id); ok {
				ref.SendUserMessage(sender, &messages.WriteFailed{Connection: pid, AckId: w.AckId,
					Error: messages.NewError(messages.SocketError_SOCKET_ERROR_SOCKET_RESOURCE, "the write cannot reach node %s: %v", pid.Address, err)})
			}
		}
	}
	return f, err
}

// commit hands a frame to the stream and keeps the watches it carries.
// l.mu is held.
func (l *lane) commit(pid *actor.PID, msg any, f *frame) {
	switch m := msg.(type) {
	case *actor.Watch:
		if m.Watcher != nil {
			l.watches[watchKey{m.Watcher.Id, pid.Id}] = watch{m.Watcher, pid}
		}
	case *actor.Unwatch:
		if m.Watcher != nil {
			delete(l.watches, watchKey{m.Watcher.Id, pid.Id})
		}
	}
	l.t.sent.Add(1)
	l.out.enqueue(f)
}

// direct sends through the remote's own process.
func (l *lane) direct(pid *actor.PID, msg any, system bool) {
	p := l.t.directProcess(pid)
	if system {
		p.SendSystemMessage(pid, msg)
	} else {
		p.SendUserMessage(pid, msg)
	}
}

// connect sets a stream up (in its own goroutine) and then either starts
// using it or falls back to the remote.
func (l *lane) connect() {
	conn, raw, start, err := l.t.dial(l.addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && l.t.isStopped() {
		l.t.untrack(raw)
		err = errStopped
	}
	if err != nil {
		if err != errStopped {
			l.t.log.Info("tcpactor: no stream to a peer node; its messages go through the remote", "peer", l.addr, "error", err)
		}
		l.fallBack()
		for _, it := range l.queue {
			l.direct(it.pid, it.msg, it.system)
		}
		l.queue = nil
		return
	}
	l.out = newOutStream(l, conn, raw)
	l.out.start = start
	l.state = laneStream
	for _, it := range l.queue {
		l.commit(it.pid, it.msg, it.f)
	}
	l.queue = nil
}

// broken is the end of out: the peer went away, or the stream failed. The
// next message connects again; every watch the stream carried fires.
func (l *lane) broken(out *outStream) {
	l.mu.Lock()
	if l.out != out {
		l.mu.Unlock()
		return
	}
	l.out = nil
	l.state = laneIdle
	lost := l.takeWatches()
	l.mu.Unlock()
	out.conn.Close()
	l.t.untrack(out.raw)
	if !l.t.isStopped() { // a node that stops does not report its peers lost
		l.t.addressTerminated(lost)
	}
}

// lost is the remote's report that the peer's endpoint terminated: the
// node is gone, so the stream is too — once the report is confirmed, when
// the peer named its start id (checkLoss, stream_loss.go). A lane on the remote (fallback) sets
// up again at its next message: nothing sent to the lost node through the
// remote is in flight any more (the endpoint and its queue are gone), so a
// stream to a node that comes back at that address cannot overtake it.
// While the peer lives the fallback stays: what the remote still holds for
// it is not known, and a stream could overtake it.
func (l *lane) lost() {
	l.mu.Lock()
	out := l.out
	if l.state == laneFallback && !l.t.isStopped() {
		l.state = laneIdle
		l.fallback.Store(false)
	}
	named := out != nil && out.start != 0
	check := named && !out.checking
	if check {
		out.checking = true
	}
	l.mu.Unlock()
	switch {
	case out == nil || named && !check: // no stream, or its check runs
	case check:
		l.t.spawn(func() { l.checkLoss(out) }) // not when stopping: no watch fires then
	default:
		out.close()
		l.broken(out)
	}
}

// takeWatches empties the lane's watches. l.mu is held.
func (l *lane) takeWatches() []watch {
	if len(l.watches) == 0 {
		return nil
	}
	ws := make([]watch, 0, len(l.watches))
	for k, w := range l.watches {
		ws = append(ws, w)
		delete(l.watches, k)
	}
	return ws
}

// ended forgets a watch whose Terminated came back from the peer.
func (l *lane) ended(watcher, watchee *actor.PID) {
	l.mu.Lock()
	delete(l.watches, watchKey{watcher.Id, watchee.Id})
	l.mu.Unlock()
}

// stop lets the lane's stream write what is queued, then close, as the
// transport stops (no watch fires: the node itself is going away). It
// returns the stream, if any, to wait for.
func (l *lane) stop() *outStream {
	l.mu.Lock()
	out := l.out
	l.mu.Unlock()
	if out != nil {
		out.drain()
	}
	return out
}

// addressTerminated tells each watcher that its watchee's node is gone.
func (t *StreamTransport) addressTerminated(ws []watch) {
	for _, w := range ws {
		if ref, ok := t.sys.ProcessRegistry.GetLocal(w.watcher.Id); ok {
			ref.SendSystemMessage(w.watcher, &actor.Terminated{Who: w.watchee, Why: actor.TerminatedReason_AddressTerminated})
		}
	}
}

// outStream is this node's stream to one peer. A sender whose frame finds
// the stream idle, and either quiet (no frame for quietGap) or the frame
// large (directPayload), writes it itself without blocking (as a
// connection writes: on a quiet stream a hand-over to a goroutine would
// only add a wake-up to the frame's latency); what the socket does not
// take at once, every other frame that follows another closely, and
// whatever is sent meanwhile, queues for the writer goroutine, which
// drains the queue with one writev per batch. A second goroutine reads
// the stream only to notice the peer's end.
//
// Under load the hand-over is what pays: the writer runs on another core
// while the senders go on, and gathers the frames that arrive meanwhile,
// so each node makes one system call for a dozen frames or more instead
// of one per frame, and the peer's reader takes them in one read.
type outStream struct {
	l    *lane
	conn net.Conn        // TLS or raw
	raw  net.Conn        // the TCP connection
	rc   syscall.RawConn // for the senders' own writes; nil with TLS (the writer writes everything)

	start    uint64 // the peer's start id, from its welcome (0: none); l.mu guards it
	checking bool   // a report of the peer's loss is being checked; l.mu guards it

	mu       sync.Mutex
	pending  []*frame
	busy     bool          // a sender or the writer is writing
	wake     chan struct{} // one token: there is work
	done     chan struct{} // closed by close
	closed   bool
	draining bool          // write what is queued, then end
	exited   chan struct{} // closed when the writer has ended
	last     time.Time     // when the previous frame was handed over
}

// quietGap is how long a stream must have had no frame for the next one's
// sender to write it itself. It is well under a round trip through two
// processes on loopback (~50 µs here), so a lone request and its answer
// never wait for the writer's wake-up, and well over the gap between the
// frames of a busy stream (~17 µs at 60,000 a second), which the writer
// gathers.
const quietGap = 20 * time.Microsecond

// directPayload is the payload from which a frame is written by its sender
// even on a busy stream, if the stream is idle: such a frame's copy into
// the socket costs more than the system call that a batch would save, and
// its data is hot in the sender's cache (gathered for the writer, bulk
// cost the owner node half as much CPU again per byte).
const directPayload = 16 << 10

func newOutStream(l *lane, conn, raw net.Conn) *outStream {
	o := &outStream{l: l, conn: conn, raw: raw, wake: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
	if tc, ok := conn.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			o.rc = rc
		}
	}
	l.t.wg.Add(2)
	go o.writeLoop()
	go o.watchEnd()
	return o
}

// enqueue writes f, or queues it for the writer: never waits for the
// socket.
func (o *outStream) enqueue(f *frame) {
	now := time.Now()
	o.mu.Lock()
	quiet := now.Sub(o.last) >= quietGap
	o.last = now
	if o.busy || len(o.pending) > 0 || o.rc == nil || o.closed || !quiet && len(f.payload) < directPayload {
		o.pending = append(o.pending, f)
		o.mu.Unlock()
		o.kick()
		return
	}
	o.busy = true
	o.mu.Unlock()
	n, err := writeNow(o.rc, f.head, f.payload)
	o.l.t.writes.Add(1)
	o.mu.Lock()
	o.busy = false
	switch {
	case err != nil: // the stream is broken: the writer ends it
		o.mu.Unlock()
		o.close()
		return
	case n == len(f.head)+len(f.payload):
		f.written()
	default: // the rest goes first, before what was queued meanwhile
		o.pending = append(o.pending, nil)
		copy(o.pending[1:], o.pending)
		o.pending[0] = f.rest(n)
	}
	kick := len(o.pending) > 0 || o.draining
	o.mu.Unlock()
	if kick {
		o.kick()
	}
}

func (o *outStream) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// drain makes the writer end once it has written what is queued, within
// drainTimeout.
func (o *outStream) drain() {
	o.mu.Lock()
	o.draining = true
	o.mu.Unlock()
	_ = o.conn.SetWriteDeadline(time.Now().Add(drainTimeout))
	o.kick()
}

func (o *outStream) close() {
	o.mu.Lock()
	if !o.closed {
		o.closed = true
		close(o.done)
	}
	o.mu.Unlock()
	o.conn.Close()
}

// writeLoop writes what senders queued, a batch per system call.
func (o *outStream) writeLoop() {
	defer o.l.t.wg.Done()
	defer close(o.exited)
	defer o.l.broken(o)
	defer o.close()
	var bw *bufio.Writer
	if o.rc == nil { // TLS: gather small frames into full records
		bw = bufio.NewWriterSize(o.conn, 64<<10)
	}
	var batch []*frame
	var bufs net.Buffers
	for {
		select {
		case <-o.wake:
		case <-o.done:
			return
		}
		for {
			o.mu.Lock()
			if o.busy || len(o.pending) == 0 { // a sender writing kicks again when it leaves work
				end := o.draining && !o.busy
				o.mu.Unlock()
				if end {
					return
				}
				break
			}
			batch, o.pending = o.pending, batch[:0]
			o.busy = true
			o.mu.Unlock()
			var err error
			if bw == nil {
				bufs = bufs[:0]
				for _, f := range batch {
					if len(f.head) > 0 {
						bufs = append(bufs, f.head)
					}
					if len(f.payload) > 0 {
						bufs = append(bufs, f.payload)
					}
				}
				b := bufs // WriteTo consumes its receiver
				_, err = b.WriteTo(o.conn)
				clear(bufs)
			} else {
				for _, f := range batch {
					if _, err = bw.Write(f.head); err == nil && len(f.payload) > 0 {
						_, err = bw.Write(f.payload)
					}
					if err != nil {
						break
					}
				}
				if err == nil {
					err = bw.Flush()
				}
			}
			o.l.t.writes.Add(1)
			o.mu.Lock()
			o.busy = false
			o.mu.Unlock()
			if err != nil {
				return
			}
			for i, f := range batch {
				f.written()
				batch[i] = nil
			}
		}
	}
}

// watchEnd reads the outgoing stream only to notice its end: the peer
// never writes on it after the set-up.
func (o *outStream) watchEnd() {
	defer o.l.t.wg.Done()
	var b [1]byte
	_, _ = o.conn.Read(b[:])
	o.close()
}
