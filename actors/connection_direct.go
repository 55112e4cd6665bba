package actors

// Direct I/O: a connection lends its socket to an owner on its own node,
// which then reads and writes on its own goroutine (server.Conn's Read and
// Write) instead of exchanging Received, Write and WriteAck with the
// connection. A request then costs what it costs a plain net.Conn: the
// owner's goroutine parks in Go's poller and is woken by it (where Received
// wakes a reader — an event loop or the connection's goroutine — runs the
// connection and the owner on it, and wakes the owner's goroutine in turn),
// and its answer is one non-blocking writev on the same goroutine.
//
// The connection keeps what it owns: it counts the bytes (ConnectionInfo,
// Stats, the idle time-out), it hears the end of the input (the peer's FIN
// or an error, which it tells the owner as always: ErrorOccurred,
// PeerClosed, Disconnected), and it takes the socket back whenever it must
// read itself: when it leaves the open phase (Close, the owner's stop: what
// follows is read and thrown away, as ever) or gets another owner. Writing
// is lent only while the connection has nothing queued, is open and has not
// sent its FIN: the connection turns it off before it writes anything
// itself (a Write message, from anyone), and a direct write that the
// socket does not take whole leaves the rest to a Write message, so bytes
// never overtake each other.

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// ErrNotLent is DirectIO.Read's error once the connection has taken its
// socket back, or the input ended: read on with the owner's messages
// (Received, PeerClosed, Disconnected).
var ErrNotLent = errors.New("tcpactor: the connection does not lend its socket (any more)")

// DirectIO is a connection's socket, lent to its owner: a claim with
// ClaimOptions.direct_io asks for it, and the connection sends it to the
// owner — a Go message, after every Received sent before it — once it can
// lend: it is open, the owner is on its node, the socket is a plain TCP
// socket on Linux, it has no ReadTimeout and no local Handler, and it holds
// no bytes back. Until then, and if never (an owner on another node), the
// owner gets Received and writes with Write. Its methods are safe for
// concurrent use.
type DirectIO struct {
	tc    *net.TCPConn
	raw   syscall.RawConn
	send  func(any) // to the connection (sendSelf)
	stats *ConnectionStats
	since time.Time // lastIO counts from here, so the idle clock stays monotonic
	idle  bool      // the connection has an idle time-out: keep lastIO

	received atomic.Uint64 // read and not yet counted by the connection
	sent     atomic.Uint64 // written and not yet counted by the connection
	lastIO   atomic.Int64  // nanoseconds after since of the last read or write; 0 none

	mu       sync.Mutex
	lent     bool  // Read may read
	readers  int   // Reads in the socket now
	returned bool  // reading is back with the connection (or directReturned is on its way)
	ended    error // the read error that ended the lending, for the connection

	wmu      sync.Mutex // held across a direct write, and by the connection to turn writing off
	writable bool       // Write may write: nothing is queued in the connection
	wbuf     []byte     // what write writes, and what it wrote: under wmu
	wn       int
	write    func(fd uintptr) bool // made once: a closure per Write would be an allocation
}

// directReturned tells the connection that the reading it lent is back:
// taken back while a Read was in the socket, or ended by that Read's error
// (io.EOF for the peer's FIN), which the connection handles as its own
// read's.
type directReturned struct {
	d   *DirectIO
	err error
}

// aLongTimeAgo is a read deadline in the past: it wakes a Read waiting in
// the poller.
var aLongTimeAgo = time.Unix(1, 0)

// Read reads into b on the caller's goroutine, waiting for the peer as
// net.Conn's Read does. It returns n > 0 bytes; or an error that wraps
// os.ErrDeadlineExceeded when the deadline given to SetReadDeadline has
// passed; or ErrNotLent once reading is back with the connection, which
// then tells the owner how the input goes on (Received) or ended
// (PeerClosed, Disconnected).
func (d *DirectIO) Read(b []byte) (int, error) {
	d.mu.Lock()
	if !d.lent {
		d.mu.Unlock()
		return 0, ErrNotLent
	}
	d.readers++
	d.mu.Unlock()

	n, err := d.tc.Read(b)
	if n > 0 {
		d.received.Add(uint64(n))
		d.stats.received(n)
		d.touch()
	}

	d.mu.Lock()
	d.readers--
	if err != nil && d.lent && !errors.Is(err, os.ErrDeadlineExceeded) {
		// The end of the input (FIN, reset, a closed socket): the
		// connection's to handle, as its own reader's error.
		d.lent, d.ended = false, err
	}
	back := !d.lent && d.readers == 0 && !d.returned
	if back {
		d.returned = true
		_ = d.tc.SetReadDeadline(time.Time{}) // the connection reads without one
	}
	lent, ended := d.lent, d.ended
	d.mu.Unlock()
	if back {
		d.send(&directReturned{d: d, err: ended})
	}
	switch {
	case n > 0:
		return n, nil
	case !lent:
		return 0, ErrNotLent
	}
	return 0, err
}

func (d *DirectIO) touch() {
	if d.idle {
		d.lastIO.Store(int64(max(time.Since(d.since), 1)))
	}
}

// Write writes b without waiting, as far as the socket takes it, while the
// connection lends writing, and returns how much it wrote. What it did not
// write (the socket's buffer is full, writing is not lent, or an error:
// the connection meets it again) is for a Write message to the connection,
// sent before anything else is written.
func (d *DirectIO) Write(b []byte) int {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if !d.writable || len(b) == 0 {
		return 0
	}
	d.wbuf, d.wn = b, 0
	_ = d.raw.Write(d.write) // an error leaves the rest to the connection, which meets it again
	n := d.wn
	d.wbuf = nil
	if n > 0 {
		d.sent.Add(uint64(n))
		d.stats.sent(n)
		d.touch()
	}
	return n
}

// setWritable turns direct writing on or off; off waits for a direct write
// in progress, so that what the connection writes next comes after it.
func (d *DirectIO) setWritable(on bool) {
	d.wmu.Lock()
	d.writable = on
	d.wmu.Unlock()
}

// SetReadDeadline sets the deadline of pending and future Reads, as
// net.Conn's does, while reading is lent.
func (d *DirectIO) SetReadDeadline(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lent {
		_ = d.tc.SetReadDeadline(t)
	}
}

// revoke takes reading back. true: it is back now; false: a Read is in the
// socket (woken by a deadline in the past) or has just ended the lending,
// and directReturned will say when it is back.
func (d *DirectIO) revoke() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.returned {
		return false // a Read handed it back: its directReturned is on the way
	}
	d.lent = false
	if d.readers > 0 {
		_ = d.tc.SetReadDeadline(aLongTimeAgo)
		return false
	}
	d.returned = true
	_ = d.tc.SetReadDeadline(time.Time{})
	return true
}

// lending is a connection's state of lending its socket, made when an owner
// first asks (most connections never lend: one pointer is all they pay).
type lending struct {
	to       *actor.PID // the owner that asked for it (ClaimOptions.direct_io), until lent
	lease    *DirectIO  // lent, or on its way back
	owner    *actor.PID // the owner it is lent to
	writable bool       // the owner may write directly
}

// askedToLend records a claim's direct_io: lendRead lends when it can.
func (c *connection) askedToLend(owner *actor.PID, asked bool) {
	switch {
	case asked && c.lend == nil:
		c.lend = &lending{to: owner}
	case asked:
		c.lend.to = owner
	case c.lend != nil:
		c.lend.to = nil
	}
}

// lendRead lends reading to the owner, keeps it lent, or takes it back, as
// the connection's state says; askRead asks it first. true: the owner
// reads (or reading is on its way back), so the connection must not.
func (c *connection) lendRead() bool {
	l := c.lend
	if l == nil {
		return false
	}
	if l.lease != nil {
		if c.phase == open && pidEqual(c.owner, l.owner) {
			return true
		}
		c.directWritesOff()
		c.foldLease()
		if !l.lease.revoke() {
			return true // onDirectReturned goes on
		}
		l.lease = nil
		return false
	}
	if !c.canLend() || c.promote() != nil { // the owner reads with Go's poller
		return false
	}
	if c.reading {
		if !c.takePermitBack() {
			return false // a read is under way: lend after its result
		}
		c.reading = false
	}
	tc := c.conn.(*net.TCPConn) // c.raw is set only for a plain socket, promoted now
	d := &DirectIO{tc: tc, raw: c.raw, send: c.sendSelf, stats: c.cfg.Stats, since: time.Now(),
		idle: c.cfg.IdleTimeout > 0, lent: true}
	d.write = d.writeFd
	l.lease, l.owner, l.to = d, c.owner, nil
	c.ctx.Send(c.owner, d)
	return true
}

// canLend: an open connection whose owner asked for direct I/O, lives
// on this node, and can have it.
func (c *connection) canLend() bool {
	return c.lend.to != nil && c.phase == open && !c.peerClosed && c.r().held == nil &&
		c.handler == nil && c.raw != nil && c.cfg.ReadTimeout <= 0 &&
		pidEqual(c.lend.to, c.owner) && c.owner.Address == c.self().Address
}

// takePermitBack withdraws a read permit that no read has taken yet.
func (c *connection) takePermitBack() bool {
	if c.loop != nil {
		return c.loop.disarm()
	}
	select {
	case <-c.r().permit:
		return true
	default:
		return false // the reader is in its read
	}
}

// onDirectReturned: reading is back; an error that ended it is handled as
// the connection's own read's, else reading goes on as the phase says.
func (c *connection) onDirectReturned(ctx actor.Context, m *directReturned) {
	if c.lend == nil || m.d != c.lend.lease {
		return
	}
	c.directWritesOff()
	c.foldLease()
	c.lend.lease = nil
	if m.err != nil {
		c.onRead(ctx, &readResult{err: m.err})
		return
	}
	c.askRead()
}

// syncDirectWrites lends writing while the connection has nothing of its
// own to write, after each message: open, the socket lent, no FIN, nothing
// queued or in a writer goroutine.
func (c *connection) syncDirectWrites() {
	l := c.lend
	if l == nil || l.lease == nil {
		return
	}
	on := c.phase == open && pidEqual(c.owner, l.owner) && c.fin == finNotSent &&
		c.writesIdle()
	if on != l.writable {
		l.writable = on
		l.lease.setWritable(on)
	}
}

// directWritesOff stops direct writes before the connection writes to the
// socket itself (or sends its FIN), waiting for one in progress.
func (c *connection) directWritesOff() {
	if l := c.lend; l != nil && l.writable {
		l.writable = false
		l.lease.setWritable(false)
	}
}

// foldLease counts what the owner has read and written since the last
// fold: the byte counters, and the idle clock.
func (c *connection) foldLease() {
	if c.lend == nil || c.lend.lease == nil {
		return
	}
	d := c.lend.lease
	c.bytesReceived += d.received.Swap(0)
	c.bytesSent += d.sent.Swap(0)
	if at := d.lastIO.Swap(0); at != 0 && c.r().idle != nil {
		c.touchedAgo(time.Since(d.since) - time.Duration(at))
	}
}

// touchedAgo moves the idle clock to the owner's last direct read or write,
// ago before now (touch, for a moment past).
func (c *connection) touchedAgo(ago time.Duration) {
	if m := c.more; m != nil {
		m.lastActive = max(m.lastActive, monoNow()-ago)
	}
}
