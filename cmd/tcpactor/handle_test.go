package main

import (
	"strings"
	"syscall"
	"testing"
)

// The handler node's dealings with its server, beyond serving it (see
// testHandleServesAnotherNodesConnections): these run as subtests of
// TestCommandLine, which builds the binary.

func testHandleReportsAServerNameNobodyHas(t *testing.T) {
	s := start(t, "serve", "--listen", "127.0.0.1:0", "--remote", "127.0.0.1:0", "--handler", "none")
	s.line("listening on")
	rem := s.line("remote on")

	out, errOut, code := runCmd(t, "handle", "--server", rem+"/nosuchserver")
	if code == 0 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, `no server named "nosuchserver"`) {
		t.Errorf("handle of a missing server: exit %d, stdout %q, stderr %q; want non-zero, nothing on stdout, one line naming the server",
			code, out, errOut)
	}
	if code := s.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d; stderr:\n%s", code, s.stderr)
	}
}

func testHandleExitsWhenItsServerIsLost(t *testing.T) {
	s := start(t, "serve", "--listen", "127.0.0.1:0", "--remote", "127.0.0.1:0", "--handler", "none", "--drain-timeout", "100ms")
	s.line("listening on")
	rem := s.line("remote on")
	h := start(t, "handle", "--server", rem+"/tcpserver")
	h.line("remote on")

	if code := s.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d; stderr:\n%s", code, s.stderr)
	}
	code := h.exitCode()
	if errOut := h.stderr.String(); code == 0 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "is gone") {
		t.Errorf("handle after its server stopped: exit %d, stderr %q; want non-zero and one line saying the server is gone", code, errOut)
	}
}

// A server keeps its watchers: a handler node that left without a word
// would be called on when the server stops, and the server's remote would
// retry the dead address for seconds, logging each attempt.
func testHandleLeavesNothingForTheServerToCallOn(t *testing.T) {
	s := start(t, "serve", "--listen", "127.0.0.1:0", "--remote", "127.0.0.1:0", "--handler", "none", "--drain-timeout", "100ms")
	addr := s.line("listening on")
	rem := s.line("remote on")
	h := start(t, "handle", "--server", rem+"/tcpserver")
	h.line("remote on")
	c, r := dialEcho(t, addr)
	echoLine(t, c, r, "served once\n")
	if code := h.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("handle exited %d; stderr:\n%s", code, h.stderr)
	}

	// A newConnection() after the handler node left goes to nobody.
	dialEcho(t, addr)
	if code := s.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d; stderr:\n%s", code, s.stderr)
	}
	if errOut := s.stderr.String(); errOut != "" {
		t.Errorf("serve's stderr after a handler node came and went, want it empty:\n%s", errOut)
	}
}
