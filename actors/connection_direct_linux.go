//go:build linux

package actors

import "golang.org/x/sys/unix"

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
		_ = r.ctl(unix.EPOLL_CTL_MOD, interestOff)
	}
	return true
}
