package messages

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/tcpactor/tcpactor/internal/testkit"
)

func TestMain(m *testing.M) {
	testkit.RunTests(m)
}

// qtSocketError is QAbstractSocket::SocketError as Qt 6.4 numbers it
// (docs/qt-behaviour.md, finding 15a).
var qtSocketError = map[SocketError]int{
	SocketError_SOCKET_ERROR_NONE:                          -1, // serverError() before any error
	SocketError_SOCKET_ERROR_CONNECTION_REFUSED:            0,
	SocketError_SOCKET_ERROR_REMOTE_HOST_CLOSED:            1,
	SocketError_SOCKET_ERROR_HOST_NOT_FOUND:                2,
	SocketError_SOCKET_ERROR_SOCKET_ACCESS:                 3,
	SocketError_SOCKET_ERROR_SOCKET_RESOURCE:               4,
	SocketError_SOCKET_ERROR_SOCKET_TIMEOUT:                5,
	SocketError_SOCKET_ERROR_DATAGRAM_TOO_LARGE:            6,
	SocketError_SOCKET_ERROR_NETWORK:                       7,
	SocketError_SOCKET_ERROR_ADDRESS_IN_USE:                8,
	SocketError_SOCKET_ERROR_SOCKET_ADDRESS_NOT_AVAILABLE:  9,
	SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION:  10,
	SocketError_SOCKET_ERROR_UNFINISHED_SOCKET_OPERATION:   11,
	SocketError_SOCKET_ERROR_PROXY_AUTHENTICATION_REQUIRED: 12,
	SocketError_SOCKET_ERROR_SSL_HANDSHAKE_FAILED:          13,
	SocketError_SOCKET_ERROR_PROXY_CONNECTION_REFUSED:      14,
	SocketError_SOCKET_ERROR_PROXY_CONNECTION_CLOSED:       15,
	SocketError_SOCKET_ERROR_PROXY_CONNECTION_TIMEOUT:      16,
	SocketError_SOCKET_ERROR_PROXY_NOT_FOUND:               17,
	SocketError_SOCKET_ERROR_PROXY_PROTOCOL:                18,
	SocketError_SOCKET_ERROR_OPERATION:                     19,
	SocketError_SOCKET_ERROR_SSL_INTERNAL:                  20,
	SocketError_SOCKET_ERROR_SSL_INVALID_USER_DATA:         21,
	SocketError_SOCKET_ERROR_TEMPORARY:                     22,
	SocketError_SOCKET_ERROR_UNKNOWN:                       -1,
}

func TestQtCodeGivesQtsNumberForEverySocketError(t *testing.T) {
	for v, name := range SocketError_name {
		want, ok := qtSocketError[SocketError(v)]
		if !ok {
			t.Errorf("%s has no Qt number in this test: add it", name)
			continue
		}
		if got := QtCode(SocketError(v)); got != want {
			t.Errorf("QtCode(%s) = %d, want %d", name, got, want)
		}
	}
}

func TestQtCodeOfAnUnknownValueIsUnknownSocketError(t *testing.T) {
	for _, v := range []SocketError{-1, 25, 99, 1 << 20} {
		if got := QtCode(v); got != -1 {
			t.Errorf("QtCode(%d) = %d, want -1 (UnknownSocketError)", v, got)
		}
	}
}

func TestFromErrorMapsSystemErrorsToQtCodesWithReadableText(t *testing.T) {
	wrap := func(errno syscall.Errno) error {
		return &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", errno)}
	}
	cases := []struct {
		err      error
		code     SocketError
		qtString string // Qt's errorString() starts the text
	}{
		{wrap(syscall.EADDRINUSE), SocketError_SOCKET_ERROR_ADDRESS_IN_USE, "The bound address is already in use"},
		{wrap(syscall.EADDRNOTAVAIL), SocketError_SOCKET_ERROR_SOCKET_ADDRESS_NOT_AVAILABLE, "The address is not available"},
		{wrap(syscall.EACCES), SocketError_SOCKET_ERROR_SOCKET_ACCESS, "The address is protected"},
		{wrap(syscall.EMFILE), SocketError_SOCKET_ERROR_SOCKET_RESOURCE, "Out of resources"},
		{wrap(syscall.ECONNREFUSED), SocketError_SOCKET_ERROR_CONNECTION_REFUSED, "Connection refused"},
		{wrap(syscall.ECONNRESET), SocketError_SOCKET_ERROR_REMOTE_HOST_CLOSED, "The remote host closed the connection"},
		{wrap(syscall.EPIPE), SocketError_SOCKET_ERROR_REMOTE_HOST_CLOSED, "The remote host closed the connection"},
		{wrap(syscall.ETIMEDOUT), SocketError_SOCKET_ERROR_NETWORK, "Connection timed out"},
		{wrap(syscall.EHOSTUNREACH), SocketError_SOCKET_ERROR_NETWORK, "Network unreachable"},
		{wrap(syscall.EIO), SocketError_SOCKET_ERROR_NETWORK, "Network error"},
		{os.ErrDeadlineExceeded, SocketError_SOCKET_ERROR_SOCKET_TIMEOUT, "Network operation timed out"},
		{net.ErrClosed, SocketError_SOCKET_ERROR_OPERATION, "The socket is closed"},
		{fmt.Errorf("something else"), SocketError_SOCKET_ERROR_UNKNOWN, "Unknown error"},
	}
	for _, c := range cases {
		e := FromError(c.err)
		if e.GetCode() != c.code || !strings.HasPrefix(e.GetMessage(), c.qtString) || !strings.Contains(e.GetMessage(), c.err.Error()) {
			t.Errorf("FromError(%v) = %v %q, want %v %q followed by the system's text", c.err, e.GetCode(), e.GetMessage(), c.code, c.qtString)
		}
		if !e.Failed() || e.Err() == nil {
			t.Errorf("FromError(%v) does not report a failure", c.err)
		}
	}
	if FromError(nil) != nil {
		t.Error("FromError(nil) is not nil")
	}
}

func TestFromErrorKeepsTheCodeOfASocketErr(t *testing.T) {
	in := (&Error{Code: SocketError_SOCKET_ERROR_PROXY_PROTOCOL, Message: "bad reply"}).Err()
	e := FromError(fmt.Errorf("wrapped: %w", in))
	if e.GetCode() != SocketError_SOCKET_ERROR_PROXY_PROTOCOL || e.GetMessage() != "bad reply" {
		t.Fatalf("FromError(wrapped SocketErr) = %v", e)
	}
}
