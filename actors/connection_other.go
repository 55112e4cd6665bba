//go:build !linux

package actors

import (
	"net"
	"syscall"
)

// fastPaths is off outside Linux: connections are read with plain blocking
// reads and written by a writer goroutine.
const fastPaths = false

const maxBatch = 1024

type rawIO struct{}

func (*rawIO) read(syscall.RawConn, int) (*[]byte, int, error) { return nil, 0, errWouldBlock }

func writeNow(syscall.RawConn, [][]byte) (int, bool, error) { return 0, true, nil }

func writeOne(syscall.RawConn, []byte) (int, bool, error) { return 0, true, nil }

// unsentBytes cannot tell outside Linux: the linger's byte limit counts
// every byte thrown away.
func unsentBytes(net.Conn) int { return 0 }
