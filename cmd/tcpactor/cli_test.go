package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/protocols"
)

// The command line, run as a user runs it: TestCommandLine builds the
// tcpactor binary into its own temporary folder, each command runs as a
// process of its own, and every process is killed and reaped when its test
// ends.

// binPath is the binary TestCommandLine built for its subtests.
var binPath string

// tcpactorBin is the binary built by the running TestCommandLine.
func tcpactorBin(t *testing.T) string {
	t.Helper()
	if binPath == "" {
		t.Fatal("tcpactorBin outside TestCommandLine")
	}
	return binPath
}

// buildTCPActor builds cmd/tcpactor into dir, with go build's flags.
func buildTCPActor(t *testing.T, dir string, flags ...string) string {
	t.Helper()
	path := filepath.Join(dir, "tcpactor")
	args := append(append([]string{"build"}, flags...), "-o", path, ".")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return path
}

// proc is a running tcpactor command.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string
	stderr *testkit.SyncBuffer
	done   chan struct{}
	err    error
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command(tcpactorBin(t), args...))
}

// startCmd starts cmd as a proc (a tcpactor under a wrapper such as
// systemd-socket-activate).
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, lines: make(chan string, 100), stderr: &testkit.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// line waits for the next stdout line, which must start with prefix, and
// returns the rest of it.
func (p *proc) line(prefix string) string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			<-p.done
			p.t.Fatalf("%v ended (%v) before a line %q; stderr:\n%s", p.cmd.Args[1:], p.err, prefix, p.stderr)
		}
		if !strings.HasPrefix(l, prefix+" ") {
			p.t.Fatalf("got line %q, want %q ...", l, prefix)
		}
		return strings.TrimPrefix(l, prefix+" ")
	case <-time.After(15 * time.Second):
		p.t.Fatalf("no line %q within 15s; stderr:\n%s", prefix, p.stderr)
	}
	return ""
}

// stop sends sig and returns the exit code.
func (p *proc) stop(sig syscall.Signal) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	return p.exitCode()
}

func (p *proc) exitCode() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.t.Fatalf("%v did not exit within 20s", p.cmd.Args[1:])
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatal(p.err)
	}
	return 0
}

// runCmd runs a command to its end.
func runCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tcpactorBin(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func dialEcho(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(15 * time.Second))
	return c, bufio.NewReader(c)
}

func echoLine(t *testing.T, c net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	if _, err := io.WriteString(c, line); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadString('\n')
	if err != nil || got != line {
		t.Fatalf("echo of %q: got %q (%v)", line, got, err)
	}
}

// scrape reads /metrics and returns the tcpactor_ samples by name.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d (%v)\n%s", resp.StatusCode, err, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want Prometheus text format", ct)
	}
	m := map[string]float64{}
	for _, l := range strings.Split(string(body), "\n") {
		name, v, ok := strings.Cut(l, " ")
		if ok && strings.HasPrefix(name, "tcpactor_") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", l, err)
			}
			m[name] = f
		}
	}
	return m
}

// eventually polls f until it reports "" (done) or 10 s pass.
func eventually(t *testing.T, f func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCommandLine(t *testing.T) {
	binPath = buildTCPActor(t, t.TempDir())
	t.Cleanup(func() { binPath = "" })

	t.Run("ServeEchoesCountsInMetricsAndDrainsOnSIGTERM", testServeEchoesCountsInMetricsAndDrains)
	t.Run("StatusReportsARunningServerOverRemote", testStatusReportsARunningServer)
	t.Run("HandleServesTheConnectionsOfAServerOnAnotherNode", testHandleServesAnotherNodesConnections)
	t.Run("HandleReportsAServerNameNobodyHas", testHandleReportsAServerNameNobodyHas)
	t.Run("HandleExitsWhenItsServerIsLost", testHandleExitsWhenItsServerIsLost)
	t.Run("HandleLeavesNothingForTheServerToCallOn", testHandleLeavesNothingForTheServerToCallOn)
	t.Run("ServeFortuneWritesOneQStringThenDisconnects", testServeFortune)
	t.Run("ServeChatSendsEachLineToTheOtherMembers", testServeChat)
	t.Run("BadCommandLinesExitNonZeroWithOneLineOnStderr", testBadCommandLines)
	t.Run("ServeAdoptsTheSocketOfSystemdSocketActivation", testServeAdoptsASystemdActivatedSocket)
	t.Run("ServeSystemdRefusesWhatIsNotOneListeningSocketOfItsOwn", testServeSystemdRefusesBadActivations)
	t.Run("ServeTLSEchoesToOpenSSLAndCountsFailedHandshakes", testServeTLSEchoesToOpenSSLAndCountsFailedHandshakes)
	t.Run("ServeTLSFlagsRefuseWhatCannotServe", testServeTLSFlagsRefuseWhatCannotServe)
	t.Run("ServeBehindHAProxySeesTheClientsAddress", testServeBehindHAProxySeesTheClientsAddress)
	t.Run("ServeProxyFlagsRefuseWhatCannotServe", testServeProxyFlagsRefuseWhatCannotServe)
	t.Run("ServeRestartsOnSIGHUPWithoutDroppingAClient", testServeRestartsOnSIGHUPWithoutDroppingAClient)
	t.Run("ServeReusePortLetsTwoProcessesShareAPort", testServeReusePortLetsTwoProcessesShareAPort)
	t.Run("ServeListensThroughASocks5Proxy", testServeListensThroughASocks5Proxy)
	t.Run("EveryCommandHasHelp", testEveryCommandHasHelp)
	t.Run("ARemoteOffLoopbackNeedsTLSOrRemoteInsecure", testARemoteOffLoopbackNeedsTLSOrRemoteInsecure)
	t.Run("NodeInAClusterExitsZeroOnSIGTERM", testNodeInAClusterExitsZeroOnSIGTERM)
	t.Run("ClientArrivingDuringTheDrainIsRefusedOrServed", testClientArrivingDuringTheDrainIsRefusedOrServed)
	t.Run("IntegerFlagsAreRangeChecked", testIntegerFlagsAreRangeChecked)
	t.Run("ServeExitsNonZeroWhenItsServerStops", testServeExitsNonZeroWhenItsServerStops)
	t.Run("MetricsAreServedWhileAcceptsFailWithEMFILE", testMetricsAreServedWhileAcceptsFailWithEMFILE)
}

func testServeEchoesCountsInMetricsAndDrains(t *testing.T) {
	p := start(t, "serve", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--drain-timeout", "300ms")
	addr := p.line("listening on")
	metrics := p.line("metrics on")

	c, r := dialEcho(t, addr)
	echoLine(t, c, r, "hello\n")
	eventually(t, func() string {
		m := scrape(t, metrics)
		if m["tcpactor_connections_accepted_total"] != 1 || m["tcpactor_connections_active"] != 1 ||
			m["tcpactor_bytes_received_total"] != 6 || m["tcpactor_bytes_sent_total"] != 6 ||
			m["tcpactor_listening"] != 1 || m["tcpactor_connections_pending"] != 0 {
			return fmt.Sprintf("metrics after one echo of 6 bytes: %v", m)
		}
		return ""
	})
	for _, name := range []string{"tcpactor_accept_errors_total", "tcpactor_write_failures_total"} {
		if v, ok := scrape(t, metrics)[name]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0", name, v, ok)
		}
	}

	// A reply still unread when the signal comes is delivered; the
	// connection is served during the drain, then closed; exit status 0.
	if _, err := io.WriteString(c, "last words\n"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string { // the echo is written, not yet read
		if m := scrape(t, metrics); m["tcpactor_bytes_sent_total"] != 6+11 {
			return fmt.Sprintf("the echo of %q is not written: metrics %v", "last words\n", m)
		}
		return ""
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got, err := r.ReadString('\n'); err != nil || got != "last words\n" {
		t.Fatalf("pending reply: got %q (%v)", got, err)
	}
	echoLine(t, c, r, "during the drain\n")
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("after the drain: got %q (%v), want EOF", rest, err)
	}
	if code := p.exitCode(); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}
	if s := p.stderr.String(); s != "" {
		t.Errorf("stderr not empty at the default log level:\n%s", s)
	}
}

func testStatusReportsARunningServer(t *testing.T) {
	p := start(t, "serve", "--listen", "127.0.0.1:0", "--remote", "127.0.0.1:0", "--name", "statusme", "--drain-timeout", "100ms")
	addr := p.line("listening on")
	rem := p.line("remote on")
	c, r := dialEcho(t, addr)
	echoLine(t, c, r, "x\n")

	out, errOut, code := runCmd(t, "status", "--server", rem+"/statusme", "--json")
	if code != 0 {
		t.Fatalf("status exited %d: %s", code, errOut)
	}
	var st struct {
		Listening     bool   `json:"listening"`
		Address       string `json:"address"`
		Port          int    `json:"port"`
		Pending       *int   `json:"pending"`
		Active        int    `json:"active"`
		AcceptedTotal int    `json:"accepted_total"`
		AcceptErrors  *int   `json:"accept_errors"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json printed %q: %v", out, err)
	}
	_, port, _ := net.SplitHostPort(addr)
	if !st.Listening || st.Address != "127.0.0.1" || strconv.Itoa(st.Port) != port ||
		st.Pending == nil || *st.Pending != 0 || st.Active != 1 || st.AcceptedTotal != 1 || st.AcceptErrors == nil || *st.AcceptErrors != 0 {
		t.Errorf("status --json: %s", out)
	}

	out, _, code = runCmd(t, "status", "--server", rem+"/statusme")
	if code != 0 || !strings.Contains(out, "listening:               true") || !strings.Contains(out, "accepted total:          1") {
		t.Errorf("status (text) exited %d:\n%s", code, out)
	}

	_, errOut, code = runCmd(t, "status", "--server", rem+"/nosuchserver")
	if code == 0 || strings.Count(errOut, "\n") != 1 {
		t.Errorf("status of a missing server: exit %d, stderr %q; want non-zero and one line", code, errOut)
	}
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("serve exited %d; stderr:\n%s", code, p.stderr)
	}
	if s := p.stderr.String(); s != "" {
		t.Errorf("serve's stderr not empty after status clients came and went:\n%s", s)
	}
}

func testHandleServesAnotherNodesConnections(t *testing.T) {
	s := start(t, "serve", "--listen", "127.0.0.1:0", "--remote", "127.0.0.1:0", "--handler", "none", "--drain-timeout", "200ms")
	addr := s.line("listening on")
	rem := s.line("remote on")

	// A client that connects before any handler node waits in the queue.
	early, earlyR := dialEcho(t, addr)
	if _, err := io.WriteString(early, "early\n"); err != nil {
		t.Fatal(err)
	}
	h := start(t, "handle", "--server", rem+"/tcpserver")
	h.line("remote on")
	if got, err := earlyR.ReadString('\n'); err != nil || got != "early\n" {
		t.Fatalf("queued client: got %q (%v)", got, err)
	}
	c, r := dialEcho(t, addr)
	echoLine(t, c, r, "served on another node\n")
	echoLine(t, c, r, strings.Repeat("z", 100_000)+"\n")

	if code := h.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("handle exited %d; stderr:\n%s", code, h.stderr)
	}
	// The owners were on the handler node: their connections close.
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("after the handler node stopped: got %q (%v), want EOF", rest, err)
	}
	if code := s.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d; stderr:\n%s", code, s.stderr)
	}
}

func testBadCommandLines(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().String()
	for _, args := range [][]string{
		{},
		{"nosuchcommand"},
		{"serve", "--nosuchflag"},
		{"serve", "stray-argument"},
		{"serve", "--listen", "nocolon"},
		{"serve", "--listen", "127.0.0.1:65536"},
		{"serve", "--listen", "not-an-ip:0"},
		{"serve", "--listen", busy},
		{"serve", "--listen", "127.0.0.1:0", "--remote", busy},
		{"serve", "--listen", "127.0.0.1:0", "--metrics", busy},
		{"serve", "--handler", "telnet"},
		{"serve", "--max-pending", "0"},
		{"serve", "--max-connections", "-1"},
		{"serve", "--idle-timeout", "soon"},
		{"serve", "--io", "threads"},
		{"serve", "--drain-timeout", "-1s"},
		{"serve", "--log-level", "chatty"},
		{"serve", "--name", ""},
		{"status"},
		{"status", "--server", "127.0.0.1:1"},
		{"status", "--server", "127.0.0.1:1/x"}, // nothing listens on port 1
		{"status", "--server", "127.0.0.1:0/x", "--json=perhaps"},
		{"handle"},
		{"handle", "--server", "noport/x"},
		{"handle", "--server", busy + "/x", "--handler", "telnet"},
		{"handle", "--server", "127.0.0.1:1/x"},
		{"handle", "--server", "127.0.0.1:1/x", "--remote", busy},
		{"serve", "--listen", "127.0.0.1:0", "--remote", "127.0.0.1:0", "--remote-cert", "node.pem"},
		{"serve", "--listen", "127.0.0.1:0", "--remote", "127.0.0.1:0", "--remote-cert", "no.pem", "--remote-key", "no-key.pem", "--remote-ca", "no-ca.pem"},
		{"serve", "--listen", "127.0.0.1:0", "--remote-ca", "ca.pem"},
		{"serve", "--listen", "127.0.0.1:0", "--remote", "127.0.0.1:0", "--advertise", "node1.example"},
		{"status", "--server", "127.0.0.1:1/x", "--remote-key", "key.pem"},
		{"node", "--remote", "127.0.0.1:0", "--remote-ca", "ca.pem"},
		{"node", "--remote", "127.0.0.1:0", "--cluster", "c", "--etcd", "127.0.0.1:2379", "--members", "127.0.0.1:1", "--health-port", "1"},
		{"node", "--remote", "127.0.0.1:0", "--cluster", "c", "--etcd", "noport"},
		{"node", "--remote", "127.0.0.1:0", "--etcd", "127.0.0.1:2379"},
	} {
		out, errOut, code := runCmd(t, args...)
		if code == 0 || strings.Count(errOut, "\n") != 1 || !strings.HasSuffix(errOut, "\n") || out != "" {
			t.Errorf("tcpactor %q: exit %d, stdout %q, stderr %q; want non-zero, nothing on stdout, one line on stderr",
				args, code, out, errOut)
		}
		if strings.Contains(errOut, "goroutine ") || strings.Contains(errOut, "panic") {
			t.Errorf("tcpactor %q: stack trace on stderr: %s", args, errOut)
		}
	}
}

// testARemoteOffLoopbackNeedsTLSOrRemoteInsecure: a remote on an address
// other hosts may reach, without mutual TLS, is refused with one line on
// stderr, before anything is bound, unless --remote-insecure says so. The
// addresses are never bound (192.0.2.1 is TEST-NET-1, not on this machine):
// nothing leaves loopback.
func testARemoteOffLoopbackNeedsTLSOrRemoteInsecure(t *testing.T) {
	for _, cmd := range [][]string{
		{"serve", "--listen", "127.0.0.1:0", "--remote", "192.0.2.1:8090"},
		{"serve", "--listen", "127.0.0.1:0", "--remote", "0.0.0.0:0"},
		{"serve", "--listen", "127.0.0.1:0", "--remote", ":8090"},
		{"handle", "--server", "127.0.0.1:1/x", "--remote", "192.0.2.1:0"},
		{"status", "--server", "127.0.0.1:1/x", "--remote", "[::]:0"},
		{"node", "--remote", "192.0.2.1:8090"},
	} {
		out, errOut, code := runCmd(t, cmd...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "is not a loopback address") {
			t.Errorf("tcpactor %q: exit %d, stdout %q, stderr %q; want exit 2 and one line saying it is not a loopback address",
				cmd, code, out, errOut)
		}
		// --remote-insecure lets it through the check: it then fails to
		// bind 192.0.2.1, or to reach the server on port 1, or (0.0.0.0)
		// runs, which the test stops.
		insecure := append(cmd, "--remote-insecure")
		if cmd[0] == "serve" && !strings.HasPrefix(cmd[4], "192.") {
			continue
		}
		_, errOut, code = runCmd(t, insecure...)
		if code == 0 || strings.Contains(errOut, "loopback") {
			t.Errorf("tcpactor %q: exit %d, stderr %q; want it past the loopback check", insecure, code, errOut)
		}
	}
	for _, ok := range []string{"127.0.0.1:0", "127.1.2.3:0", "[::1]:0", "localhost:0"} {
		if cmd := []string{"node", "--remote", ok, "--log-level", "nonsense"}; true {
			_, errOut, _ := runCmd(t, cmd...)
			if strings.Contains(errOut, "loopback") {
				t.Errorf("tcpactor %q: %q; a loopback remote needs no TLS", cmd, errOut)
			}
		}
	}
}

func testEveryCommandHasHelp(t *testing.T) {
	for _, cmd := range []string{"serve", "handle", "status", "node"} {
		out, errOut, code := runCmd(t, cmd, "--help")
		if code != 0 || !strings.Contains(out+errOut, "-") || len(out+errOut) < 40 {
			t.Errorf("tcpactor %s --help: exit %d, output %q%q", cmd, code, out, errOut)
		}
	}
	out, _, code := runCmd(t, "--help")
	for _, cmd := range []string{"serve", "handle", "status", "node"} {
		if code != 0 || !strings.Contains(out, "tcpactor "+cmd) {
			t.Errorf("tcpactor --help: exit %d, output %q; want every command, %s too", code, out, cmd)
		}
	}
	// The flag package takes a backquoted word of a usage for the name of
	// the flag's value: it must be a value, not prose.
	out, _, _ = runCmd(t, "serve", "--help")
	if !strings.Contains(out, "-handler HANDLER") {
		t.Errorf("serve --help names --handler's value wrongly:\n%s", out)
	}
	// The benchmark is a command of its own (cmd/tcpactor-bench), not a
	// part of the shipped CLI.
	if strings.Contains(out, "bench") {
		t.Errorf("tcpactor --help lists the benchmark: %q", out)
	}
	for _, cmd := range []string{"bench", "bench-server"} {
		if _, _, code := runCmd(t, cmd, "--help"); code != 2 {
			t.Errorf("tcpactor %s --help: exit %d, want 2 (no such command)", cmd, code)
		}
	}
}

func testServeFortune(t *testing.T) {
	p := start(t, "serve", "--listen", "127.0.0.1:0", "--handler", "fortune")
	addr := p.line("listening on")
	c, _ := dialEcho(t, addr)
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	ok := false
	for _, f := range protocols.Fortunes {
		ok = ok || bytes.Equal(got, protocols.QString(f))
	}
	if !ok {
		t.Fatalf("got %q, want one QDataStream QString fortune, then EOF", got)
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
}

func testServeChat(t *testing.T) {
	p := start(t, "serve", "--listen", "127.0.0.1:0", "--handler", "chat", "--drain-timeout", "100ms")
	addr := p.line("listening on")
	a, _ := dialEcho(t, addr)
	b, br := dialEcho(t, addr)
	c, cr := dialEcho(t, addr)
	// Joining is asynchronous: say hello until everyone hears it.
	eventually(t, func() string {
		io.WriteString(a, "ping\n")
		b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		l, err := br.ReadString('\n')
		if err != nil || !strings.HasSuffix(l, ": ping\n") {
			return fmt.Sprintf("b heard %q (%v)", l, err)
		}
		return ""
	})
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(b, "hi all\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		l, err := cr.ReadString('\n')
		if err != nil {
			t.Fatalf("c: %v", err)
		}
		if strings.HasSuffix(l, ": hi all\n") {
			break
		}
		if !strings.HasSuffix(l, ": ping\n") {
			t.Fatalf("c heard %q", l)
		}
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
}
