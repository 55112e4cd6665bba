//go:build linux

package actors

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
	"golang.org/x/sys/unix"
)

// serverSideFDs are the descriptors of this process that are the server's
// end of client c: local address c's remote, peer address c's local.
func serverSideFDs(t *testing.T, c net.Conn) []int {
	t.Helper()
	local, remote := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); !strings.HasPrefix(link, "socket:") {
			continue
		}
		la, err1 := unix.Getsockname(fd)
		pa, err2 := unix.Getpeername(fd)
		if err1 != nil || err2 != nil {
			continue
		}
		l4, ok1 := la.(*unix.SockaddrInet4)
		p4, ok2 := pa.(*unix.SockaddrInet4)
		if ok1 && ok2 && l4.Port == remote.Port && p4.Port == local.Port {
			fds = append(fds, fd)
		}
	}
	return fds
}

// epollMasks is the event mask of descriptor fd in every epoll set of this
// process that holds it (isRuntimeMask tells the Go runtime's).
func epollMasks(t *testing.T, fd int) []uint64 {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var masks []uint64
	for _, e := range ents {
		if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); link != "anon_inode:[eventpoll]" {
			continue
		}
		f, err := os.Open("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var tfd int
			var events string
			if _, err := fmt.Sscanf(sc.Text(), "tfd: %d events: %s", &tfd, &events); err != nil || tfd != fd {
				continue
			}
			if ev, err := strconv.ParseUint(strings.TrimSpace(events), 16, 32); err == nil {
				masks = append(masks, ev)
			}
		}
		f.Close()
	}
	return masks
}

// runtimeMask is the interest of every socket in the Go runtime's poller
// (netpoll_epoll.go). A loop's is never this: edge-triggered it has
// EPOLLPRI as well, level-triggered no EPOLLET, and EPOLLOUT only while a
// write waits.
const runtimeMask = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

// isRuntimeMask tells the Go runtime's registration of a socket; the
// kernel shows EPOLLERR and EPOLLHUP in every mask.
func isRuntimeMask(ev uint64) bool {
	return uint32(ev)&^uint32(unix.EPOLLERR|unix.EPOLLHUP) == uint32(runtimeMask)
}

// epollSets counts the epoll sets of this process that hold descriptor fd:
// the Go runtime's poller and ours, the event loops.
func epollSets(t *testing.T, fd int) (runtimes, loops int) {
	t.Helper()
	for _, ev := range epollMasks(t, fd) {
		if isRuntimeMask(ev) {
			runtimes++
		} else {
			loops++
		}
	}
	return runtimes, loops
}

// slowReaderClaimed starts a loop-mode server, connects a client whose
// receive buffer is 4 KiB (its writes block soon) and claims the connection
// for an inbox.
func slowReaderClaimed(t *testing.T) (*testServer, net.Conn, *inbox, *actor.PID) {
	t.Helper()
	s := startServer(t, ServerOptions{Connection: ConnectionConfig{ReadMode: ReadLoop}})
	addr := s.listen()
	d := net.Dialer{Timeout: replyTimeout, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	in := newInbox(t, s.sys)
	s.waitStatus("the client pending", pendingIs(1))
	return s, c, in, claimNext(s, in.pid).Connection
}

// oneServerSide waits (bounded) until client c has exactly one server-side
// descriptor and returns it.
func oneServerSide(t *testing.T, c net.Conn, what string) int {
	t.Helper()
	deadline := time.Now().Add(connWait)
	for {
		fds := serverSideFDs(t, c)
		if len(fds) == 1 {
			return fds[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: server-side descriptors %v, want one", what, fds)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestALoopModeServerKeepsItsSocketsOutOfGosPoller: a connection that a
// server in loop mode accepted is one descriptor in one epoll set, the
// event loop's — not also in the Go runtime's poller, whose pollDesc and
// timers were a third of an idle connection's memory (issue 14). It is
// served (echo), and its addresses are reported, asked of the socket.
func TestALoopModeServerKeepsItsSocketsOutOfGosPoller(t *testing.T) {
	s := startServer(t, ServerOptions{Connection: ConnectionConfig{Handler: EchoHandler(), ReadMode: ReadLoop}})
	c := dial(t, s.listen())
	echoOnce(t, c, "raw")
	fd := oneServerSide(t, c, "an echoed connection")
	if rt, loops := epollSets(t, fd); rt != 0 || loops != 1 {
		t.Fatalf("the server's socket is in %d runtime and %d loop epoll sets: want 0 and 1", rt, loops)
	}
	for _, o := range [...]struct {
		level, opt, want int
	}{{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1}, {unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1}, {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15}} {
		if v, err := unix.GetsockoptInt(fd, o.level, o.opt); err != nil || v != o.want {
			t.Errorf("option %d/%d of the accepted socket: %d (%v), want %d as Go's Accept sets", o.level, o.opt, v, err, o.want)
		}
	}
	st := ask[*messages.ServerStatus](s, &messages.GetStatus{Connections: true})
	if len(st.Connections) != 1 {
		t.Fatalf("%d connections reported, want 1", len(st.Connections))
	}
	ci := st.Connections[0]
	local := c.LocalAddr().(*net.TCPAddr)
	if ci.PeerAddress != "127.0.0.1" || ci.PeerPort != uint32(local.Port) || ci.LocalPort != uint32(c.RemoteAddr().(*net.TCPAddr).Port) {
		t.Fatalf("reported %s:%d → %s:%d, want the client %v", ci.PeerAddress, ci.PeerPort, ci.LocalAddress, ci.LocalPort, local)
	}
}

// TestABlockedWriteOnARawSocketWaitsInItsLoopWithItsReadArmed: an owner
// writes more than a client that does not read can take, while the
// connection has a read armed in the loop. The write that would block
// waits for room in the event loop (EPOLLOUT joins the socket's interest
// there): the socket stays raw — the same descriptor, in no epoll set of
// Go's runtime, no writer goroutine. The read stays armed meanwhile (the
// client's bytes arrive), every write is acknowledged in order once the
// client reads, the bytes are whole, and EPOLLOUT leaves the interest
// again. Once the connection has ended no descriptor of it is left.
func TestABlockedWriteOnARawSocketWaitsInItsLoopWithItsReadArmed(t *testing.T) {
	s, c, in, conn := slowReaderClaimed(t)
	defer c.Close()
	fd := oneServerSide(t, c, "a claimed connection")
	if rt, _ := epollSets(t, fd); rt != 0 {
		t.Fatalf("before any write the server's socket is in %d runtime epoll sets: want it raw, in none", rt)
	}
	sndbuf := int32(4096)
	if a := call[*messages.Ack](t, s.sys, conn, &messages.SetSocketOption{SendBufferSize: &sndbuf}); a.Error.Failed() {
		t.Fatalf("SetSocketOption: %v", a.Error)
	}

	const writes, size = 16, 64 << 10
	want := make([]byte, 0, writes*size)
	for i := range writes {
		chunk := bytes.Repeat([]byte{byte('a' + i)}, size)
		want = append(want, chunk...)
		s.sys.Root.Send(conn, &messages.Write{Data: chunk, AckId: uint64(i + 1)})
	}
	waitOut(t, fd, true, "a write that found the socket's buffer full")
	if rt, loops := epollSets(t, fd); rt != 0 || loops != 1 {
		t.Fatalf("while a write waits the server's socket is in %d runtime and %d loop epoll sets: want 0 and 1", rt, loops)
	}
	if fds := serverSideFDs(t, c); len(fds) != 1 || fds[0] != fd {
		t.Fatalf("server-side descriptors while a write waits: %v, want %d alone", fds, fd)
	}
	waitInterest(t, fd, true, "a connection with credit while a write waits")
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(connWait))
		b := make([]byte, len(want))
		n, _ := io.ReadFull(c, b)
		got <- b[:n]
	}()
	acks, received := 0, ""
	for acks < writes || received != "ping" {
		switch m := in.next(t).(type) {
		case *messages.WriteAck:
			acks++
			if m.AckId != uint64(acks) {
				t.Fatalf("WriteAck %d came as the %dth", m.AckId, acks)
			}
		case *messages.Received:
			received += string(m.Data)
			s.sys.Root.Send(conn, &messages.Demand{N: 1})
		default:
			t.Fatalf("owner got %s", describe(m))
		}
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the client read %d bytes, not the %d written in order", len(b), len(want))
	}
	waitOut(t, fd, false, "every write acknowledged")
	if rt, _ := epollSets(t, fd); rt != 0 {
		t.Fatalf("after the writes the server's socket is in %d runtime epoll sets: want none", rt)
	}
	end := watchEnd(t, s.sys, conn)
	if a := call[*messages.Ack](t, s.sys, conn, &messages.Close{}); a.Error.Failed() {
		t.Fatalf("Close: %v", a.Error)
	}
	c.Close()
	waitClosed(t, end, "the end of the connection")
	deadline := time.Now().Add(connWait)
	for {
		fds := serverSideFDs(t, c)
		if len(fds) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("descriptors %v of an ended connection left open", fds)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitOut waits (bounded) until socket fd's interest in its event loop has
// EPOLLOUT (on) or has not.
func waitOut(t *testing.T, fd int, on bool, what string) {
	t.Helper()
	deadline := time.Now().Add(connWait)
	for {
		events, ok := epollEvents(t, fd)
		if ok && (events&unix.EPOLLOUT != 0) == on {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: loop epoll events %#x (registered %v), want EPOLLOUT %v", what, events, ok, on)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawPair accepts a raw socket from a real listener and returns it with
// its client.
func rawPair(t *testing.T) (*rawSock, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := rawAccepting(ln.(*net.TCPListener), true)
	defer rl.Close()
	c := dial(t, ln.Addr().String())
	sc, err := rl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	rs := sc.(*rawSock)
	t.Cleanup(func() { _ = rs.Close() })
	return rs, c
}

// fdLink is what descriptor fd is ("socket:[inode]"), "" when closed.
func fdLink(fd int32) string {
	link, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(fd)))
	return link
}

// TestARawSocketIsClosedOnlyOnceTheCallInItEnds: a raw socket's number is
// closed by Close only when no call holds it (the loop reading, an
// epoll_ctl), so that the number, which the kernel reuses at once, is never
// read or re-armed as another socket's. A call that holds it across a
// Close sees the same socket throughout; the last call out closes it; no
// call starts after Close.
func TestARawSocketIsClosedOnlyOnceTheCallInItEnds(t *testing.T) {
	rs, c := rawPair(t)
	ino := fdLink(rs.fd)
	raw, _ := rs.SyscallConn()
	inCall, leave, left := make(chan struct{}), make(chan struct{}), make(chan string, 1)
	go func() {
		_ = raw.Read(func(fd uintptr) bool {
			close(inCall)
			<-leave
			left <- fdLink(int32(fd))
			return true
		})
	}()
	<-inCall
	if err := rs.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Descriptors opened now would take a closed number.
	probe, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	if got := fdLink(rs.fd); got != ino {
		t.Fatalf("descriptor %d is %q while a call holds it, want the socket %q", rs.fd, got, ino)
	}
	close(leave)
	if got := <-left; got != ino {
		t.Fatalf("the call saw %q, want %q", got, ino)
	}
	if err := raw.Control(func(uintptr) { t.Error("a call started after Close") }); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a call after Close: %v, want net.ErrClosed", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(connWait))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the client read %v after the last call closed the socket, want EOF", err)
	}
}

// TestARawSocketClosesRightAwayWithNoCallInIt: without a call in, Close
// closes the number at once, and a second Close fails as a net.Conn's.
func TestARawSocketClosesRightAwayWithNoCallInIt(t *testing.T) {
	rs, c := rawPair(t)
	if err := rs.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(connWait))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read %v, want EOF", err)
	}
	if err := rs.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v, want net.ErrClosed", err)
	}
	if rs.LocalAddr() != nil || rs.RemoteAddr() != nil {
		t.Fatal("a closed raw socket reports addresses")
	}
}

// TestABlockedWriteOnARawSocketNeedsNoDescriptor: out of descriptors, a
// write that would block on a raw socket still waits and completes: it
// waits in the event loop, which needs no new descriptor (a writer
// goroutine would need a net.TCPConn, a duplicate, and fail with EMFILE).
// Every write is acknowledged, in order, once the client reads, and
// nothing fails. It runs alone in a child process, since it takes every
// descriptor the process may open.
func TestABlockedWriteOnARawSocketNeedsNoDescriptor(t *testing.T) {
	if os.Getenv(aloneEnv) == "" {
		runAlone(t)
		return
	}
	s, c, in, conn := slowReaderClaimed(t)
	defer c.Close()
	sndbuf := int32(4096)
	if a := call[*messages.Ack](t, s.sys, conn, &messages.SetSocketOption{SendBufferSize: &sndbuf}); a.Error.Failed() {
		t.Fatalf("SetSocketOption: %v", a.Error)
	}
	fd := oneServerSide(t, c, "a claimed connection") // reading /proc takes a descriptor: before

	// Every descriptor number the process may use is taken. The writes
	// below are many times what the two buffers hold: they block at once.
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	saved := rl
	rl.Cur = uint64(openFDs(t) + 64)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	var fillers []int
	restore := func() {
		for _, f := range fillers {
			_ = unix.Close(f)
		}
		fillers = nil
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &saved)
	}
	defer restore()
	for range rl.Cur {
		f, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fillers = append(fillers, f)
	}

	const writes, size = 16, 64 << 10
	want := make([]byte, 0, writes*size)
	for i := range writes {
		chunk := bytes.Repeat([]byte{byte('a' + i)}, size)
		want = append(want, chunk...)
		s.sys.Root.RequestWithCustomSender(conn, &messages.Write{Data: chunk, AckId: uint64(i + 1)}, in.pid)
	}
	got := make(chan []byte, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(connWait))
		b := make([]byte, len(want))
		n, _ := io.ReadFull(c, b)
		got <- b[:n]
	}()
	for acks := 0; acks < writes; {
		switch m := in.next(t).(type) {
		case *messages.WriteAck:
			acks++
			if m.AckId != uint64(acks) {
				t.Fatalf("WriteAck %d came as the %dth", m.AckId, acks)
			}
		default:
			t.Fatalf("owner got %s, want WriteAck %d", describe(m), acks+1)
		}
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the client read %d bytes, not the %d written in order", len(b), len(want))
	}
	restore()
	if fds := serverSideFDs(t, c); len(fds) != 1 || fds[0] != fd {
		t.Fatalf("server-side descriptors after the writes: %v, want %d alone", fds, fd)
	}
}

// TestLendingARawSocketPromotesItAndTheOwnerReadsAndWritesIt: direct_io
// lends the owner a net.TCPConn to read with Go's poller, so a raw socket
// is promoted when it is lent — here with the connection's read armed in
// the loop (claimed first without direct_io, then claimed again with it).
// The owner reads what the client sent and writes the answer on the new
// socket; the raw descriptor is gone.
func TestLendingARawSocketPromotesItAndTheOwnerReadsAndWritesIt(t *testing.T) {
	s := startServer(t, ServerOptions{Connection: ConnectionConfig{ReadMode: ReadLoop}})
	c := dial(t, s.listen())
	in := newInbox(t, s.sys)
	s.waitStatus("the client pending", pendingIs(1))
	conn := claimNext(s, in.pid).Connection
	fd := oneServerSide(t, c, "a claimed connection")
	waitInterest(t, fd, true, "a claimed connection with credit")
	if rt, _ := epollSets(t, fd); rt != 0 {
		t.Fatalf("a claimed connection is in %d runtime epoll sets: want it raw, in none", rt)
	}
	claim(t, s.sys, conn, in.pid, &messages.ClaimOptions{DirectIo: true})
	d := expectNext[*DirectIO](t, in)
	promoted := oneServerSide(t, c, "a lent connection")
	if rt, _ := epollSets(t, promoted); promoted == fd || rt == 0 {
		t.Fatalf("the lent socket is descriptor %d (raw %d), in %d runtime epoll sets: want a new one in Go's poller", promoted, fd, rt)
	}
	if _, err := c.Write([]byte("question")); err != nil {
		t.Fatal(err)
	}
	d.SetReadDeadline(time.Now().Add(connWait))
	buf := make([]byte, 64)
	n, err := d.Read(buf)
	if err != nil || string(buf[:n]) != "question" {
		t.Fatalf("DirectIO.Read: %q, %v; want question", buf[:n], err)
	}
	if n := d.Write([]byte("answer")); n != len("answer") {
		t.Fatalf("DirectIO.Write wrote %d bytes", n)
	}
	if got := readN(t, c, len("answer")); string(got) != "answer" {
		t.Fatalf("the client read %q, want answer", got)
	}
}

// rawClaimed is a connection a loop-mode server accepted raw, claimed by an
// inbox, with its client.
func rawClaimed(t *testing.T) (s *testServer, c net.Conn, conn *actor.PID, in *inbox) {
	t.Helper()
	s = startServer(t, ServerOptions{Connection: ConnectionConfig{ReadMode: ReadLoop}})
	c = dial(t, s.listen())
	in = newInbox(t, s.sys)
	s.waitStatus("the client pending", pendingIs(1))
	conn = claimNext(s, in.pid).Connection
	if rt, _ := epollSets(t, oneServerSide(t, c, "a claimed connection")); rt != 0 {
		t.Fatalf("a claimed connection is in %d runtime epoll sets: want it raw, in none", rt)
	}
	return s, c, conn, in
}

// TestARawSocketHalfClosesReportsItsAddressesAndResetsAsATCPConnDoes: what
// a net.TCPConn did for a connection, a raw socket does with system calls:
// ConnectionInfo's addresses (getsockname, getpeername), CloseWrite
// (shutdown: the client reads EOF and can still send), and, on another
// connection, Abort (SO_LINGER 0: the client is reset).
func TestARawSocketHalfClosesReportsItsAddressesAndResetsAsATCPConnDoes(t *testing.T) {
	s, c, conn, in := rawClaimed(t)
	i := info(t, s.sys, conn)
	local, remote := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	if i.PeerAddress != "127.0.0.1" || i.PeerPort != uint32(local.Port) || i.LocalAddress != "127.0.0.1" || i.LocalPort != uint32(remote.Port) {
		t.Fatalf("ConnectionInfo %s:%d ← %s:%d, want %v ← %v", i.LocalAddress, i.LocalPort, i.PeerAddress, i.PeerPort, remote, local)
	}
	if a := call[*messages.Ack](t, s.sys, conn, &messages.CloseWrite{}); a.Error.Failed() {
		t.Fatalf("CloseWrite: %v", a.Error)
	}
	_ = c.SetReadDeadline(time.Now().Add(connWait))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after CloseWrite the client read %d, %v; want EOF", n, err)
	}
	if _, err := c.Write([]byte("still")); err != nil {
		t.Fatal(err)
	}
	if r := expectNext[*messages.Received](t, in); string(r.Data) != "still" {
		t.Fatalf("Received %q, want still", r.Data)
	}
	s2, c2, conn2, _ := rawClaimed(t)
	if a := call[*messages.Ack](t, s2.sys, conn2, &messages.Abort{}); a.Error.Failed() {
		t.Fatalf("Abort: %v", a.Error)
	}
	if _, err := readAll(t, c2); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after Abort the client read %v, want connection reset", err)
	}
}
