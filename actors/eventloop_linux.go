//go:build linux

package actors

// The event-loop reader (ReadLoop): a few epoll loops own the readiness of
// every plain *net.TCPConn connection, so an idle connection holds no
// goroutine and no buffer. Credit is interest: the loop reads a connection
// once per read permit its actor gives (as the goroutine reader does), and
// a connection without one is taken out of EPOLLIN at its next readiness,
// so it costs the loop nothing and the kernel holds the peer's bytes.
//
// A socket a server accepted in this mode is raw, known to our epoll alone
// (rawsock_linux.go); any other stays in its net.TCPConn, registered with
// Go's runtime poller as well (for Close, CloseWrite, the socket options).
// A write that would block waits in the loop either way (EPOLLOUT while it
// waits, waitWritable). Our epoll only ever sees the descriptor through the
// connection's syscall.RawConn (Read, Control), which holds a reference to
// the descriptor for the length of the call: a close from anywhere waits
// for it, so a number closed and reused by another socket is never read or
// re-armed. The epoll events carry a token, not the descriptor, and the
// token is forgotten at teardown, before the socket is closed.
//
// The loops wait in Go's runtime poller too: an epoll descriptor is itself
// pollable, so a loop parks like any goroutine waiting for a socket instead
// of holding a thread in epoll_wait, and stops when its descriptor is
// closed. Loops start when a loop-mode server listens, or with the first
// connection that uses them, and stop when the last of those has gone:
// nothing outlives the actors. A server makes them before it accepts (see
// holdEventLoops): made by its first connection, they could meet a
// process whose accepts had already taken every descriptor.

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// loopEvents is the most events one epoll_wait returns.
const loopEvents = 256

// eventLoops is the process's loops, started by the first user — a
// loop-mode server that listens, or a connection that reads through one —
// and stopped with the last.
var eventLoops loopGroup

type loopGroup struct {
	mu    sync.Mutex
	refs  int
	loops []*eventLoop
}

// loopsPerProc is how many loops run per GOMAXPROCS, and
// loopsSharedPerProc how many of them a P take connections while these are
// few (spread). A loop copies every byte of its connections in its own read
// and write calls, one after the other; with one loop per P, a loop in a
// long copy holds up the others of its connections while the goroutine
// reader would run them on another thread. Measured under the bulk echo (8
// connections, GOMAXPROCS 2, one run each, loop/actor per round): 2 loops
// 0.86–0.92, 4 loops 1.00–1.01, 8 loops 0.97–1.03, and the 2 loops burned
// 19% more CPU for less throughput. An idle loop is one goroutine parked in
// the runtime poller and one epoll descriptor.
//
// Many connections want more loops: a loop answers the sockets one
// wake-up finds one after the other, so under ping-pong (100 connections ×
// 64 B) with 2 loops a P a wake-up found 6.5–11 ready sockets and replies
// left in bursts, while the machine idled 1.12–1.39× as long as a
// goroutine-per-connection server's. Few busy connections want fewer: with
// 4 loops a P the bulk echo's 8 connections had a loop each, and each loop
// woke twice as often (2,600 → 5,000 wake-ups a second, 24 → 13 reads a
// wake-up, the same bytes), for about 6 points less bulk. So connections
// go to loopsSharedPerProc loops a P, loopConns each, and to more loops as
// they grow, the least loaded first. Measured (bench kind loop against raw,
// GOMAXPROCS 2, quiet machine, medians of 8 interleaved runs a side of 5–7
// rounds each): ping-pong 0.960× → 0.973×, machine idle per round trip
// 1.2× → 1.07×, p99 0.94–1.15× against 0.91–1.37×, p50 not better (median
// 1.03× against 0.98×, 0.97–1.09× against 0.87–1.06×), server CPU per
// round trip unchanged (1.00–1.04×); a ping-pong wake-up found 5.5 ready
// sockets instead of 7–8. Bulk's 8 connections are placed as before
// (2,900–3,000 wake-ups a second, 22–25 reads each): median 1.00× against
// 0.97× (10 runs a side, 0.95–1.02× against 0.93–1.01×). Idle memory 0.23×
// either way. 8 loops a P measured as 4 (0.968×, p50 1.02×).
const (
	loopsPerProc       = 4
	loopsSharedPerProc = 2
	loopConns          = 2
)

// acquire picks a loop for one more connection, starting the loops if
// none runs: the one with the fewest connections among the first spread().
func (g *loopGroup) acquire() (*eventLoop, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.hold(); err != nil {
		return nil, err
	}
	// The loop with the fewest connections among those that take them:
	// a few comparisons of a small slice, once per connection.
	l := g.loops[0]
	for _, o := range g.loops[1:g.spread(g.placed()+1)] {
		if o.placed < l.placed {
			l = o
		}
	}
	l.placed++
	return l, nil
}

// spread is how many of the loops take new connections (the first ones)
// when there are conns: loopConns connections a loop, but never fewer than
// loopsSharedPerProc loops a P nor more than there are. Under mu.
func (g *loopGroup) spread(conns int) int {
	shared := len(g.loops) / loopsPerProc * loopsSharedPerProc
	return min(len(g.loops), max(shared, (conns+loopConns-1)/loopConns))
}

// placed is how many connections the loops have (acquire, leave). Under mu.
func (g *loopGroup) placed() int {
	n := 0
	for _, l := range g.loops {
		n += l.placed
	}
	return n
}

// leave gives the share back that acquire took for a connection of l.
func (g *loopGroup) leave(l *eventLoop) {
	g.mu.Lock()
	defer g.mu.Unlock()
	l.placed--
	g.drop()
}

// hold counts one more user, starting loopsPerProc × GOMAXPROCS loops if
// none runs: all of them or, when one cannot be made (EMFILE for its epoll
// descriptor), none, and the error. Under mu.
func (g *loopGroup) hold() error {
	if g.refs == 0 {
		for range loopsPerProc * runtime.GOMAXPROCS(0) {
			l, err := newEventLoop()
			if err != nil {
				for _, l := range g.loops {
					_ = l.file.Close()
				}
				g.loops = nil
				return err
			}
			g.loops = append(g.loops, l)
			go l.run()
		}
	}
	g.refs++
	return nil
}

// holdEventLoops keeps the process's loops running, starting them if none
// runs, until releaseEventLoops: a loop-mode server holds them while it
// listens, so that its connections join a loop without a new descriptor
// (server_loops.go says why).
func holdEventLoops() error {
	eventLoops.mu.Lock()
	defer eventLoops.mu.Unlock()
	return eventLoops.hold()
}

// releaseEventLoops gives back what holdEventLoops took.
func releaseEventLoops() { eventLoops.release() }

// release gives a user's share back; the last one stops the loops.
// It may run on a loop itself (a teardown on the loop): the loop ends when
// it next waits.
func (g *loopGroup) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.drop()
}

// drop is release under mu.
func (g *loopGroup) drop() {
	if g.refs--; g.refs > 0 {
		return
	}
	for _, l := range g.loops {
		_ = l.file.Close()
	}
	g.loops = nil
}

// eventLoop is one epoll instance and the goroutine that waits on it.
type eventLoop struct {
	epfd   int
	file   *os.File // epfd, so that Go's poller waits for it and Close stops the loop
	placed int      // the connections acquire gave it; under eventLoops.mu
	mu     sync.Mutex
	// conns are the loop's connections by slot, the low half of their
	// token; free are the slots let go. A slice, not a map by token: 8
	// bytes a connection where the map's slots and growth took about 29
	// (issue 14). Like a map, it keeps the room it grew to while the loop
	// runs.
	conns []*loopReader
	free  []uint32
	rd    *readOp // every read of the loop's goroutine
}

func newEventLoop() (*eventLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	// Non-blocking: NewFile registers it with the runtime poller.
	return &eventLoop{epfd: epfd, file: os.NewFile(uintptr(epfd), "tcpactor-epoll"),
		rd: newReadOp()}, nil
}

// run takes ready events until the loop's descriptor is closed. The wait
// and the check are one RawRead call (see rawIO.read): the callback looks
// first, so readiness that came while the last batch was handled is seen.
// The callback is made once, and a batch's connections are looked up under
// one lock: a wake-up allocates nothing and locks once.
//
// A batch is answered here, one connection after the other. Sharing a large
// one (more than 4–10 ready) with a helper goroutine per loop, which takes
// connections from it while the loop does, was measured under ping-pong
// and dropped: the helper answered 2–3% of the batches' connections (woken
// through a channel or through an eventfd in the runtime poller alike) —
// the other P was busy when a batch came — and ping-pong did not move.
func (l *eventLoop) run() {
	raw, err := l.file.SyscallConn()
	if err != nil {
		return
	}
	events := make([]unix.EpollEvent, loopEvents)
	ready := make([]readyConn, 0, loopEvents)
	n, failed := 0, false
	wait := func(fd uintptr) bool {
		for {
			var e error
			n, e = unix.EpollWait(int(fd), events, 0)
			switch {
			case e == unix.EINTR:
				continue
			case e != nil:
				n, failed = 0, true
				return true
			}
			return n > 0
		}
	}
	for {
		if err := raw.Read(wait); err != nil || failed {
			return // closed: the last connection has gone
		}
		l.mu.Lock()
		for i := range events[:n] {
			tok := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			if r := l.lookup(tok); r != nil {
				ready = append(ready, readyConn{r, events[i].Events})
			}
		}
		l.mu.Unlock()
		// A connection stopped since is harmless: stop took its permit and
		// its registration under its own lock, so ready finds nothing to do.
		for _, rc := range ready {
			rc.r.ready(rc.events)
		}
		clear(ready)
		ready = ready[:0]
	}
}

// readyConn is a connection an epoll_wait reported, with what it reported.
type readyConn struct {
	r      *loopReader
	events uint32
}

// loopTokens numbers the registrations, for the high half of their tokens:
// a slot let go and taken again gets another token, so an event the loop
// took for the slot's former connection finds nobody.
var loopTokens atomic.Uint32

// lookup is the connection a token names, nil when it has gone; under mu.
func (l *eventLoop) lookup(tok uint64) *loopReader {
	if slot := uint32(tok); int(slot) < len(l.conns) {
		if r := l.conns[slot]; r != nil && r.token == tok {
			return r
		}
	}
	return nil
}

// add gives r a slot and its token; under mu.
func (l *eventLoop) add(r *loopReader) {
	var slot uint32
	if n := len(l.free); n > 0 {
		slot, l.free = l.free[n-1], l.free[:n-1]
		l.conns[slot] = r
	} else {
		slot = uint32(len(l.conns))
		l.conns = append(l.conns, r)
	}
	r.token = uint64(slot) | uint64(loopTokens.Add(1))<<32
}

// remove lets r's slot go; under mu.
func (l *eventLoop) remove(r *loopReader) {
	if slot := uint32(r.token); l.lookup(r.token) == r {
		l.conns[slot] = nil
		l.free = append(l.free, slot)
	}
}

// Interest in the epoll set: edge-triggered EPOLLIN while enabled;
// EPOLLONESHOT alone while disabled, so that a hang-up or error (which
// epoll reports whatever the mask) wakes the loop once, not on every wait.
// Edge-triggered because a level-triggered socket is put back on the ready
// list by every epoll_wait that reports it and polled again by the next —
// the empty wait before each park polled every socket of the last batch.
// An edge comes with every arrival of bytes (or FIN, or error) after the
// last report, so a read that did not fill its buffer (the socket's queue
// was emptied) or found nothing needs no other; where bytes may be left
// (a full read not followed by another), interest is set again with
// EPOLL_CTL_MOD, which reports a socket that is readable already.
//
// The exceptions are the ends of the stream and urgent data: a read that
// returns the last bytes before the peer's FIN or a reset leaves the end
// to be read, and one that stops at TCP urgent data (MSG_OOB) leaves the
// bytes behind it — with no edge to follow either. Both are reported
// (EPOLLRDHUP, EPOLLHUP, EPOLLERR; EPOLLPRI), and a connection that
// reports one is level-triggered from then on (interestLevel), as every
// connection was before: it is ending, or its peer sends urgent data.
//
// EPOLLOUT joins whichever of these while a write waits for room in the
// socket's buffer (loopReader.waitWritable), and only then: a writable
// socket is writable almost always.
const (
	interestOn    = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLPRI | unix.EPOLLET
	interestLevel = unix.EPOLLIN
	interestOff   = unix.EPOLLONESHOT
	// levelEvents make a connection level-triggered.
	levelEvents = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLPRI
)

// loopReader is a connection's place in a loop: the actor gives it a permit
// for one read (arm), the loop reads once per permit and sends the result.
// Interest follows the permits lazily: it is enabled by the first permit and
// disabled by the first readiness that finds none, so a connection that
// reads on (an echo grants the next read while handling this one) costs no
// epoll_ctl per read, and one without credit is out of the loop's way after
// one wake-up, its bytes left in the kernel.
type loopReader struct {
	loop  *eventLoop
	token uint64
	raw   syscall.RawConn // under mu (rebind changes it)
	to    loopSink        // the connection

	mu       sync.Mutex
	permit   bool // a read is wanted: the next readiness (or time-out) answers it
	reading  bool // the loop took the permit and is reading
	expired  bool // the read time-out came while the loop was reading
	interest bool // enabled for EPOLLIN
	level    bool // level-triggered: it is ending or had urgent data (see interestOn)
	added    bool // in the epoll set
	outWait  bool // a write waits for room: EPOLLOUT is in the interest (waitWritable)

	rt *readTimer // ReadTimeout; nil without one: 8 bytes, not 16, keep the struct 80 (issue 14)

	// res is the result of the loop's reads, reused (see readOnce); made by
	// the first read, on the loop: a connection that never reads holds 8
	// bytes, not 32, and the struct stays 96 bytes (issue 14).
	res *readResult
}

// loopSink is where a loopReader sends its results, and how much it reads
// at once: the connection itself. An interface, not a bound sendSelf and a
// size: the bound method was a 16-byte closure per connection, and the
// interface takes the room of both fields (issue 14).
type loopSink interface {
	sendSelf(msg any)
	readSize() int
}

// readSize is how much one read takes: ReadChunkSize.
func (c *connection) readSize() int { return c.cfg.ReadChunkSize }

// send gives the connection a result.
func (r *loopReader) send(msg any) { r.to.sendSelf(msg) }

// newLoopReader registers a connection with a loop; nil when no loop can be
// made (the goroutine reader serves then).
func newLoopReader(raw syscall.RawConn, timeout time.Duration, to loopSink) *loopReader {
	l, err := eventLoops.acquire()
	if err != nil {
		return nil
	}
	r := &loopReader{loop: l, raw: raw, to: to}
	r.setTimeout(timeout)
	l.mu.Lock()
	l.add(r)
	l.mu.Unlock()
	return r
}

// arm gives the loop a permit for one read: it reads when the socket is
// readable and sends the result (or the read time-out comes first).
func (r *loopReader) arm() {
	if t := r.rt; t != nil && t.timeout > 0 {
		if t.timer == nil {
			t.timer = time.AfterFunc(t.timeout, r.timedOut)
		} else {
			t.timer.Reset(t.timeout)
		}
	}
	r.mu.Lock()
	r.permit = true
	var err error
	if !r.interest {
		r.interest = true
		if err = r.register(); err != nil {
			r.permit, r.interest = false, false
		}
	}
	r.mu.Unlock()
	if err != nil {
		r.send(&readResult{err: err}) // closed under the actor, most likely
	}
}

// loopReadsPerWake bounds the reads one readiness gives a connection: while
// its actor grants the next read at once (an echo's handler runs on the
// loop and grants it before send returns) and each read filled the buffer,
// more bytes are most likely waiting, so the loop reads on instead of going
// back through epoll_wait for the same socket; the bound keeps the loop fair
// to the other connections it serves.
//
// Measured under the bulk echo (8 connections, 32 KiB reads, all full):
// epoll_pwait calls per read fell from 0.31 to 0.08 and futex calls from
// 0.13 to 0.08 (strace -c of the bench's loop server).
const loopReadsPerWake = 16

// onMask is the interest of the connection while enabled.
func (r *loopReader) onMask() uint32 {
	if r.level {
		return interestLevel
	}
	return interestOn
}

// mask is the connection's interest now: reading (enabled or not), and
// EPOLLOUT while a write waits. Under mu.
func (r *loopReader) mask() uint32 {
	m := uint32(interestOff)
	if r.interest {
		m = r.onMask()
	}
	if r.outWait {
		m |= unix.EPOLLOUT
	}
	return m
}

// register sets the interest to mask(), adding the socket to the epoll set
// the first time: either reports a socket that is ready already, so no
// edge is lost. Under mu.
func (r *loopReader) register() error {
	op := unix.EPOLL_CTL_MOD
	if !r.added {
		op = unix.EPOLL_CTL_ADD
	}
	if err := r.ctl(op, r.mask()); err != nil {
		return err
	}
	r.added = true
	return nil
}

// waitWritable has the loop tell the connection (loopWritable) when the
// socket, whose buffer a write found full, has room again: EPOLLOUT joins
// the interest until then. Setting it reports a socket that has room
// already, so room made since the write is not missed. A raw socket then
// needs no writer goroutine and no promotion to a net.TCPConn for one: no
// duplicate descriptor (which may not be had: EMFILE) and no place in Go's
// poller beside ours.
func (r *loopReader) waitWritable() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outWait = true
	if err := r.register(); err != nil {
		r.outWait = false
		return err
	}
	return nil
}

// writable answers waitWritable: EPOLLOUT, or a hang-up or error, which
// the waiting write then meets. EPOLLOUT leaves the interest: left in, it
// would come with every readiness of a socket that writes.
func (r *loopReader) writable() {
	r.mu.Lock()
	if !r.outWait {
		r.mu.Unlock()
		return
	}
	r.outWait = false
	if r.added {
		_ = r.ctl(unix.EPOLL_CTL_MOD, r.mask())
	}
	r.mu.Unlock()
	r.send(loopWritable)
}

// ready is the loop's side: reads for the permits out, or, with none,
// interest off. events is what epoll reported.
func (r *loopReader) ready(events uint32) {
	if events&levelEvents != 0 {
		r.mu.Lock()
		if !r.level {
			r.level = true
			if r.interest {
				_ = r.ctl(unix.EPOLL_CTL_MOD, r.mask())
			}
		}
		r.mu.Unlock()
	}
	if events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		r.writable()
	}
	for i := 0; i < loopReadsPerWake; i++ {
		if !r.readOnce() {
			return
		}
	}
	// The bound: the last read was full, so bytes may wait, and no new edge
	// says so. Setting interest again reports the socket if it is readable.
	r.mu.Lock()
	if r.interest && !r.level {
		_ = r.ctl(unix.EPOLL_CTL_MOD, r.mask())
	}
	r.mu.Unlock()
}

// readOnce reads for the permit out. Without one — at the readiness itself,
// or after a full read whose result did not give the next permit at once —
// interest goes off: bytes may be left that no edge will announce, so the
// next permit sets interest again (arm), which reports them. It reports
// whether the read filled the buffer and the connection goes on (reading
// on may pay).
func (r *loopReader) readOnce() bool {
	r.mu.Lock()
	if !r.permit {
		if r.interest {
			r.interest = false
			_ = r.ctl(unix.EPOLL_CTL_MOD, r.mask())
		}
		r.mu.Unlock()
		return false
	}
	r.permit, r.reading = false, true
	raw := r.raw // under mu: a promotion moves the connection (rebind)
	r.mu.Unlock()
	size := r.to.readSize()
	buf, n, err := r.loop.rd.do(raw, size, false)
	r.mu.Lock()
	expired := r.expired
	r.reading, r.expired = false, false
	if err == errWouldBlock && !expired {
		// A spurious wake-up (or nothing more on a later pass): the permit
		// waits for the next bytes, which are an edge.
		r.permit = true
		r.mu.Unlock()
		return false
	}
	r.mu.Unlock()
	if err == errWouldBlock {
		r.send(&readResult{err: os.ErrDeadlineExceeded}) // timed out meanwhile
		return false
	}
	// One result of a connection is with its actor at a time (the next
	// permit comes with its handling), so the struct is reused.
	if r.res == nil {
		r.res = &readResult{}
	}
	r.send(r.res.set(buf, n, err))
	return err == nil && n == size
}

// timedOut answers the permit out with the read time-out, now or, when the
// loop is reading, if that read finds nothing.
func (r *loopReader) timedOut() {
	r.mu.Lock()
	had := r.permit
	r.permit = false
	if !had && r.reading {
		r.expired = true
	}
	r.mu.Unlock()
	if had {
		r.send(&readResult{err: os.ErrDeadlineExceeded})
	}
}

// setTimeout changes the read time-out for the next arm.
func (r *loopReader) setTimeout(d time.Duration) {
	if r.rt == nil {
		if d <= 0 {
			return
		}
		r.rt = &readTimer{}
	}
	r.rt.timeout = d
	if d <= 0 && r.rt.timer != nil {
		r.rt.timer.Stop()
	}
}

// readTimer is a loopReader's read time-out, the actor's alone.
type readTimer struct {
	timeout time.Duration
	timer   *time.Timer
}

// ctl changes the socket's registration, through the connection so that
// the descriptor cannot be closed meanwhile.
func (r *loopReader) ctl(op int, events uint32) error {
	if rc, ok := r.raw.(rawConn); ok {
		// A raw socket without a closure: one fewer allocation per
		// registration, garbage an accept would leave among long-lived
		// objects (issue 14).
		return rc.s.epollCtl(r.loop.epfd, op, unix.EpollEvent{Events: events, Fd: int32(r.token), Pad: int32(r.token >> 32)})
	}
	var err error
	cerr := r.raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: events, Fd: int32(r.token), Pad: int32(r.token >> 32)}
		err = unix.EpollCtl(r.loop.epfd, op, int(fd), &ev)
	})
	if cerr != nil {
		return cerr
	}
	return os.NewSyscallError("epoll_ctl", err)
}

// stop takes the connection out of its loop, before its socket is closed.
// A read the loop is doing meanwhile still sends its result, which the
// stopped actor drops.
func (r *loopReader) stop() {
	if r.rt != nil && r.rt.timer != nil {
		r.rt.timer.Stop()
	}
	r.mu.Lock()
	r.permit = false
	if r.added {
		_ = r.ctl(unix.EPOLL_CTL_DEL, 0)
		r.added, r.interest, r.outWait = false, false, false
	}
	r.mu.Unlock()
	r.loop.mu.Lock()
	r.loop.remove(r)
	r.loop.mu.Unlock()
	eventLoops.leave(r.loop)
}
