package actors

import "os"

// adoptedFD reads the number of an adopted descriptor without os.File.Fd,
// which would switch the shared socket to blocking mode under Go's poller.
func adoptedFD(f *os.File) (int64, bool) {
	if f == nil {
		return 0, false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, false
	}
	fd := int64(-1)
	_ = rc.Control(func(u uintptr) { fd = int64(u) })
	return fd, fd >= 0
}
