//go:build !linux

package actors

import (
	"net"

	"github.com/tcpactor/tcpactor/messages"
)

// adoptListener: checking a descriptor is implemented for Linux only.
func adoptListener(fd int64) (*net.TCPListener, *messages.Error) {
	return nil, messages.NewError(messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION,
		"setSocketDescriptor is supported on Linux only")
}

// dualStackAny: not examined off Linux.
func dualStackAny(*net.TCPListener) bool { return false }

// setBacklog: off Linux the listener keeps the backlog Go gave it (the
// system's maximum); listen(2) on a listening socket is not portable.
func setBacklog(*net.TCPListener, int) error { return nil }
