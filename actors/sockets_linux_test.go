package actors

import "syscall"

// The socket calls whose names or flags differ between Linux and macOS.

// keepIdleOption (at IPPROTO_TCP) holds a socket's keep-alive idle time in
// seconds, which SetSocketOption's keep_alive_period_ms sets.
const (
	keepIdleOption = syscall.TCP_KEEPIDLE
	keepIdleName   = "TCP_KEEPIDLE"
)

// socketCloexec makes a socket that child processes do not inherit.
func socketCloexec(domain, typ int) (int, error) {
	return syscall.Socket(domain, typ|syscall.SOCK_CLOEXEC, 0)
}
