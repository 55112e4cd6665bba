package actors

import "syscall"

// The socket calls whose names or flags differ between Linux and macOS.

// keepIdleOption (at IPPROTO_TCP) holds a socket's keep-alive idle time in
// seconds, which SetSocketOption's keep_alive_period_ms sets: macOS calls
// Linux's TCP_KEEPIDLE TCP_KEEPALIVE.
const (
	keepIdleOption = syscall.TCP_KEEPALIVE
	keepIdleName   = "TCP_KEEPALIVE"
)

// socketCloexec makes a socket that child processes do not inherit. macOS
// has no SOCK_CLOEXEC: the flag is set under ForkLock, as Go's net does, so
// that no fork comes between the two calls.
func socketCloexec(domain, typ int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fd, err := syscall.Socket(domain, typ, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	return fd, err
}
