package main

// The `relay` reference kind: the cross-process ceiling.
//
// Any path where a connection's bytes cross to another process and back —
// the remote kinds, whose owner runs on a second node — pays at least what
// a plain TCP relay pays. The relay child listens for the load and starts a
// second child of its own, a raw echo server; for every client connection
// it dials that echo server and copies both ways with a goroutine each (a
// 32 KiB buffer, io.CopyBuffer without its splice fast path, as the raw
// echo reads and writes: the bytes pass through user space, as they must
// for tcpactor). So every byte crosses two loopback hops and a process
// boundary each way, with nothing of tcpactor in between. The remote kinds'
// "vs relay" column divides by it, round by round.
//
// The memory figures (bulk peak RSS, idle memory) are the relay process's
// own, as the remote kinds' are the server node's.

import (
	"io"
	"net"
	"os"
	"sync/atomic"
)

// kindRelay is the relay reference kind.
const kindRelay = "relay"

// relayServer is the relay child: a listener for the load and the echo
// child every connection is relayed to.
type relayServer struct {
	ln               net.Listener
	echo             *child
	accepted, active atomic.Int64
}

// startRelay starts the echo child, then listens.
func startRelay(stderr io.Writer) (*relayServer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	echo, err := startChild(self, kindRaw, "", 0, stderr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = echo.Stop()
		return nil, err
	}
	r := &relayServer{ln: ln, echo: echo}
	go acceptEach(r.ln, &r.accepted, &r.active, r.serve)
	return r, nil
}

// serve relays one client to the echo server until either side ends; each
// direction's end is passed on as a FIN, so the client's close reaches the
// echo server and the echo's close comes back.
func (r *relayServer) serve(client net.Conn) {
	defer r.active.Add(-1)
	defer client.Close()
	up, err := net.Dial("tcp", r.echo.addr)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyNoSplice(up, client)
	}()
	copyNoSplice(client, up)
	<-done
}

// copyNoSplice copies src to dst through a 32 KiB buffer in user space,
// then half-closes dst. Hiding src behind a plain io.Reader keeps
// io.CopyBuffer off TCPConn.ReadFrom's splice path.
func copyNoSplice(dst, src net.Conn) {
	_, _ = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 32<<10))
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		dst.Close()
	}
}

func (r *relayServer) port() int { return r.ln.Addr().(*net.TCPAddr).Port }

func (r *relayServer) stats() (int64, int64, int64, error) {
	return r.accepted.Load(), r.active.Load(), 0, nil
}

func (r *relayServer) stop() {
	r.ln.Close()
	_ = r.echo.Stop()
}
