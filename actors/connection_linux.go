//go:build linux

package actors

import (
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// fastPaths: on Linux a plain *net.TCPConn is read and written through its
// syscall.RawConn, without holding buffers while idle and without a writer
// goroutine while writes do not block.
const fastPaths = true

// maxBatch is the most writes one writev carries.
const maxBatch = 128

// rawIO is the reader's raw-socket access.
type rawIO struct{}

// read reads one chunk into a pooled buffer of the given size, waiting for
// readability when nothing is there — without holding a buffer while it
// waits: a read that finds nothing returns its buffer to the pool, and the
// callback's false makes Go's poller wait. Read and wait are one RawRead
// call on purpose: each RawRead first clears the poller's readiness, so a
// readiness that came between two calls would be lost. It fails with the
// poller's errors (closed, deadline) and returns (nil, 0, nil) never.
func (*rawIO) read(raw syscall.RawConn, size int) (*[]byte, int, error) {
	op := readOps.Get().(*readOp)
	defer readOps.Put(op)
	return op.do(raw, size, true)
}

// readOp is one raw read(2) through a syscall.RawConn. RawConn.Read takes a
// callback, and a closure that captures its results is allocated at every
// call (three objects a read); a readOp binds its callback once and is
// reused: an event loop keeps one for all its reads (one at a time, on its
// goroutine), the goroutine readers take one from readOps.
type readOp struct {
	fn   func(fd uintptr) bool // op.call, bound once
	size int
	wait bool
	buf  *[]byte
	n    int
	err  error
}

var readOps = sync.Pool{New: func() any { return newReadOp() }}

func newReadOp() *readOp {
	op := &readOp{}
	op.fn = op.call
	return op
}

// do is one read into a pooled buffer, waiting for readability (wait) or
// not: the buffer goes back to the pool whenever nothing was read, and a
// read that would block without wait is errWouldBlock. RawRead holds the
// descriptor for the call, so a concurrent Close cannot make the number
// another socket's.
func (op *readOp) do(raw syscall.RawConn, size int, wait bool) (*[]byte, int, error) {
	op.size, op.wait = size, wait
	cerr := raw.Read(op.fn)
	buf, n, err := op.buf, op.n, op.err
	op.buf, op.err = nil, nil
	switch {
	case cerr != nil:
		putBuf(buf)
		return nil, 0, cerr
	case err == syscall.EAGAIN: // only without wait
		putBuf(buf)
		return nil, 0, errWouldBlock
	case err != nil:
		putBuf(buf)
		return nil, 0, os.NewSyscallError("read", err)
	}
	return buf, n, nil
}

func (op *readOp) call(fd uintptr) bool {
	op.buf = getBuf(op.size)
	for {
		op.n, op.err = syscall.Read(int(fd), *op.buf)
		if op.err != syscall.EINTR {
			break
		}
	}
	if op.err == syscall.EAGAIN && op.wait {
		putBuf(op.buf)
		op.buf = nil
		return false // Go's poller waits for readability, then calls again
	}
	return true
}

// writeOp is one non-blocking writev through a syscall.RawConn, its
// callback bound once (see readOp); writes take one from writeOps.
type writeOp struct {
	fn      func(fd uintptr) bool // op.call, bound once
	bufs    [][]byte
	one     [1][]byte // bufs of a single write, without a slice of its own
	n       int
	blocked bool
	err     error
}

var writeOps = sync.Pool{New: func() any {
	op := &writeOp{}
	op.fn = op.call
	return op
}}

// writeNow writes bufs without waiting, as far as the socket takes them. It
// returns the bytes written and whether it stopped because the socket's
// buffer is full.
func writeNow(raw syscall.RawConn, bufs [][]byte) (n int, blocked bool, err error) {
	op := writeOps.Get().(*writeOp)
	op.bufs = bufs
	n, blocked, err = op.do(raw)
	writeOps.Put(op)
	return n, blocked, err
}

// writeOne is writeNow of one buffer.
func writeOne(raw syscall.RawConn, b []byte) (n int, blocked bool, err error) {
	op := writeOps.Get().(*writeOp)
	op.one[0] = b
	op.bufs = op.one[:]
	n, blocked, err = op.do(raw)
	op.one[0] = nil
	writeOps.Put(op)
	return n, blocked, err
}

func (op *writeOp) do(raw syscall.RawConn) (int, bool, error) {
	op.n, op.blocked, op.err = 0, false, nil
	cerr := raw.Write(op.fn)
	n, blocked, err := op.n, op.blocked, op.err
	op.bufs, op.err = nil, nil
	if cerr != nil && err == nil {
		err = cerr
	}
	return n, blocked, err
}

func (op *writeOp) call(fd uintptr) bool {
	bufs := op.bufs
	for i, off := 0, 0; i < len(bufs); {
		m, e := writev(int(fd), bufs[i:], off)
		switch e {
		case nil:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			op.blocked = true
			return true
		default:
			op.err = os.NewSyscallError("writev", e)
			return true
		}
		if m == 0 {
			op.blocked = true // cannot happen for a stream socket; never spin
			return true
		}
		op.n += m
		for m > 0 && i < len(bufs) {
			if left := len(bufs[i]) - off; m >= left {
				m -= left
				i, off = i+1, 0
			} else {
				off += m
				m = 0
			}
		}
		for i < len(bufs) && len(bufs[i]) == 0 {
			i++
		}
	}
	return true
}

// writev writes bufs (the first from offset off) with one system call.
func writev(fd int, bufs [][]byte, off int) (int, error) {
	if len(bufs) == 1 {
		return syscall.Write(fd, bufs[0][off:])
	}
	var iovs [maxBatch]syscall.Iovec
	cnt := 0
	for i, b := range bufs {
		if i == 0 {
			b = b[off:]
		}
		if len(b) == 0 {
			continue
		}
		if cnt == maxBatch {
			break
		}
		iovs[cnt].Base = &b[0]
		iovs[cnt].SetLen(len(b))
		cnt++
	}
	if cnt == 0 {
		return 0, nil
	}
	r, _, e := syscall.Syscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iovs[0])), uintptr(cnt))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// unsentBytes is what the kernel still holds of what was written to conn:
// bytes not yet acknowledged by the peer (TIOCOUTQ). 0 when it cannot tell.
func unsentBytes(conn net.Conn) int {
	tc := tcpConnOf(conn)
	if tc == nil {
		return 0
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = raw.Control(func(fd uintptr) {
		var v int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&v))); e == 0 {
			n = int(v)
		}
	})
	return n
}
