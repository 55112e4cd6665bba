package main

import (
	"bytes"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/internal/servertest"
)

// halfClosedRequests sends requests of several sizes to addr, each followed
// by a half-close (nc -N, HTTP/1.0), and expects each echoed in full, then
// EOF.
func halfClosedRequests(t *testing.T, addr string) {
	t.Helper()
	for _, size := range []int{1, 100, 64 << 10, 1 << 20} {
		servertest.HalfClosedEcho(t, addr, bytes.Repeat([]byte{'r'}, size), 20*time.Second)
	}
}

// `tcpactor handle` answers a request that ended with a half-close in full:
// the owner on the handler node closes after its echo.
func TestHandleAnswersAHalfClosedRequestInFull(t *testing.T) {
	withBinary(t)
	s := start(t, "serve", "--listen", "127.0.0.1:0", "--remote", "127.0.0.1:0", "--handler", "none", "--drain-timeout", "100ms")
	addr := s.line("listening on")
	rem := s.line("remote on")
	h := start(t, "handle", "--server", rem+"/tcpserver")
	h.line("remote on")
	halfClosedRequests(t, addr)
	if code := h.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("handle exited %d; stderr:\n%s", code, h.stderr)
	}
	if code := s.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d; stderr:\n%s", code, s.stderr)
	}
}

// The same through `tcpactor node --listen … --handler echo`: server and
// owner actor in one process.
func TestNodeWithAnEchoHandlerAnswersAHalfClosedRequestInFull(t *testing.T) {
	withBinary(t)
	n := start(t, "node", "--remote", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--handler", "echo")
	n.line("remote on")
	addr := strings.Fields(n.line("listening on"))[0]
	go func() { // the owner's lines ("owner: claimed …") are not waited for
		for range n.lines {
		}
	}()
	halfClosedRequests(t, addr)
	if code := n.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("node exited %d; stderr:\n%s", code, n.stderr)
	}
}
