//go:build linux

package actors

import (
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

// rawIO holds the reader's scratch space, so that waiting and reading
// allocate nothing.
type rawIO struct {
	peek [1]byte
}

// waitReadable returns once the socket has data, the peer's FIN or an error
// waiting, without reading it: the callback peeks, and returning false makes
// the poller wait for readability. It fails with the poller's errors
// (closed, deadline).
func (p *rawIO) waitReadable(raw syscall.RawConn) error {
	return raw.Read(func(fd uintptr) bool {
		for {
			_, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p.peek[0])), 1,
				syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			}
			return true // data, FIN or a pending error: the read reports which
		}
	})
}

// readNow reads without waiting: errWouldBlock when nothing is there.
func (p *rawIO) readNow(raw syscall.RawConn, buf []byte) (int, error) {
	var n int
	var err error
	cerr := raw.Read(func(fd uintptr) bool {
		for {
			n, err = syscall.Read(int(fd), buf)
			if err != syscall.EINTR {
				return true
			}
		}
	})
	switch {
	case cerr != nil:
		return 0, cerr
	case err == syscall.EAGAIN:
		return 0, errWouldBlock
	case err != nil:
		return 0, os.NewSyscallError("read", err)
	}
	return n, nil
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
