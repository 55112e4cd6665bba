package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// How the commands end: signals, drains, a server that stops under them.
// These run as subtests of TestCommandLine, which builds the binary.

// rest waits for the process to end and returns the stdout lines not read yet.
func (p *proc) rest() []string {
	p.t.Helper()
	var ls []string
	for l := range p.lines {
		ls = append(ls, l)
	}
	return ls
}

// errorLines are the lines of stderr that report an error or a panic.
func errorLines(stderr string) []string {
	var bad []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "panic") || strings.HasPrefix(l, "goroutine ") {
			bad = append(bad, l)
		}
	}
	return bad
}

// A one-member automanaged cluster: its stdout carries only the lines a
// script waits for (no HTTP banner of the provider's health server), its
// start logs no error, and SIGTERM ends it with status 0, without the
// double ActorSystem.Shutdown panic.
func testNodeInAClusterExitsZeroOnSIGTERM(t *testing.T) {
	health := freePort(t)
	p := start(t, "node", "--remote", "127.0.0.1:0", "--cluster", "clitest",
		"--members", "127.0.0.1:"+health, "--health-port", health, "--refresh", "100ms")
	rem := p.line("remote on")
	p.line("member of")

	// The health endpoint answers for this member, as other members poll it.
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://127.0.0.1:" + health + "/_health")
	if err != nil {
		t.Fatal(err)
	}
	var node struct {
		Address     string `json:"address"`
		Port        int    `json:"port"`
		ClusterName string `json:"cluster_name"`
	}
	err = json.NewDecoder(resp.Body).Decode(&node)
	resp.Body.Close()
	if err != nil || net.JoinHostPort(node.Address, strconv.Itoa(node.Port)) != rem || node.ClusterName != "clitest" {
		t.Errorf("GET /_health: %+v (%v), want this member (%s) of clitest", node, err, rem)
	}

	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("node --cluster exited %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}
	if extra := p.rest(); len(extra) != 0 {
		t.Errorf("stdout lines after `member of`: %q, want none", extra)
	}
	if bad := errorLines(p.stderr.String()); len(bad) != 0 {
		t.Errorf("stderr has errors at the default log level:\n%s", strings.Join(bad, "\n"))
	}
}

// A client that arrives while serve drains is refused (the listener closes
// when the drain starts) or served; it is never left hanging in the kernel's
// backlog until the exit resets it. The connections of before go on being
// served until they end.
func testClientArrivingDuringTheDrainIsRefusedOrServed(t *testing.T) {
	p := start(t, "serve", "--listen", "127.0.0.1:0", "--drain-timeout", "60s")
	addr := p.line("listening on")
	held, hr := dialEcho(t, addr) // keeps the drain going
	echoLine(t, held, hr, "before\n")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Dial until refused. A client that connects before serve has taken
	// in the signal is served; one accepted in the instant the listener
	// closes is closed at once (a refusal after the handshake). Waiting
	// for an answer that never comes is the failure.
	for i := 0; ; i++ {
		if i == 2000 {
			t.Fatal("every connection attempt of the drain succeeded: the listener is still open")
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		// A handshake in flight as the listener closes is reset: refused too.
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
			break
		}
		if err != nil {
			t.Fatalf("dial during the drain: %v, want it refused or served", err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.WriteString(c, "during\n")
		var got string
		if err == nil {
			got, err = bufio.NewReader(c).ReadString('\n')
		}
		c.Close()
		switch {
		case err == nil && got == "during\n": // served
		case err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && got == "": // closed at once
		default:
			t.Fatalf("a client connected during the drain: got %q (%v), want it refused or served", got, err)
		}
	}
	echoLine(t, held, hr, "still served\n")
	held.Close()
	if code := p.exitCode(); code != 0 {
		t.Fatalf("serve exited %d; stderr:\n%s", code, p.stderr)
	}
}

// Every integer flag of every command is range-checked when parsed: a
// value the message it ends up in cannot carry (an int32, a port) is one
// line on stderr naming the flag, and exit status 2, not a wrapped-around
// number. Each command line has a second, later error, so that nothing
// would run even without the range check.
func testIntegerFlagsAreRangeChecked(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().String()
	serve := []string{"serve", "--listen", busy}
	node := []string{"node", "--remote", busy}
	for _, c := range []struct {
		cmd   []string
		flag  string
		value string
	}{
		{serve, "max-pending", "2147483648"},
		{serve, "max-pending", "0"},
		{serve, "max-pending", "99999999999999999999"},
		{serve, "max-connections", "2147483648"},
		{serve, "max-connections", "-1"},
		{node, "credit", "2147483648"},
		{node, "credit", "-1"},
		{node, "health-port", "65536"},
		{node, "health-port", "-1"},
	} {
		args := append(append([]string{}, c.cmd[0], "--"+c.flag, c.value), c.cmd[1:]...)
		out, errOut, code := runCmd(t, args...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "-"+c.flag+":") {
			t.Errorf("tcpactor %q: exit %d, stdout %q, stderr %q; want exit 2 and one line on stderr naming --%s",
				args, code, out, errOut, c.flag)
		}
	}
}

// A ServerActor that panics stops (a socket cannot be restarted; see
// actors.TestAServerThatPanicsLogsItAndStopsClosingWhatItOwns), and serve,
// which then has nothing left that accepts, exits with status 1: the
// server's ERROR log of the panic, then one line saying why serve ended.
// The panic is injected by a binary built with the tcpactor_faults tag
// (faults.go), whose incomingConnection hook hands the server a broken
// connection.
func testServeExitsNonZeroWhenItsServerStops(t *testing.T) {
	bin := buildTCPActor(t, t.TempDir(), "-tags", "tcpactor_faults")
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "TCPACTOR_FAULT=server-panic")
	p := startCmd(t, cmd)
	addr := p.line("listening on")

	c, _ := dialEcho(t, addr) // the server panics on it
	if code := p.exitCode(); code != 1 {
		t.Fatalf("serve exited %d after its server stopped, want 1; stderr:\n%s", code, p.stderr)
	}
	mustSeeClose(t, c)
	lines := strings.Split(strings.TrimSuffix(p.stderr.String(), "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "tcpactor serve: ") || !strings.Contains(last, "stopped") {
		t.Errorf("last line of stderr %q, want one saying that the server stopped", last)
	}
	if !strings.Contains(p.stderr.String(), "level=ERROR") || !strings.Contains(p.stderr.String(), "panic") {
		t.Errorf("stderr has no ERROR log of the panic:\n%s", p.stderr)
	}
}

// mustSeeClose expects the server side of c to end: EOF or a reset.
func mustSeeClose(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("read %d bytes, %v; want EOF or a reset", n, err)
	}
}

// /metrics stays reachable when the process runs out of descriptors, which
// is when it matters: serve runs with a hard RLIMIT_NOFILE of 48 (set by
// the shell before exec, as Go raises the soft limit to the hard one),
// clients use up the descriptors, the server's accepts fail with EMFILE
// (accept_errors_total counts them), and scrapes still succeed. net/http's
// own accept-error logging would go around slog: stderr has none of it.
func testMetricsAreServedWhileAcceptsFailWithEMFILE(t *testing.T) {
	const limit = 48
	cmd := exec.Command("/bin/sh", "-c", `ulimit -n `+strconv.Itoa(limit)+` && exec "$0" "$@"`,
		tcpactorBin(t), "serve", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--drain-timeout", "0s")
	p := startCmd(t, cmd)
	addr := p.line("listening on")
	metrics := p.line("metrics on")
	if m := scrape(t, metrics); m["tcpactor_listening"] != 1 {
		t.Fatalf("metrics before the clients: %v", m)
	}

	// Every descriptor taken: the clients beyond wait in the backlog.
	for range limit + 8 {
		dialEcho(t, addr)
	}
	fdDir := "/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/fd"
	eventually(t, func() string {
		ents, err := os.ReadDir(fdDir)
		if err != nil || len(ents) < limit {
			return "serve never ran out of descriptors: " + strconv.Itoa(len(ents)) + " open"
		}
		return ""
	})
	// Every scrape fails the test when it cannot connect. The first failed
	// accept may not have happened yet: scrape until it is counted.
	eventually(t, func() string {
		if m := scrape(t, metrics); m["tcpactor_accept_errors_total"] == 0 || m["tcpactor_listening"] != 1 {
			return fmt.Sprintf("metrics while out of descriptors: %v; want accept errors counted", m)
		}
		return ""
	})
	// Then again and again, with the server's accept loop retrying all the
	// while: each scrape's descriptor must go back to the spare, not to
	// the server, or the next scrape finds none.
	for range 5 {
		if m := scrape(t, metrics); m["tcpactor_listening"] != 1 {
			t.Fatalf("metrics while out of descriptors: %v", m)
		}
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("serve exited %d; stderr:\n%s", code, p.stderr)
	}
	if s := p.stderr.String(); strings.Contains(s, "Accept error") {
		t.Errorf("stderr has net/http's accept errors:\n%s", s)
	}
}
