package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
)

// Defaults of ConnOptions.
const (
	// DefaultReadCredit is how many Received chunks a Conn lets the
	// connection send ahead of Read.
	DefaultReadCredit = actors.DefaultInitialCredit
	// DefaultWriteChunkSize is the largest Write message a Conn sends.
	DefaultWriteChunkSize = 128 << 10
	// DefaultWriteWindow is how many written bytes a Conn lets wait for
	// their WriteAck: half the connection's default write queue, so a
	// Conn's writes never fill it.
	DefaultWriteWindow = actors.DefaultWriteQueueBytes / 2
)

// ConnOptions tune a Conn. The zero value uses the defaults above.
type ConnOptions struct {
	// ReadCredit is the credit the Conn's claim grants: how many Received
	// chunks (each at most the connection's read chunk, 32 KiB by default)
	// may wait in the Conn for Read. The Conn grants one more per chunk
	// Read has consumed, so it never holds more than ReadCredit chunks.
	ReadCredit int
	// WriteChunkSize is the largest Write message: a larger Write is sent
	// in chunks of this size.
	WriteChunkSize int
	// WriteWindow bounds the bytes sent and not yet acknowledged. Keep it
	// at or below the connection's WriteQueueBytes (1 MiB by default), or
	// the connection refuses writes with a full queue.
	WriteWindow int
	// NoDirectIO keeps a Conn whose connection runs on its node on
	// messages (Received, Write, WriteAck), as a Conn of a connection on
	// another node always is: the connection reads up to ReadCredit chunks
	// ahead of Read. By default such a Conn reads and writes the socket
	// itself, on the caller's goroutine (actors.DirectIO), and nothing is
	// read before Read asks.
	NoDirectIO bool
}

func (o ConnOptions) withDefaults() ConnOptions {
	if o.ReadCredit <= 0 {
		o.ReadCredit = DefaultReadCredit
	}
	if o.WriteChunkSize <= 0 {
		o.WriteChunkSize = DefaultWriteChunkSize
	}
	if o.WriteWindow <= 0 {
		o.WriteWindow = DefaultWriteWindow
	}
	o.WriteChunkSize = min(o.WriteChunkSize, o.WriteWindow)
	return o
}

// Conn is a net.Conn over a ConnectionActor, wherever it runs. A small owner
// actor in the Conn's actor system owns the connection: it receives the
// connection's Received, WriteAck, PeerClosed and Disconnected messages and
// hands them to the Go side, which talks to it through a mutex and
// channels.
//
// Reading is bounded by credit: the Conn holds at most ReadCredit chunks
// that Read has not consumed, and grants the connection one more (Demand)
// for each chunk consumed. Write returns once every byte is acknowledged by
// the connection (handed to the kernel) or has failed; a large Write is sent
// in chunks with at most WriteWindow bytes unacknowledged. The peer's FIN
// makes Read return io.EOF while writing goes on (a half-close), as with a
// TCP socket.
//
// When the connection runs on the Conn's node (and is a plain TCP socket on
// Linux, with no ReadTimeout), it lends the Conn its socket
// (actors.DirectIO) unless ConnOptions.NoDirectIO: Read then reads the
// socket on its caller's goroutine, nothing is read ahead of it, and Write
// is one non-blocking write there, with messages only for what the socket
// does not take at once. The connection still counts the bytes, keeps its
// idle time-out and takes the socket back to close (or for another owner);
// the ending is told as above.
//
// Deadlines behave as net.Conn's: a Read or Write past its deadline returns
// an error that wraps os.ErrDeadlineExceeded (Timeout() is true). A Write
// that times out may still deliver the bytes it had sent; the count it
// returns is the bytes acknowledged.
//
// Close asks the connection to close and stops the owner actor: the
// connection flushes, sends FIN and lingers until the peer closes (what the
// kernel holds is still sent, and the peer is not reset).
// As with any net.Conn, Close must be called: the owner actor, and so the
// connection, live until then. Every method is safe for concurrent use.
type Conn struct {
	sys   *actor.ActorSystem
	opts  ConnOptions
	owner *actor.PID

	// Set once by the claim, before the Conn is handed out.
	conn          *actor.PID
	local, remote net.Addr

	rd, wd deadline
	wsem   chan struct{} // one Write at a time
	closed chan struct{}
	once   sync.Once

	mu      sync.Mutex
	changed chan struct{}    // closed and replaced whenever the fields below change
	direct  *actors.DirectIO // the socket, lent by a connection on this node
	rbuf    [][]byte         // received, not yet read
	eof     bool             // the peer sent FIN
	endErr  error            // the connection ended with this error (io.EOF: cleanly)
	nextAck uint64
	unacked map[uint64]int // write ack id → bytes
	inUnack int            // bytes in unacked
	werr    error          // the first failed write: writing is over
}

// NewConn makes a Conn of a connection the caller may hand over: the Conn's
// owner actor, in sys, becomes the connection's owner (SetOwner). Use it for
// a connection announced by a NewConnection event, or handed over by its
// current owner; the connection's Received messages go to the Conn from
// then on.
func NewConn(ctx context.Context, sys *actor.ActorSystem, connection *actor.PID, opts ConnOptions) (*Conn, error) {
	c := newConn(sys, opts)
	c.attach(connection, 0)
	r, err := connRequest[*messages.Ack](ctx, sys, connection, &messages.SetOwner{Owner: c.owner, Options: c.claimOptions()})
	if err == nil {
		err = r.Error.Err()
	}
	if err == nil {
		var info *messages.ConnectionInfo
		info, err = connRequest[*messages.ConnectionInfo](ctx, sys, connection, &messages.GetInfo{})
		c.setAddrs(info)
	}
	if err == nil && !actors.IsLocalAddress(sys, connection.Address) {
		// GetInfo's answer names no start id: ask the connection's node,
		// for the Conn to check a report of its loss (connOwner.checkLoss).
		// No answer leaves it unknown: every report is then believed.
		inc, _ := request[*messages.Incarnation](ctx, sys, actors.IncarnationOf(connection.Address), &messages.GetIncarnation{}, DefaultTimeout, false)
		c.attach(connection, inc.GetStartId())
	}
	if err != nil {
		c.release()
		return nil, fmt.Errorf("take connection %s: %w", connection, err)
	}
	return c, nil
}

func newConn(sys *actor.ActorSystem, opts ConnOptions) *Conn {
	c := &Conn{
		sys:     sys,
		opts:    opts.withDefaults(),
		wsem:    make(chan struct{}, 1),
		closed:  make(chan struct{}),
		changed: make(chan struct{}),
		unacked: map[uint64]int{},
		rd:      newDeadline(),
		wd:      newDeadline(),
	}
	// The owner runs on its senders' goroutines (actors.OwnerDispatcher):
	// its Receive only takes c.mu briefly, and the Go side sends to the
	// actors only with c.mu released.
	c.owner = sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &connOwner{c: c} },
		actor.WithDispatcher(actors.OwnerDispatcher()), actor.WithMailbox(actors.OwnerMailbox())))
	return c
}

// claimOptions asks a connection on the Conn's node to lend its socket
// (direct_io, unless NoDirectIO): the Conn's Reads and Writes then use it
// themselves — a request wakes the goroutine in Read and nothing else, as
// with a plain net.Conn, where Received wakes a reader, then the Conn's
// goroutine; an answer is one writev, where Write and WriteAck are two
// messages. A connection on another node ignores it. The claim names the
// start id of the Conn's node, so that a connection on another node checks
// a report of that node's loss before it closes (owner_start_id).
func (c *Conn) claimOptions() *messages.ClaimOptions {
	return &messages.ClaimOptions{InitialCredit: int32(min(c.opts.ReadCredit, 1<<30)), KeepOpenOnPeerClose: true,
		DirectIo: !c.opts.NoDirectIO, OwnerStartId: actors.StartID(c.sys)}
}

// claimNext claims the server's oldest pending connection for this Conn. It
// reports false when nothing was pending.
func (c *Conn) claimNext(ctx context.Context, s *Server) (bool, error) {
	pid, info, err := s.NextPendingConnection(ctx, c.owner, c.claimOptions())
	if err != nil || pid == nil {
		return false, err
	}
	c.attach(pid, info.GetNodeStartId())
	c.setAddrs(info)
	return true, nil
}

// attach records the connection and lets the owner actor watch it, so that
// a connection lost with its node ends the Conn too. start is the start id
// of the connection's node (ConnectionInfo.node_start_id; 0: not known, a
// report of that node's loss is believed at once). Attaching the same
// connection again only tells the start id.
func (c *Conn) attach(pid *actor.PID, start uint64) {
	c.conn = pid
	c.sys.Root.Send(c.owner, &watchConnection{pid: pid, start: start})
}

func (c *Conn) setAddrs(info *messages.ConnectionInfo) {
	c.local = tcpAddr(info.GetLocalAddress(), info.GetLocalPort())
	c.remote = tcpAddr(info.GetPeerAddress(), info.GetPeerPort())
}

// release stops the owner actor of a Conn that was never handed out.
func (c *Conn) release() {
	c.once.Do(func() { close(c.closed) })
	_ = c.sys.Root.StopFuture(c.owner).Wait()
}

// PID is the ConnectionActor's PID.
func (c *Conn) PID() *actor.PID { return c.conn }

// Owner is the PID of the Conn's owner actor.
func (c *Conn) Owner() *actor.PID { return c.owner }

// connRequest is a request to a ConnectionActor that fails fast when the
// actor ends first. It watches the actor: a request still queued there as it
// stops is dropped unanswered (Proto.Actor discards user messages once the
// actor stopped; only one sent after it is gone reaches the dead letters,
// which answer it), and without the Terminated the call would wait out its
// whole time-out. The error wraps net.ErrClosed.
func connRequest[R any](ctx context.Context, sys *actor.ActorSystem, connection *actor.PID, msg any) (R, error) {
	r, err := request[R](ctx, sys, connection, msg, DefaultTimeout, true)
	if errors.Is(err, ErrNoServer) { // request's words for the actor's end
		err = fmt.Errorf("%T to connection %s/%s: it ended before answering: %w", msg, connection.GetAddress(), connection.GetId(), net.ErrClosed)
	}
	return r, err
}

// LocalAddr is the connection's local address (on the ServerActor's host).
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// Info asks the ConnectionActor about itself (GetInfo): addresses, state,
// byte counters.
func (c *Conn) Info(ctx context.Context) (*messages.ConnectionInfo, error) {
	return connRequest[*messages.ConnectionInfo](ctx, c.sys, c.conn, &messages.GetInfo{})
}

// Read reads what the connection received, or, when the connection lends
// its socket, reads the socket. It returns io.EOF once the peer has closed
// its side and everything received was read.
func (c *Conn) Read(b []byte) (int, error) {
	for {
		c.mu.Lock()
		switch {
		case c.isClosed():
			c.mu.Unlock()
			return 0, c.opError("read", net.ErrClosed)
		case c.rd.expired():
			c.mu.Unlock()
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		case len(b) == 0:
			c.mu.Unlock()
			return 0, nil
		case len(c.rbuf) > 0:
			n, consumed := c.take(b)
			c.mu.Unlock()
			if consumed > 0 {
				c.sys.Root.Send(c.conn, &messages.Demand{N: int32(consumed)})
			}
			return n, nil
		case c.eof:
			c.mu.Unlock()
			return 0, io.EOF
		case c.endErr != nil:
			err := c.endErr
			c.mu.Unlock()
			if err == io.EOF {
				return 0, io.EOF
			}
			return 0, c.opError("read", err)
		}
		d, changed := c.direct, c.changed
		c.mu.Unlock()
		if d != nil {
			n, err := d.Read(b)
			switch {
			case n > 0:
				return n, nil
			case errors.Is(err, actors.ErrNotLent):
				// Taken back (closing, a new owner) or the input ended:
				// what comes next comes as messages.
				c.mu.Lock()
				if c.direct == d {
					c.direct = nil
				}
				c.mu.Unlock()
				continue
			case c.isClosed():
				return 0, c.opError("read", net.ErrClosed)
			}
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		select {
		case <-changed:
		case <-c.rd.wait():
		case <-c.closed:
		}
	}
}

// take copies buffered bytes into b and reports how many chunks it used up.
// c.mu is held.
func (c *Conn) take(b []byte) (n, consumed int) {
	for n < len(b) && len(c.rbuf) > 0 {
		k := copy(b[n:], c.rbuf[0])
		n += k
		if k < len(c.rbuf[0]) {
			c.rbuf[0] = c.rbuf[0][k:]
			break
		}
		actors.ReuseBuffer(c.rbuf[0]) // copied out: the connections' reads may have it
		c.rbuf[0] = nil
		c.rbuf = c.rbuf[1:]
		consumed++
	}
	if len(c.rbuf) == 0 {
		c.rbuf = nil
	}
	return n, consumed
}

// Write sends b to the peer and returns once every byte is acknowledged
// (handed to the kernel by the connection), the write failed, the deadline
// passed or the Conn was closed. A Write larger than WriteChunkSize goes in
// chunks. Writes from several goroutines are serialised.
func (c *Conn) Write(b []byte) (int, error) {
	select {
	case c.wsem <- struct{}{}:
	default:
		// Another Write is under way: wait for it, the deadline or Close.
		select {
		case c.wsem <- struct{}{}:
		case <-c.closed:
			return 0, c.opError("write", net.ErrClosed)
		case <-c.wd.wait():
			return 0, c.opError("write", os.ErrDeadlineExceeded)
		}
	}
	defer func() { <-c.wsem }()
	done := 0
	if d := c.directWriter(len(b)); d != nil {
		// The socket is lent: one non-blocking write here; what it does
		// not take goes as messages, after it.
		if done = d.Write(b); done == len(b) {
			return done, nil
		}
	}
	n, err := c.writeMessages(b[done:])
	return done + n, err
}

// directWriter is the lent socket when Write may use it: nothing it sent
// as messages waits for its outcome (those bytes go first), and nothing
// has ended writing.
func (c *Conn) directWriter(n int) *actors.DirectIO {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.direct == nil || n == 0 || c.inUnack > 0 || c.werr != nil || c.isClosed() || c.wd.expired() {
		return nil
	}
	return c.direct
}

// writeMessages writes b with Write messages, at most WriteWindow bytes
// unacknowledged, and returns the bytes acknowledged.
func (c *Conn) writeMessages(b []byte) (int, error) {
	var ids []uint64 // this Write's chunks, in order
	var sizes []int
	sent, acked := 0, 0
	for {
		c.mu.Lock()
		// Count the chunks acknowledged so far, in order.
		for len(ids) > 0 {
			if _, waiting := c.unacked[ids[0]]; waiting {
				break
			}
			acked += sizes[0]
			ids, sizes = ids[1:], sizes[1:]
		}
		var err error
		switch {
		case acked == len(b) && len(b) > 0:
			c.mu.Unlock()
			return acked, nil
		case c.isClosed():
			err = net.ErrClosed
		case c.werr != nil:
			err = c.werr
		case c.wd.expired():
			err = os.ErrDeadlineExceeded
		case len(b) == 0:
			c.mu.Unlock()
			return 0, nil
		}
		if err != nil {
			c.mu.Unlock()
			return acked, c.opError("write", err)
		}
		// Send what the window allows.
		var out []*messages.Write
		for sent < len(b) {
			n := min(len(b)-sent, c.opts.WriteChunkSize)
			if c.inUnack > 0 && c.inUnack+n > c.opts.WriteWindow {
				break
			}
			c.nextAck++
			id := c.nextAck
			c.unacked[id] = n
			c.inUnack += n
			ids, sizes = append(ids, id), append(sizes, n)
			// A copy: the caller may reuse b as soon as Write returns,
			// and a local connection keeps the message's slice.
			// The copy is the connection's to reuse once written (donate).
			out = append(out, &messages.Write{Data: append([]byte(nil), b[sent:sent+n]...), AckId: id, Donate: true})
			sent += n
		}
		changed := c.changed
		c.mu.Unlock()
		for _, w := range out {
			c.sys.Root.RequestWithCustomSender(c.conn, w, c.owner)
		}
		select {
		case <-changed:
		case <-c.wd.wait():
		case <-c.closed:
		}
	}
}

// CloseWrite half-closes the connection: what was written is flushed, then
// FIN; reading goes on. net/http uses it to end a response cleanly.
func (c *Conn) CloseWrite() error {
	if c.isClosed() {
		return c.opError("close", net.ErrClosed)
	}
	ctx, cancel := contextUntilClosed(c.closed)
	defer cancel()
	r, err := connRequest[*messages.Ack](ctx, c.sys, c.conn, &messages.CloseWrite{})
	if err == nil {
		err = r.Error.Err()
	}
	if err != nil {
		return c.opError("close", err)
	}
	return nil
}

// Close closes the Conn: pending Reads and Writes return net.ErrClosed, the
// owner actor stops, and the connection, which watches it, closes its
// socket. Bytes that Write has returned for are in the kernel and still
// reach the peer. Close returns once the owner actor has stopped.
func (c *Conn) Close() error {
	first := false
	c.once.Do(func() {
		first = true
		close(c.closed)
	})
	if !first {
		return c.opError("close", net.ErrClosed)
	}
	c.rd.close()
	c.wd.close()
	c.mu.Lock()
	if c.direct != nil {
		// Wake a Read in the socket now; the connection takes its
		// reading back as it closes.
		c.direct.SetReadDeadline(aLongTimeAgo)
	}
	c.mu.Unlock()
	// Ask the connection to close as well as stopping its owner: the
	// connection learns of the owner's end through a watch, which is slower
	// across nodes and lost with a broken link.
	if c.conn != nil {
		c.sys.Root.Send(c.conn, &messages.Close{})
	}
	_ = c.sys.Root.StopFuture(c.owner).Wait()
	c.mu.Lock()
	c.rbuf = nil
	c.notify()
	c.mu.Unlock()
	return nil
}

// SetDeadline sets both the read and the write deadline.
func (c *Conn) SetDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opError("set", net.ErrClosed)
	}
	c.rd.set(t)
	c.wd.set(t)
	c.setDirectDeadline(t)
	return nil
}

// SetReadDeadline sets the deadline of pending and future Reads; the zero
// time means none.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opError("set", net.ErrClosed)
	}
	c.rd.set(t)
	c.setDirectDeadline(t)
	return nil
}

// setDirectDeadline gives the read deadline to the socket's lent read side,
// whose Reads wait in the socket.
func (c *Conn) setDirectDeadline(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.direct != nil {
		c.direct.SetReadDeadline(t)
	}
}

// SetWriteDeadline sets the deadline of pending and future Writes; the zero
// time means none.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opError("set", net.ErrClosed)
	}
	c.wd.set(t)
	return nil
}

func (c *Conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.local, Addr: c.remote, Err: err}
}

// notify wakes every goroutine waiting for a change. c.mu is held.
func (c *Conn) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// ---------------------------------------------------------------------------
// What the owner actor hands to the Go side. Each holds c.mu briefly and
// never blocks, since it runs inside the actor's Receive.

func (c *Conn) received(data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed() {
		return
	}
	c.rbuf = append(c.rbuf, data)
	c.notify()
}

// lent takes the socket the connection lends: from now on Read and Write use it.
// The read deadline set so far applies to it.
func (c *Conn) lent(d *actors.DirectIO) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.direct = d
	d.SetReadDeadline(c.rd.when())
	c.notify()
}

func (c *Conn) peerClosed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.eof = true
	c.notify()
}

func (c *Conn) writeDone(id uint64, e *messages.Error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.unacked[id]
	if !ok {
		return
	}
	delete(c.unacked, id)
	c.inUnack -= n
	if err := e.Err(); err != nil && c.werr == nil {
		c.werr = err // a hole in the stream: nothing written after it counts
	}
	c.notify()
}

// ended records the end of the connection: Disconnected, or the connection
// lost (Terminated) without one.
func (c *Conn) ended(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.endErr != nil {
		return
	}
	if err == nil {
		err = io.EOF
	}
	c.endErr = err
	if c.werr == nil {
		c.werr = err
		if err == io.EOF {
			c.werr = &messages.SocketErr{Code: messages.SocketError_SOCKET_ERROR_OPERATION, Text: "the connection has ended"}
		}
	}
	// Writes still waiting for their outcome will not get one.
	clear(c.unacked)
	c.inUnack = 0
	c.notify()
}

// connOwner is the Conn's owner actor.
type connOwner struct {
	c     *Conn
	conn  *actor.PID
	start uint64 // the start id of the connection's node (0: not known)
}

// watchConnection tells the owner actor which connection it owns, and the
// start id of its node. It never crosses nodes.
type watchConnection struct {
	pid   *actor.PID
	start uint64
}

// Receive hands the connection's messages to the Conn.
func (o *connOwner) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.Received:
		o.c.received(m.Data)
	case *actors.DirectIO:
		o.c.lent(m)
	case *messages.WriteAck:
		o.c.writeDone(m.AckId, nil)
	case *messages.WriteFailed:
		o.c.writeDone(m.AckId, m.Error)
	case *messages.PeerClosed:
		o.c.peerClosed()
	case *messages.ErrorOccurred:
		// The peer's FIN (RemoteHostClosedError, then PeerClosed: Read
		// returns io.EOF, writing goes on), or an error that Disconnected
		// follows with.
	case *messages.Disconnected:
		o.c.ended(m.Error.Err())
	case *watchConnection:
		if !m.pid.Equal(o.conn) {
			o.conn = m.pid
			ctx.Watch(m.pid)
		}
		if m.start != 0 {
			o.start = m.start
		}
	case *actor.Terminated:
		if o.conn == nil || !m.Who.Equal(o.conn) {
			return
		}
		if m.Why == actor.TerminatedReason_AddressTerminated && o.start != 0 {
			o.checkLoss(ctx, m)
			return
		}
		// Terminated is a system message and overtakes the user messages
		// in the mailbox, Disconnected among them: look at it behind them.
		ctx.Send(ctx.Self(), &connectionGone{m})
	case *connectionGone:
		// A connection that ended in order sent Disconnected, handled by
		// now; this one vanished (its node was lost).
		o.c.ended(&messages.SocketErr{Code: messages.SocketError_SOCKET_ERROR_NETWORK,
			Text: fmt.Sprintf("connection %s is gone (%s)", m.Who, m.Why)})
	}
}

// connectionGone is the owner actor's note to itself that its connection
// stopped. It never crosses nodes.
type connectionGone struct{ *actor.Terminated }

// checkLoss asks the node at the address of a connection reported lost
// which start of it runs (actors.AskIncarnation) before the Conn believes
// the report: Proto.Actor's remote reports a node restarted on the same
// address lost after it is up. The start the connection's info named
// answering means the connection lives on, and is watched again (the report
// ended the remote's watch); any other answer, or none, ends the Conn.
func (o *connOwner) checkLoss(ctx actor.Context, m *actor.Terminated) {
	conn, start := o.conn, o.start
	actors.AskIncarnation(ctx, m.Who.Address, func(current uint64) {
		switch {
		case !conn.Equal(o.conn): // another connection meanwhile: not ours to end
		case current != 0 && current == start:
			ctx.Logger().Info("tcpactor: a report that the node of a Conn's connection was lost was stale: the same start of it answers; the Conn goes on",
				"connection", conn.Address+"/"+conn.Id)
			ctx.Watch(conn)
		default:
			o.c.ended(&messages.SocketErr{Code: messages.SocketError_SOCKET_ERROR_NETWORK,
				Text: fmt.Sprintf("connection %s is gone (%s)", m.Who, m.Why)})
		}
	})
}

// tcpAddr makes a *net.TCPAddr of a ConnectionInfo address.
func tcpAddr(host string, port uint32) net.Addr {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return &net.TCPAddr{Port: int(port)}
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port)))
}

// contextUntilClosed is a context cancelled when closed is.
func contextUntilClosed(closed <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// ---------------------------------------------------------------------------
// deadline is one direction's deadline, as net.Pipe keeps it: a channel that
// is closed when the deadline passes. The timer that closes it is armed only
// for a waiter (wait): net/http sets several read deadlines per request, and
// a Conn whose socket is lent waits in the socket, whose own deadline wakes
// it (DirectIO.SetReadDeadline), so most deadlines never need one.

type deadline struct{ d *deadlineState }

type deadlineState struct {
	mu     sync.Mutex
	t      time.Time // the deadline; zero: none
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline passes (seen by expired, or by the timer)
	waited bool          // wait was called: someone may be waiting, keep a timer armed
	closed bool          // the Conn is closed: no more timers
}

// aLongTimeAgo is a deadline in the past.
var aLongTimeAgo = time.Unix(1, 0)

func newDeadline() deadline {
	return deadline{d: &deadlineState{cancel: make(chan struct{})}}
}

// set sets the deadline; the zero time clears it. Once anyone has waited,
// a timer is armed for every future deadline.
func (dl deadline) set(t time.Time) {
	d := dl.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		// The timer has fired or is firing: it closes the channel it was
		// armed with, which must no longer be the current one.
		d.cancel = make(chan struct{})
	}
	d.timer = nil
	d.t = t
	if isDone(d.cancel) {
		d.cancel = make(chan struct{})
	}
	switch {
	case t.IsZero(), !d.waited: // expired and wait look at the clock
	case !time.Now().Before(t):
		close(d.cancel)
	default:
		d.arm()
	}
}

// arm starts the timer that closes cancel at t. d.mu is held; t is set and
// in the future.
func (d *deadlineState) arm() {
	if d.closed {
		return
	}
	cancel := d.cancel
	d.timer = time.AfterFunc(time.Until(d.t), func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if !isDone(cancel) {
			close(cancel)
		}
	})
}

// when is the deadline; zero: none.
func (dl deadline) when() time.Time {
	dl.d.mu.Lock()
	defer dl.d.mu.Unlock()
	return dl.d.t
}

// wait is a channel closed when the deadline has passed.
func (dl deadline) wait() chan struct{} {
	d := dl.d
	d.mu.Lock()
	defer d.mu.Unlock()
	d.waited = true
	if d.timer == nil && !d.t.IsZero() && !isDone(d.cancel) {
		if time.Now().Before(d.t) {
			d.arm()
		} else {
			close(d.cancel)
		}
	}
	return d.cancel
}

// expired tells whether the deadline has passed.
func (dl deadline) expired() bool {
	d := dl.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if isDone(d.cancel) {
		return true
	}
	if !d.t.IsZero() && !time.Now().Before(d.t) {
		if d.waited {
			close(d.cancel) // a waiter may not have seen it yet
		}
		return true
	}
	return false
}

// close stops the timer, so a closed Conn keeps no timer.
func (dl deadline) close() {
	dl.d.mu.Lock()
	defer dl.d.mu.Unlock()
	dl.d.closed = true
	if dl.d.timer != nil {
		dl.d.timer.Stop()
		dl.d.timer = nil
	}
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
