//go:build linux

package actors

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// disarm withdraws the permit arm gave, when the loop has not taken it for
// a read yet, and takes the socket out of the loop's interest: its owner
// reads it now (lendRead). false: a read is under way, or its result is on
// its way to the actor.
func (r *loopReader) disarm() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.permit || r.reading {
		return false
	}
	r.permit = false
	if r.interest {
		r.interest = false
		_ = r.ctl(unix.EPOLL_CTL_MOD, r.mask())
	}
	return true
}

// writeFd writes wbuf with write(2) calls while the socket takes it, without
// waiting (RawConn.Write's callback; wmu is held).
func (d *DirectIO) writeFd(fd uintptr) bool {
	for d.wn < len(d.wbuf) {
		n, err := syscall.Write(int(fd), d.wbuf[d.wn:])
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil || n <= 0:
			return true // EAGAIN (full), or an error: the rest goes as a Write
		}
		d.wn += n
	}
	return true
}
