//go:build linux

package actors

import (
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/tcpactor/tcpactor/messages"
)

// idleConns is how many idle connections the heap test holds.
const idleConns = 1000

// idleHeapBound is the most live heap one idle connection in loop mode may
// hold, its server's share included: the ConnectionActor (its state,
// Proto.Actor's context, mailbox, PID and registry entry), the raw socket
// (rawsock_linux.go: no netFD, TCPConn or addresses), the event loop's
// registration, the server's record and the process registry of
// connections. Measured 800-845 bytes (3,546 before issue 14's shave,
// about 1,780 with a net.TCPConn per socket, about 1,500 with Proto.Actor's
// 32,768 registry maps and the 384-byte struct, 882-909 with the structs a
// size class up and the registry keyed by name); the bound leaves room for
// noise, not for a net.TCPConn, a watch, a Props, a record per connection,
// the sparse registry (testkit.NewSystem compacts it) or those to come back.
const idleHeapBound = 950

// idleGarbageBound is the most an accept in loop mode may allocate and let
// go, per connection: garbage made among the objects that live on shares
// their pages, which stay resident for every idle connection that keeps one
// object there (issue 14). What is left is the growth of the maps that
// record every connection (about 330 bytes); the addresses, info and
// NewConnection nobody asked for, a second copy of the name, the closure of
// the loop's epoll_ctl and the mailbox's system ring took about 1,150.
const idleGarbageBound = 600

// heapFigures are the live heap after a full collection and the bytes
// allocated so far.
func heapFigures() (live, total int64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), int64(ms.TotalAlloc)
}

// The clients are raw sockets, not net.Conns, so that the heap the test
// measures is the server's alone; it runs alone in a child process, so that
// no other test's garbage moves the heap. Nothing polls the server while
// the figures are taken: the echo of the last connection says every one was
// admitted (the server admits in order, and spawns each at once).
func TestAnIdleConnectionInLoopModeHoldsLittleHeap(t *testing.T) {
	if os.Getenv(aloneEnv) == "" {
		runAlone(t)
		return
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Max < 2*idleConns+100 {
		t.Skipf("RLIMIT_NOFILE hard limit %d: %d descriptors needed", rl.Max, 2*idleConns+100)
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, ServerOptions{Connection: ConnectionConfig{Handler: EchoHandler(), ReadMode: ReadLoop}})
	addr := s.listen()
	sa := rawSockaddr(t, addr)

	// One connection first, so that the event loops, pools and the
	// server's maps exist before the baseline.
	warm := dialRaw(t, sa)
	echoRaw(t, warm)
	closeRaw(t, warm)
	s.waitStatus("the warm-up connection to end", func(st *messages.ServerStatus) bool { return st.Active == 0 })
	fds := make([]int, 0, idleConns)
	t.Cleanup(func() {
		for _, fd := range fds {
			_ = syscall.Close(fd)
		}
	})
	baseLive, baseTotal := heapFigures()

	for range idleConns {
		fds = append(fds, dialRaw(t, sa))
	}
	echoRaw(t, fds[len(fds)-1])
	live, total := heapFigures()
	perConn := (live - baseLive) / idleConns
	garbage := ((total - baseTotal) - (live - baseLive)) / idleConns
	t.Logf("live heap per idle connection: %d bytes; garbage per accept: %d bytes", perConn, garbage)
	if perConn > idleHeapBound {
		t.Errorf("an idle connection holds %d bytes of heap, want at most %d", perConn, idleHeapBound)
	}
	if garbage > idleGarbageBound {
		t.Errorf("an accept leaves %d bytes of garbage, want at most %d", garbage, idleGarbageBound)
	}
	s.waitStatus("every connection to be served", func(st *messages.ServerStatus) bool { return st.Active == idleConns })
}

// echoRaw checks that the connection on fd echoes a byte.
func echoRaw(t *testing.T, fd int) {
	t.Helper()
	tv := syscall.NsecToTimeval(int64(replyTimeout))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	if _, err := syscall.Write(fd, []byte{'x'}); err != nil {
		t.Fatal(err)
	}
	var buf [1]byte
	if n, err := syscall.Read(fd, buf[:]); n != 1 || buf[0] != 'x' {
		t.Fatalf("echo: read %d bytes (%q), %v", n, buf[:max(n, 0)], err)
	}
}

func rawSockaddr(t *testing.T, addr string) *syscall.SockaddrInet4 {
	t.Helper()
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	sa := &syscall.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To4())
	return sa
}

// dialRaw connects a blocking socket that Go's runtime does not know.
func dialRaw(t *testing.T, sa *syscall.SockaddrInet4) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	tv := syscall.NsecToTimeval(int64(5 * time.Second))
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv) // bounds connect too
	err = syscall.Connect(fd, sa)
	// A signal (the runtime's preemption) may interrupt a blocking connect,
	// which then goes on without us: ask again until it says it is done.
	for i := 0; err == syscall.EINTR || err == syscall.EALREADY; i++ {
		if i == 1000 {
			break
		}
		if err == syscall.EALREADY {
			time.Sleep(time.Millisecond)
		}
		err = syscall.Connect(fd, sa)
	}
	if err != nil && err != syscall.EISCONN {
		_ = syscall.Close(fd)
		t.Fatalf("connect: %v", err)
	}
	return fd
}

func closeRaw(t *testing.T, fd int) {
	t.Helper()
	if err := syscall.Close(fd); err != nil {
		t.Fatal(err)
	}
}

// What every idle connection holds stays in its size class: the
// connection struct without its busy part (connection_more.go), the
// mailbox with its empty rings and the event loop's registration. A field
// added to one takes it to the next class (192, 112, 96 bytes) for every
// connection: put it in connMore, or make room.
func TestAnIdleConnectionsStructsStayInTheirSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(connection{}); n > 176 {
		t.Errorf("the connection struct is %d bytes, want at most 176", n)
	}
	if n := unsafe.Sizeof(connMailbox{}); n > 96 {
		t.Errorf("the connection's mailbox is %d bytes, want at most 96", n)
	}
	if n := unsafe.Sizeof(loopReader{}); n > 80 {
		t.Errorf("the event loop's registration is %d bytes, want at most 80", n)
	}
}
