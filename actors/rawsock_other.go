//go:build !linux

package actors

import (
	"net"
	"syscall"
)

// Raw sockets are Linux's (rawsock_linux.go): elsewhere every accepted
// socket is a net.TCPConn.

func rawAccepting(ln listener, owned bool) listener { return ln }

func isRawSock(net.Conn) bool { return false }

// promote has nothing to do: no socket is raw.
func (c *connection) promote() error { return nil }

func (r *loopReader) rebind(syscall.RawConn) error { return nil }
