//go:build unix

// Package sockopt holds the socket calls that both the actors and the
// tcpactor command make on a socket Go's net package opened.
package sockopt

import "syscall"

// Relisten calls listen(2) again on ln's listening socket with backlog:
// Linux changes the backlog of a listening socket so (Go's listeners ask
// for the kernel's maximum).
func Relisten(ln syscall.Conn, backlog int) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = syscall.Listen(int(fd), backlog) }); err != nil {
		return err
	}
	return lerr
}
