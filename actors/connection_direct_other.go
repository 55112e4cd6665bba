//go:build !linux

package actors

// disarm: no event loops outside Linux (and no lending: no fast paths).
func (*loopReader) disarm() bool { return false }

// writeFd: nothing is lent outside Linux.
func (*DirectIO) writeFd(uintptr) bool { return true }
