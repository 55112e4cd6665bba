package actors

import (
	"fmt"
	"os"
	"sync"
)

// ReadMode says how a connection's socket is read (ConnectionConfig.ReadMode).
type ReadMode uint8

const (
	// ReadModeDefault is the process default: DefaultReadMode().
	ReadModeDefault ReadMode = iota
	// ReadGoroutine reads each connection with a goroutine of its own,
	// parked in Go's runtime poller while the peer is quiet. It serves every
	// connection on every platform.
	ReadGoroutine
	// ReadLoop reads through a few shared epoll loops (four per GOMAXPROCS,
	// two of them while connections are few):
	// an idle connection holds no goroutine, and a local Handler runs on the
	// loop. A server in this mode (without an IncomingConnection hook, TLS
	// or PROXY protocol) accepts its sockets raw, out of Go's runtime
	// poller, and makes a net.TCPConn of one only when it must (a write
	// that would block, direct_io). Linux only, and only for a plain *net.TCPConn; other connections
	// (TLS, PROXY protocol, a hook's wrapper, other platforms) are read by a
	// goroutine whatever the mode says.
	ReadLoop
)

var readModeNames = [...]string{"default", "goroutine", "loop"}

func (m ReadMode) String() string {
	if int(m) < len(readModeNames) {
		return readModeNames[m]
	}
	return fmt.Sprintf("ReadMode(%d)", m)
}

// ParseReadMode parses "goroutine", "loop" or "default" (or "").
func ParseReadMode(s string) (ReadMode, error) {
	switch s {
	case "", "default":
		return ReadModeDefault, nil
	case "goroutine":
		return ReadGoroutine, nil
	case "loop":
		return ReadLoop, nil
	}
	return ReadModeDefault, fmt.Errorf("read mode %q: want loop, default or goroutine", s)
}

// builtinReadMode is the default when TCPACTOR_IO does not say otherwise:
// the event loops, which the bench measured ahead of the goroutine reader
// in idle memory (1.3× a plain server against 2.0×), ping-pong and its
// latency, with the same bounded memory under floods (README, Benchmarks).
const builtinReadMode = ReadLoop

// DefaultReadMode is the mode of connections whose config leaves ReadMode
// zero: the environment variable TCPACTOR_IO (loop or goroutine) when set
// — so a whole test suite or deployment can run in the other mode without
// a code change — else the built-in default, ReadLoop (which reads a
// connection by a goroutine where it cannot: see ReadLoop).
var DefaultReadMode = sync.OnceValue(func() ReadMode {
	if m, err := ParseReadMode(os.Getenv("TCPACTOR_IO")); err == nil && m != ReadModeDefault {
		return m
	}
	return builtinReadMode
})

// readMode resolves the config's mode.
func (cfg *ConnectionConfig) readMode() ReadMode {
	if cfg.ReadMode != ReadModeDefault {
		return cfg.ReadMode
	}
	return DefaultReadMode()
}
