package remotenode

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// writeNow writes head and payload with one writev if the socket takes
// them now, without waiting for it: n bytes went out (0 when the socket's
// buffer is full); err is set only when the socket failed.
func writeNow(rc syscall.RawConn, head, payload []byte) (n int, err error) {
	bufs := [][]byte{head, payload}
	if len(payload) == 0 {
		bufs = bufs[:1]
	}
	cerr := rc.Write(func(fd uintptr) bool {
		for {
			m, e := unix.Writev(int(fd), bufs)
			switch {
			case errors.Is(e, unix.EINTR):
				continue
			case errors.Is(e, unix.EAGAIN):
			case e != nil:
				err = os.NewSyscallError("writev", e)
			default:
				n = m
			}
			return true // never wait here: the writer goroutine does
		}
	})
	if err == nil && cerr != nil {
		err = cerr
	}
	return n, err
}
