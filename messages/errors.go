package messages

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// qtCodes maps each SocketError to the value of Qt's
// QAbstractSocket::SocketError.
var qtCodes = map[SocketError]int{
	SocketError_SOCKET_ERROR_NONE:                          -1,
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

// QtCode returns the numeric value Qt's QAbstractSocket::SocketError gives
// this error. NONE and UNKNOWN both give -1 (UnknownSocketError), which is
// what QTcpServer::serverError() reports before any error happened.
func QtCode(e SocketError) int {
	if c, ok := qtCodes[e]; ok {
		return c
	}
	return -1
}

// NewError builds an Error with a formatted readable text.
func NewError(code SocketError, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Failed reports whether e carries a failure (not absent, not NONE).
func (e *Error) Failed() bool {
	return e != nil && e.Code != SocketError_SOCKET_ERROR_NONE
}

// Err returns e as a Go error, or nil when e carries no failure.
func (e *Error) Err() error {
	if !e.Failed() {
		return nil
	}
	return &SocketErr{Code: e.Code, Text: e.Message}
}

// SocketErr is an Error as a Go error value; errors.As finds its code.
type SocketErr struct {
	Code SocketError
	Text string
}

func (e *SocketErr) Error() string {
	if e.Text == "" {
		return e.Code.String()
	}
	return e.Text
}

// RemoteHostClosedText is Qt's errorString() for RemoteHostClosedError, which
// Qt reports when the peer closes (FIN, a half-close too) or resets.
const RemoteHostClosedText = "The remote host closed the connection"

// RemoteHostClosed is the error of a peer's FIN, in Qt's code and words.
func RemoteHostClosed() *Error {
	return &Error{Code: SocketError_SOCKET_ERROR_REMOTE_HOST_CLOSED, Message: RemoteHostClosedText}
}

// FromError maps a Go socket error to Qt's SocketError with a readable text
// (Qt's own wording, then the system's). nil gives nil. It is the one table
// from errno to SocketError: listening, accepting, reading and writing all
// use it. Kernel time-outs (ETIMEDOUT: retransmission, keep-alive) are
// NetworkError "Connection timed out", as Qt's socket engine has them;
// SocketTimeoutError is kept for tcpactor's own time-outs (deadlines), as
// Qt keeps it for its waitFor… time-outs. A socket closed under its user
// (net.ErrClosed) is OperationError; callers that must tell "closed by us"
// apart test errors.Is(err, net.ErrClosed).
func FromError(err error) *Error {
	if err == nil {
		return nil
	}
	var se *SocketErr
	if errors.As(err, &se) {
		return &Error{Code: se.Code, Message: se.Text}
	}
	code, text := SocketError_SOCKET_ERROR_UNKNOWN, "Unknown error"
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		switch errno {
		case syscall.EADDRINUSE:
			code, text = SocketError_SOCKET_ERROR_ADDRESS_IN_USE, "The bound address is already in use"
		case syscall.EADDRNOTAVAIL:
			code, text = SocketError_SOCKET_ERROR_SOCKET_ADDRESS_NOT_AVAILABLE, "The address is not available"
		case syscall.EACCES, syscall.EPERM:
			code, text = SocketError_SOCKET_ERROR_SOCKET_ACCESS, "The address is protected"
		case syscall.EAFNOSUPPORT, syscall.EPROTONOSUPPORT, syscall.EOPNOTSUPP:
			code, text = SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION, "Unsupported socket operation"
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM:
			code, text = SocketError_SOCKET_ERROR_SOCKET_RESOURCE, "Out of resources"
		case syscall.ECONNRESET, syscall.EPIPE, syscall.ECONNABORTED:
			code, text = SocketError_SOCKET_ERROR_REMOTE_HOST_CLOSED, RemoteHostClosedText
		case syscall.ECONNREFUSED:
			code, text = SocketError_SOCKET_ERROR_CONNECTION_REFUSED, "Connection refused"
		case syscall.ETIMEDOUT:
			code, text = SocketError_SOCKET_ERROR_NETWORK, "Connection timed out"
		case syscall.ENETDOWN, syscall.ENETUNREACH, syscall.EHOSTUNREACH:
			code, text = SocketError_SOCKET_ERROR_NETWORK, "Network unreachable"
		case syscall.EAGAIN:
			code, text = SocketError_SOCKET_ERROR_TEMPORARY, "Resource temporarily unavailable"
		default:
			code, text = SocketError_SOCKET_ERROR_NETWORK, "Network error"
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		code, text = SocketError_SOCKET_ERROR_SOCKET_TIMEOUT, "Network operation timed out"
	case errors.Is(err, net.ErrClosed):
		code, text = SocketError_SOCKET_ERROR_OPERATION, "The socket is closed"
	}
	return &Error{Code: code, Message: text + ": " + err.Error()}
}
