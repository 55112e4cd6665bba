package crossnode

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/internal/testkit"
)

// buildTCPActor builds the tcpactor command into the test's temporary
// directory (go build caches, so each build after the first is a link).
func buildTCPActor(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tcpactor")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/tcpactor/tcpactor/cmd/tcpactor")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freePort returns a loopback port that was free a moment ago, from below
// the kernel's ephemeral range (testkit.FreePort says why).
func freePort(t *testing.T) int { return testkit.FreePort(t) }

// candidatePort and isFree are testkit's, for a placement search that
// binds only the ports it chose.
func candidatePort() int   { return testkit.CandidatePort() }
func isFree(port int) bool { return testkit.IsFree(port) }

// nodeProc is a `tcpactor node` child process whose stdout lines the test
// reads.
type nodeProc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []timedLine
	wake   chan struct{}
	exit   chan struct{}
	debug  string // --debug-addr, when given
	stderr lockedBuffer
	// started is when the child was started: the dump of a failed test
	// gives each line's time since.
	started time.Time
}

type timedLine struct {
	at   time.Time
	text string
}

// startNode runs `bin node args...`; the process is killed and reaped when
// the test ends, whatever happens.
func startNode(t *testing.T, bin, name string, args ...string) *nodeProc {
	t.Helper()
	return startCommand(t, bin, name, "node", args...)
}

// startCommand runs `bin command args...` (a tcpactor command that runs
// until it is stopped: node, serve, handle) as startNode does.
func startCommand(t *testing.T, bin, name, command string, args ...string) *nodeProc {
	t.Helper()
	p := &nodeProc{t: t, name: name, wake: make(chan struct{}, 1), exit: make(chan struct{}), started: time.Now()}
	args = append([]string(nil), args...)
	for i, a := range args {
		if a == "--debug-addr" && i+1 < len(args) {
			p.debug = args[i+1]
		}
		// CROSSNODE_LOG_LEVEL=info (or debug) makes the children log more,
		// for the dump of a failed test.
		if lvl := os.Getenv("CROSSNODE_LOG_LEVEL"); a == "--log-level" && i+1 < len(args) && lvl != "" {
			args[i+1] = lvl
		}
	}
	p.cmd = exec.Command(bin, append([]string{command}, args...)...)
	p.cmd.Stderr = &prefixWriter{t: t, prefix: name + " stderr: ", keep: &p.stderr}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, timedLine{at: time.Now(), text: sc.Text()})
			p.mu.Unlock()
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
		_ = p.cmd.Wait()
		close(p.exit)
	}()
	t.Cleanup(p.kill)
	t.Cleanup(p.dumpIfFailed) // before the kill: a live child can still answer /status
	return p
}

// dumpIfFailed logs, when the test has failed, what the child printed (each
// line with its time since the child started), its stderr, and while it
// runs its /status (its view of the cluster included); with
// CROSSNODE_DUMP_DIR set, its goroutines go to a file there. A failure
// under load is rare: its evidence must come with it.
func (p *nodeProc) dumpIfFailed() {
	if !p.t.Failed() {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "=== %s (pid %d, started %s", p.name, p.pid(), p.started.Format("15:04:05.000"))
	if !p.alive() {
		fmt.Fprintf(&b, ", exited: %v", p.cmd.ProcessState)
	}
	b.WriteString(") stdout:\n")
	p.mu.Lock()
	for _, l := range p.lines {
		fmt.Fprintf(&b, "  +%8.3fs %s\n", l.at.Sub(p.started).Seconds(), l.text)
	}
	p.mu.Unlock()
	fmt.Fprintf(&b, "--- %s stderr:\n%s", p.name, p.stderr.String())
	if p.debug != "" && p.alive() {
		fmt.Fprintf(&b, "--- %s /status: %s\n", p.name, p.get("/status"))
		if dir := os.Getenv("CROSSNODE_DUMP_DIR"); dir != "" {
			test := strings.ReplaceAll(p.t.Name(), "/", "_")
			f := filepath.Join(dir, fmt.Sprintf("%s-%s-%d.goroutines", test, p.name, p.pid()))
			if err := os.WriteFile(f, []byte(p.get("/debug/pprof/goroutine?debug=1")), 0o644); err != nil {
				fmt.Fprintf(&b, "--- %s goroutines: %v\n", p.name, err)
			} else {
				fmt.Fprintf(&b, "--- %s goroutines: %s\n", p.name, f)
			}
		}
	}
	p.t.Log(b.String())
}

// get fetches a path of the child's --debug-addr, or says why it could not.
func (p *nodeProc) get(path string) string {
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Get("http://" + p.debug + path)
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(b))
}

// kill sends SIGKILL (kill -9) and waits for the process to be reaped.
func (p *nodeProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exit:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s: not reaped 10 s after SIGKILL", p.name)
	}
}

func (p *nodeProc) pid() int { return p.cmd.Process.Pid }

// waitLine waits for a line that starts with prefix, printed at or after
// since, and returns it with the time it was read.
func (p *nodeProc) waitLine(prefix string, since time.Time, within time.Duration) (string, time.Time) {
	p.t.Helper()
	deadline := time.After(within)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if !l.at.Before(since) && strings.HasPrefix(l.text, prefix) {
				p.mu.Unlock()
				return l.text, l.at
			}
		}
		p.mu.Unlock()
		select {
		case <-p.wake:
		case <-p.exit:
			p.t.Fatalf("%s exited while the test waited for %q; output:\n%s\nstderr:\n%s", p.name, prefix, p.output(), p.stderr.String())
		case <-deadline:
			p.t.Fatalf("%s: no line %q within %v; output:\n%s", p.name, prefix, within, p.output())
		}
	}
}

// count is how many lines starting with prefix were printed at or after since.
func (p *nodeProc) count(prefix string, since time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if !l.at.Before(since) && strings.HasPrefix(l.text, prefix) {
			n++
		}
	}
	return n
}

// last is the last line starting with prefix ("" when none).
func (p *nodeProc) last(prefix string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(p.lines[i].text, prefix) {
			return p.lines[i].text
		}
	}
	return ""
}

func (p *nodeProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		b.WriteString(l.text + "\n")
	}
	return b.String()
}

func (p *nodeProc) alive() bool {
	select {
	case <-p.exit:
		return false
	default:
		return true
	}
}

// fds counts the process's open descriptors.
func (p *nodeProc) fds() int {
	p.t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.pid()))
	if err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	return len(ents)
}

// status reads the node's /status (it needs --debug-addr).
func (p *nodeProc) status() map[string]any {
	p.t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Get("http://" + p.debug + "/status")
	if err != nil {
		p.t.Fatalf("%s /status: %v", p.name, err)
	}
	defer res.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		p.t.Fatalf("%s /status: %v", p.name, err)
	}
	return st
}

func (p *nodeProc) goroutines() int { return int(p.status()["goroutines"].(float64)) }

// baseline is a process's descriptors and goroutines at rest.
type baseline struct{ fds, goroutines int }

func (p *nodeProc) baseline() baseline { return baseline{p.fds(), p.goroutines()} }

// backToBaseline waits until the process holds no more descriptors than b
// and at most slack goroutines more (timers and pooled workers come and go),
// and returns how long that took.
func (p *nodeProc) backToBaseline(b baseline, slack int, within time.Duration) time.Duration {
	p.t.Helper()
	start := time.Now()
	for {
		fds, gs := p.fds(), p.goroutines()
		if fds <= b.fds && gs <= b.goroutines+slack {
			return time.Since(start)
		}
		if time.Since(start) > within {
			p.t.Fatalf("%s: %d descriptors and %d goroutines %v after the loss; baseline %d and %d; goroutines:\n%s",
				p.name, fds, gs, within, b.fds, b.goroutines, p.goroutineDump())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type prefixWriter struct {
	t      *testing.T
	prefix string
	keep   *lockedBuffer
}

// lockedBuffer keeps a child's stderr for the test's messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// stderrKept bounds what lockedBuffer.keep holds of a child's stderr.
const stderrKept = 256 << 10

// keep appends b and, past stderrKept, drops the oldest half: the end of a
// child's log is what explains a failure.
func (l *lockedBuffer) keep(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(b)
	if s := l.b.String(); len(s) > stderrKept {
		s = s[len(s)-stderrKept/2:]
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
		l.b.Reset()
		l.b.WriteString("[... earlier lines dropped]\n" + s)
	}
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Write keeps a child's stderr out of the test log unless -v: the members
// log every failed health check of a killed member.
func (w *prefixWriter) Write(b []byte) (int, error) {
	if w.keep != nil {
		w.keep.keep(b)
	}
	if testing.Verbose() && os.Getenv("CROSSNODE_STDERR") != "" {
		w.t.Log(w.prefix + strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func hostport(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// addrAfter returns the HOST:PORT that follows prefix in line.
func addrAfter(line, prefix string) string {
	f := strings.Fields(strings.TrimPrefix(line, prefix))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// goroutineDump is the node's goroutine profile, grouped by stack.
func (p *nodeProc) goroutineDump() string { return p.get("/debug/pprof/goroutine?debug=1") }
