//go:build linux

package actors

import (
	"net"
	"os"
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
	return readChunk(raw, size, true)
}

// readNow reads one chunk into a pooled buffer without waiting: the event
// loop's read, made when epoll said the socket is readable. errWouldBlock
// when nothing is there after all. RawRead holds the descriptor for the
// call, so a concurrent Close cannot make the number another socket's.
func (*rawIO) readNow(raw syscall.RawConn, size int) (*[]byte, int, error) {
	return readChunk(raw, size, false)
}

// readChunk is read (wait) and readNow (!wait): one read(2) into a pooled
// buffer, the buffer back to the pool whenever nothing was read.
func readChunk(raw syscall.RawConn, size int, wait bool) (*[]byte, int, error) {
	var (
		buf *[]byte
		n   int
		err error
	)
	cerr := raw.Read(func(fd uintptr) bool {
		buf = getBuf(size)
		for {
			n, err = syscall.Read(int(fd), *buf)
			if err != syscall.EINTR {
				break
			}
		}
		if err == syscall.EAGAIN && wait {
			putBuf(buf)
			buf = nil
			return false // Go's poller waits for readability, then calls again
		}
		return true
	})
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

// writeNow writes bufs without waiting, as far as the socket takes them. It
// returns the bytes written and whether it stopped because the socket's
// buffer is full.
func writeNow(raw syscall.RawConn, bufs [][]byte) (n int, blocked bool, err error) {
	cerr := raw.Write(func(fd uintptr) bool {
		for i, off := 0, 0; i < len(bufs); {
			m, e := writev(int(fd), bufs[i:], off)
			switch e {
			case nil:
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				blocked = true
				return true
			default:
				err = os.NewSyscallError("writev", e)
				return true
			}
			if m == 0 {
				blocked = true // cannot happen for a stream socket; never spin
				return true
			}
			n += m
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
	})
	if cerr != nil && err == nil {
		err = cerr
	}
	return n, blocked, err
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
