//go:build linux

package actors

// Raw sockets (issue 14): in event-loop mode a plain TCP connection that a
// server accepts stays a bare descriptor that only our epoll loops know. A
// net.TCPConn costs an idle connection its netFD, the TCPConn and two
// addresses on the heap (288 bytes) and, outside the heap, the runtime
// poller's pollDesc and its timers (about 0.55 KiB): a third of what an
// idle connection held. Accepting with accept4 inside the listener's
// RawConn keeps the accept goroutine parked in Go's poller for the
// listener alone.
//
// The connection reads and writes the descriptor through rawSock's
// syscall.RawConn (rawConn), which never waits (the loop knows readiness,
// for reads and for a write that would block), so the read path, the
// write path and the loop's epoll_ctl calls are those of a net.TCPConn.
// Whatever needs a real net.Conn — the socket lent to the owner
// (direct_io), the goroutine reader when no loop can be had — promotes the
// socket once (connection.promote): a duplicate becomes a net.TCPConn, the
// loop's registration moves to it, and the raw number is closed.
//
// The descriptor's lifetime is ours now, and a number is reused by the
// kernel as soon as it is closed: a close must never race a read, write,
// setsockopt or epoll_ctl of the same number on another goroutine (the
// loop reads while the actor closes). rawSock counts the calls in progress
// in one word, as Go's own fdMutex does: Close marks it closed, and the
// last call out — or Close itself, when none is in — closes the number.

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// rawSock is an accepted, non-blocking TCP socket that Go's runtime poller
// does not know: 16 bytes where a net.TCPConn holds 288 and a pollDesc. It
// is a net.Conn for the code that passes connections around (the accept
// gate's handover, the server's records), has a syscall.RawConn that never
// waits for the connection's fast paths, and the socket options of a
// *net.TCPConn (tcpSocket). Its addresses are asked of the socket when
// wanted (getsockname, getpeername): after a reset or a close there are
// none to report.
type rawSock struct {
	state atomic.Uint32 // calls in progress (low bits), rawClosed, rawLinger
	fd    int32
	tc    atomic.Pointer[net.TCPConn] // the promoted socket: the addresses are asked there
}

const (
	rawClosed = 1 << 31 // Close was called: no new call; the last one out closes
	rawLinger = 1 << 30 // SO_LINGER > 0: close(2) may block, so not on the caller
	rawRefs   = rawLinger - 1
)

// errRawClosed is the error of a call on a closed rawSock: net.ErrClosed,
// as a closed net.TCPConn's.
var errRawClosed = &net.OpError{Op: "raw", Net: "tcp", Err: net.ErrClosed}

// errRawCannotWait is the error of a RawConn callback that asks to wait
// for readiness: a rawSock is not in Go's poller (promote it first).
var errRawCannotWait = errors.New("tcpactor: a raw socket cannot wait in Go's poller")

// hold counts a call in; false: the socket is closed.
func (s *rawSock) hold() bool {
	for {
		v := s.state.Load()
		if v&rawClosed != 0 {
			return false
		}
		if s.state.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// release counts a call out, closing the descriptor when it was the last
// after Close.
func (s *rawSock) release() {
	if v := s.state.Add(^uint32(0)); v&rawRefs == 0 && v&rawClosed != 0 {
		s.closeFd(v&rawLinger != 0)
	}
}

func (s *rawSock) closeFd(linger bool) {
	if linger {
		go unix.Close(int(s.fd)) // SO_LINGER > 0 waits for the peer: not on a loop or an actor
		return
	}
	_ = unix.Close(int(s.fd))
}

// Close closes the descriptor, at once or when the call in progress ends.
func (s *rawSock) Close() error {
	for {
		v := s.state.Load()
		if v&rawClosed != 0 {
			return errRawClosed
		}
		if s.state.CompareAndSwap(v, v|rawClosed) {
			if v&rawRefs == 0 {
				s.closeFd(v&rawLinger != 0)
			}
			return nil
		}
	}
}

// Control calls f with the descriptor, which stays open meanwhile.
func (s *rawSock) Control(f func(fd uintptr)) error {
	if !s.hold() {
		return errRawClosed
	}
	f(uintptr(s.fd))
	s.release()
	return nil
}

// epollCtl is epoll_ctl(2) for the socket, which stays open meanwhile, as
// Control(f) would but without a closure to allocate.
func (s *rawSock) epollCtl(epfd, op int, ev unix.EpollEvent) error {
	if !s.hold() {
		return errRawClosed
	}
	err := unix.EpollCtl(epfd, op, int(s.fd), &ev)
	s.release()
	return os.NewSyscallError("epoll_ctl", err)
}

// rawConn is a rawSock's syscall.RawConn (its Read and Write are net.Conn's
// on the rawSock itself). One pointer: made without an allocation.
type rawConn struct{ s *rawSock }

// Control calls f with the descriptor, which stays open meanwhile.
func (r rawConn) Control(f func(fd uintptr)) error { return r.s.Control(f) }

// Read calls f once with the descriptor: f must not ask to wait.
func (r rawConn) Read(f func(fd uintptr) bool) error { return r.s.once(f) }

// Write calls f once with the descriptor: f must not ask to wait.
func (r rawConn) Write(f func(fd uintptr) bool) error { return r.s.once(f) }

func (s *rawSock) once(f func(fd uintptr) bool) error {
	if !s.hold() {
		return errRawClosed
	}
	done := f(uintptr(s.fd))
	s.release()
	if !done {
		return errRawCannotWait
	}
	return nil
}

// SyscallConn is the socket's RawConn, as a *net.TCPConn's.
func (s *rawSock) SyscallConn() (syscall.RawConn, error) { return rawConn{s}, nil }

// Read is net.Conn's Read without waiting: EAGAIN where a net.Conn would
// wait. Nothing of tcpactor calls it (the connection promotes the socket
// before it reads with a goroutine); it makes rawSock a net.Conn.
func (s *rawSock) Read(b []byte) (int, error) {
	return s.rw(b, unix.Read, "read")
}

// Write is net.Conn's Write without waiting, as Read.
func (s *rawSock) Write(b []byte) (int, error) {
	return s.rw(b, unix.Write, "write")
}

func (s *rawSock) rw(b []byte, call func(int, []byte) (int, error), op string) (int, error) {
	n, err := 0, error(nil)
	cerr := s.Control(func(fd uintptr) {
		for {
			if n, err = call(int(fd), b); err != unix.EINTR {
				break
			}
		}
	})
	switch {
	case cerr != nil:
		return 0, cerr
	case err != nil:
		return 0, os.NewSyscallError(op, err)
	case n == 0 && len(b) > 0 && op == "read":
		return 0, io.EOF
	}
	return n, nil
}

// LocalAddr asks the socket (getsockname); nil once it is closed.
func (s *rawSock) LocalAddr() net.Addr {
	if tc := s.tc.Load(); tc != nil {
		return tc.LocalAddr()
	}
	return s.addr(unix.Getsockname)
}

// RemoteAddr asks the socket (getpeername); nil once it is closed or reset.
func (s *rawSock) RemoteAddr() net.Addr {
	if tc := s.tc.Load(); tc != nil {
		return tc.RemoteAddr()
	}
	return s.addr(unix.Getpeername)
}

func (s *rawSock) addr(get func(int) (unix.Sockaddr, error)) net.Addr {
	var sa unix.Sockaddr
	if s.Control(func(fd uintptr) { sa, _ = get(int(fd)) }) != nil {
		return nil
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	case *unix.SockaddrInet6:
		ta := &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
		if a.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				ta.Zone = ifi.Name
			}
		}
		return ta
	}
	return nil
}

// call is the system call f on the descriptor, which stays open meanwhile:
// errRawClosed once the socket is closed, else f's error as an
// *os.SyscallError named name.
func (s *rawSock) call(name string, f func(fd int) error) error {
	var err error
	if cerr := s.Control(func(fd uintptr) { err = f(int(fd)) }); cerr != nil {
		return cerr
	}
	return os.NewSyscallError(name, err)
}

func (s *rawSock) setInt(level, opt, v int) error {
	return s.call("setsockopt", func(fd int) error { return unix.SetsockoptInt(fd, level, opt, v) })
}

// CloseWrite is shutdown(SHUT_WR): our FIN.
func (s *rawSock) CloseWrite() error {
	return s.call("shutdown", func(fd int) error { return unix.Shutdown(fd, unix.SHUT_WR) })
}

// SetNoDelay is TCP_NODELAY, as (*net.TCPConn).SetNoDelay.
func (s *rawSock) SetNoDelay(on bool) error {
	return s.setInt(unix.IPPROTO_TCP, unix.TCP_NODELAY, boolInt(on))
}

// SetKeepAlive is SO_KEEPALIVE, as (*net.TCPConn).SetKeepAlive.
func (s *rawSock) SetKeepAlive(on bool) error {
	return s.setInt(unix.SOL_SOCKET, unix.SO_KEEPALIVE, boolInt(on))
}

// SetKeepAlivePeriod is TCP_KEEPIDLE and TCP_KEEPINTVL in whole seconds,
// rounded up, as (*net.TCPConn).SetKeepAlivePeriod.
func (s *rawSock) SetKeepAlivePeriod(d time.Duration) error {
	secs := int((d + time.Second - 1) / time.Second)
	if err := s.setInt(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs); err != nil {
		return err
	}
	return s.setInt(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs)
}

// SetReadBuffer is SO_RCVBUF.
func (s *rawSock) SetReadBuffer(n int) error { return s.setInt(unix.SOL_SOCKET, unix.SO_RCVBUF, n) }

// SetWriteBuffer is SO_SNDBUF.
func (s *rawSock) SetWriteBuffer(n int) error { return s.setInt(unix.SOL_SOCKET, unix.SO_SNDBUF, n) }

// SetLinger is SO_LINGER, as (*net.TCPConn).SetLinger; a positive one makes
// the close happen off the closing goroutine, since close(2) then waits.
func (s *rawSock) SetLinger(sec int) error {
	l := unix.Linger{}
	if sec >= 0 {
		l.Onoff, l.Linger = 1, int32(sec)
	}
	if err := s.call("setsockopt", func(fd int) error { return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &l) }); err != nil {
		return err
	}
	for {
		v := s.state.Load()
		nv := v &^ rawLinger
		if sec > 0 {
			nv |= rawLinger
		}
		if s.state.CompareAndSwap(v, nv) {
			return nil
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// net.Conn's deadlines: a rawSock has none (the loop's ReadTimeout is a
// timer); the connection never sets one on it.
var errRawNoDeadline = errors.New("tcpactor: a raw socket has no deadlines")

// SetDeadline fails: see errRawNoDeadline.
func (s *rawSock) SetDeadline(time.Time) error { return errRawNoDeadline }

// SetReadDeadline fails: see errRawNoDeadline.
func (s *rawSock) SetReadDeadline(time.Time) error { return errRawNoDeadline }

// SetWriteDeadline fails: see errRawNoDeadline.
func (s *rawSock) SetWriteDeadline(time.Time) error { return errRawNoDeadline }

// keptOptions are the socket options Go sets on every socket it accepts
// and net.FileConn sets afresh on the socket it makes (TCP_NODELAY,
// keep-alive and its timing): promote reads them before and puts them
// back, so a promotion changes nothing the owner set.
var keptOptions = [...][2]int{
	{unix.IPPROTO_TCP, unix.TCP_NODELAY},
	{unix.SOL_SOCKET, unix.SO_KEEPALIVE},
	{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
	{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
	{unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
}

// acceptedValues are the values of keptOptions that Go's Accept sets (see
// net.newTCPConn: no delay, keep-alive every 15 s, 9 probes).
var acceptedValues = [len(keptOptions)]int{1, 1, 15, 15, 9}

// promote makes a *net.TCPConn of a duplicate of the socket, with its
// options as they were. The raw number stays open (the caller moves the
// loop's registration, then closes it); from now on the addresses are the
// new socket's.
func (s *rawSock) promote() (*net.TCPConn, error) {
	var opts [len(keptOptions)]int
	dup, err := -1, error(nil)
	cerr := s.Control(func(fd uintptr) {
		for i, o := range keptOptions {
			opts[i], _ = unix.GetsockoptInt(int(fd), o[0], o[1])
		}
		dup, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	})
	switch {
	case cerr != nil:
		return nil, cerr
	case err != nil:
		return nil, os.NewSyscallError("dup", err)
	}
	f := os.NewFile(uintptr(dup), "tcpactor-raw")
	c, err := net.FileConn(f) // another duplicate, in Go's poller
	_ = f.Close()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		_ = c.Close()
		return nil, errors.New("tcpactor: a raw socket promoted to a non-TCP connection")
	}
	if raw, err := tc.SyscallConn(); err == nil {
		_ = raw.Control(func(fd uintptr) {
			for i, o := range keptOptions {
				_ = unix.SetsockoptInt(int(fd), o[0], o[1], opts[i])
			}
		})
	}
	s.tc.Store(tc)
	return tc, nil
}

// rawListener accepts raw sockets from a TCP listener: accept4 inside a
// RawConn, so that the accept goroutine waits in Go's poller, while the
// sockets it accepts stay out of it. A TCPListener's own RawConn cannot
// wait (its Read is EINVAL), so the wait is on a duplicate of the
// listener, an *os.File in the poller: its deadline and Close wake the
// wait as the listener's wake Accept, and Close closes both.
type rawListener struct {
	*net.TCPListener
	f       *os.File // the duplicate: Accept waits, the deadline is set, here
	rc      syscall.RawConn
	fn      func(fd uintptr) bool // l.call, bound once
	inherit bool                  // the listener carries the accepted sockets' options
	nfd     int
	err     error
}

// rawAccepting wraps ln to accept raw sockets when it is a TCP listener;
// anything else is returned as it is, and so is ln when it cannot be
// duplicated. A listener the server made (owned) gets the options Go's
// Accept sets on every socket (TCP_NODELAY, keep-alive every 15 s, 9
// probes) once: Linux copies them into every socket it accepts, which
// spares five setsockopt calls per accept. An adopted listener
// (setSocketDescriptor) is its caller's socket: its options are left alone
// and each accepted socket gets them instead.
func rawAccepting(ln listener, owned bool) listener {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return ln
	}
	f, err := tl.File() // non-blocking, and so in Go's poller
	if err != nil {
		return ln
	}
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return ln
	}
	l := &rawListener{TCPListener: tl, f: f, rc: rc}
	l.fn = l.call
	if owned {
		ok := true
		_ = rc.Control(func(fd uintptr) { ok = setAcceptedOptions(int(fd)) == nil })
		l.inherit = ok
	}
	return l
}

// SetDeadline sets the deadline of Accept.
func (l *rawListener) SetDeadline(t time.Time) error { return l.f.SetDeadline(t) }

// Close closes the duplicate, which wakes an Accept, and the listener.
func (l *rawListener) Close() error {
	_ = l.f.Close()
	return l.TCPListener.Close()
}

// setAcceptedOptions sets what Go's Accept sets on each socket
// (acceptedValues).
func setAcceptedOptions(fd int) error {
	for i, o := range keptOptions {
		if err := unix.SetsockoptInt(fd, o[0], o[1], acceptedValues[i]); err != nil {
			return err
		}
	}
	return nil
}

// Accept accepts one raw socket. Its errors are Accept's: net.ErrClosed
// once the listener is closed, os.ErrDeadlineExceeded past the deadline,
// and accept4's own (EMFILE…) otherwise.
func (l *rawListener) Accept() (net.Conn, error) {
	l.nfd, l.err = -1, nil
	if err := l.rc.Read(l.fn); err != nil {
		if errors.Is(err, os.ErrClosed) { // the duplicate's: Accept's is net.ErrClosed
			err = net.ErrClosed
		}
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: err}
	}
	if l.err != nil {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", l.err)}
	}
	if !l.inherit {
		_ = setAcceptedOptions(l.nfd)
	}
	return &rawSock{fd: int32(l.nfd)}, nil
}

// call is accept4 without the peer's address (asked when needed):
// non-blocking and close-on-exec from the start. false: nothing to accept,
// Go's poller waits.
func (l *rawListener) call(fd uintptr) bool {
	for {
		nfd, _, e := unix.Syscall6(unix.SYS_ACCEPT4, fd, 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		switch e {
		case 0:
			l.nfd = int(nfd)
			return true
		case unix.EINTR, unix.ECONNABORTED: // as Go's accept: the next one
			continue
		case unix.EAGAIN:
			return false
		default:
			l.err = e
			return true
		}
	}
}

// isRawSock tells a raw socket.
func isRawSock(conn net.Conn) bool {
	_, ok := conn.(*rawSock)
	return ok
}

// promote turns a raw socket into a *net.TCPConn, once, for what needs a
// real net.Conn: the socket lent to the owner (direct_io), a goroutine
// reader (no event loop could be had). The loop's registration moves to the new descriptor with the
// interest it had, so a read that is armed stays armed; a read the loop is
// doing on the raw number meanwhile ends first (rawSock's count), then the
// number is closed. An error (EMFILE for the duplicate, most likely) is the
// caller's to end the connection with: the socket is left as it was, or,
// when the loop could not take the new descriptor, promoted but unread.
func (c *connection) promote() error {
	rs, ok := c.conn.(*rawSock)
	if !ok {
		return nil
	}
	tc, err := rs.promote()
	if err != nil {
		return err
	}
	raw, err := tc.SyscallConn()
	if err == nil && c.loop != nil {
		err = c.loop.rebind(raw)
	}
	c.conn, c.raw = tc, raw
	_ = rs.Close()
	return err
}

// rebind moves the connection's registration to raw, a promoted socket:
// the raw descriptor leaves the epoll set and the new one joins with the
// same interest (EPOLL_CTL_ADD reports it at once if it is readable: no
// edge is lost). The token stays, so an event of the old descriptor that
// the loop already took reads the new one, the same socket.
func (r *loopReader) rebind(raw syscall.RawConn) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.added {
		r.raw = raw
		return nil
	}
	events := r.mask()
	_ = r.ctl(unix.EPOLL_CTL_DEL, 0)
	r.raw = raw
	if err := r.ctl(unix.EPOLL_CTL_ADD, events); err != nil {
		r.added, r.interest, r.outWait = false, false, false
		return err
	}
	return nil
}
