//go:build linux

package actors

import (
	"net"
	"os"
	"syscall"

	"github.com/tcpactor/tcpactor/internal/sockopt"
	"github.com/tcpactor/tcpactor/messages"
)

// adoptListener is the checking half of setSocketDescriptor(): fd must be an
// open, listening TCP stream socket of this process. Unlike Qt 6.4, which
// adopts any descriptor and reports itself listening, anything else is
// refused with a readable error, and so is a protected listener of the
// process (ProtectListener). The server adopts a duplicate: the descriptor
// given stays open and its caller's (unlike Qt, which takes it over);
// socketDescriptor() reports the number given.
func adoptListener(fd int64) (*net.TCPListener, *messages.Error) {
	unsupported := func(format string, args ...any) (*net.TCPListener, *messages.Error) {
		return nil, messages.NewError(messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION, format, args...)
	}
	if fd < 0 || fd > 1<<30 {
		return nil, invalid("socket descriptor %d out of range", fd)
	}
	n := int(fd)
	typ, err := syscall.GetsockoptInt(n, syscall.SOL_SOCKET, syscall.SO_TYPE)
	switch {
	case err == syscall.EBADF:
		return unsupported("Invalid socket descriptor: %d is not open", fd)
	case err == syscall.ENOTSOCK:
		return unsupported("descriptor %d is not a socket", fd)
	case err != nil:
		return nil, messages.FromError(err)
	case typ != syscall.SOCK_STREAM:
		return unsupported("descriptor %d is not a stream socket", fd)
	}
	domain, _ := syscall.GetsockoptInt(n, syscall.SOL_SOCKET, syscall.SO_DOMAIN)
	proto, _ := syscall.GetsockoptInt(n, syscall.SOL_SOCKET, syscall.SO_PROTOCOL)
	// Go listeners are MPTCP where the kernel has it (Go 1.24+): a TCP
	// socket to every peer, so adopt it too.
	if (domain != syscall.AF_INET && domain != syscall.AF_INET6) || (proto != syscall.IPPROTO_TCP && proto != ipprotoMPTCP) {
		return unsupported("descriptor %d is not a TCP socket", fd)
	}
	if on, _ := syscall.GetsockoptInt(n, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); on != 1 {
		return unsupported("descriptor %d is a TCP socket that is not listening", fd)
	}
	if sa, err := syscall.Getsockname(n); err == nil {
		if addr, ok := isProtected(sockaddrIP(sa)); ok {
			return nil, messages.NewError(messages.SocketError_SOCKET_ERROR_SOCKET_ACCESS,
				"descriptor %d is this process's listener on %s, which a server may not adopt", fd, addr)
		}
	}
	// The server works on a duplicate and closes only that: the descriptor
	// given stays its caller's, so a Close can never close a descriptor
	// number that meanwhile names another socket. No os.File is made of the
	// original (its finalizer would close it).
	d, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(n), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return nil, messages.FromError(errno)
	}
	f := os.NewFile(d, "adopted-listener")
	defer f.Close()
	l, err := net.FileListener(f) // one more duplicate, which joins Go's poller
	if err != nil {
		return nil, messages.FromError(err)
	}
	return l.(*net.TCPListener), nil
}

func sockaddrIP(sa syscall.Sockaddr) (net.IP, int) {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return net.IP(a.Addr[:]), a.Port
	case *syscall.SockaddrInet6:
		return net.IP(a.Addr[:]), a.Port
	}
	return nil, -1
}

// ipprotoMPTCP is IPPROTO_MPTCP, missing from package syscall.
const ipprotoMPTCP = 262

// dualStackAny reports whether ln is bound to the IPv6 wildcard with
// IPV6_V6ONLY off, so it takes IPv4 clients too: Qt reports such a socket
// as Any (0.0.0.0, AnyIPProtocol), as a Listen on Any is reported.
func dualStackAny(ln *net.TCPListener) bool {
	a, ok := ln.Addr().(*net.TCPAddr)
	if !ok || a.IP.To4() != nil || !a.IP.IsUnspecified() {
		return false
	}
	rc, err := ln.SyscallConn()
	if err != nil {
		return false
	}
	v6only := 1
	_ = rc.Control(func(fd uintptr) {
		if v, err := syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY); err == nil {
			v6only = v
		}
	})
	return v6only == 0
}

// setBacklog applies the listen backlog: Linux lets listen(2) be called again
// on a listening socket to change it.
func setBacklog(ln *net.TCPListener, backlog int) error { return sockopt.Relisten(ln, backlog) }
