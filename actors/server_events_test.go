package actors

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

// The newConnection() and acceptError() signals: Subscribe, Unsubscribe and
// the NewConnection and AcceptError events.

func subscribe(s *testServer, sub *actor.PID) {
	s.t.Helper()
	expectNoError(s.t, "Subscribe", ask[*messages.Ack](s, &messages.Subscribe{Subscriber: sub}).Error)
}

func TestSubscriberGetsNewConnectionForEachAcceptedClient(t *testing.T) {
	cases := []struct {
		name string
		do   func(s *testServer, sub *probe) // subscribes sub
	}{
		{"named subscriber", func(s *testServer, sub *probe) { subscribe(s, sub.pid) }},
		{"the sender", func(s *testServer, sub *probe) {
			s.sys.Root.RequestWithCustomSender(s.pid, &messages.Subscribe{}, sub.pid)
			expectNoError(s.t, "Subscribe", next[*messages.Ack](s.t, sub).Error)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			addr := s.listen()
			sub := newProbe(t, s.sys)
			tc.do(s, sub)

			seen := map[string]bool{}
			for i := int32(1); i <= 3; i++ {
				port := dialedPort(dial(t, addr))
				ev := next[*messages.NewConnection](t, sub)
				switch {
				case !ev.Server.Equal(s.pid) || !ev.Info.GetServer().Equal(s.pid):
					t.Fatalf("event %d names server %v (info: %v), want %v", i, ev.Server, ev.Info.GetServer(), s.pid)
				case ev.Connection == nil || seen[ev.Connection.String()]:
					t.Fatalf("event %d: connection %v missing or seen before", i, ev.Connection)
				case ev.Pending != i:
					t.Fatalf("event %d: pending %d, want %d", i, ev.Pending, i)
				case ev.Info.GetPeerPort() != port:
					t.Fatalf("event %d: peer port %d, want the client's %d", i, ev.Info.GetPeerPort(), port)
				}
				seen[ev.Connection.String()] = true
			}
		})
	}
}

func TestUnsubscribeStopsNewConnectionEvents(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	sub := newProbe(t, s.sys)
	subscribe(s, sub.pid)
	dial(t, addr)
	next[*messages.NewConnection](t, sub)

	expectNoError(t, "Unsubscribe", ask[*messages.Ack](s, &messages.Unsubscribe{Subscriber: sub.pid}).Error)
	dial(t, addr)
	s.waitStatus("2 pending", pendingIs(2))
	noMessage[*messages.NewConnection](t, sub)
}

func TestSubscribingTwiceYieldsOneEventPerConnection(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	sub := newProbe(t, s.sys)
	subscribe(s, sub.pid)
	subscribe(s, sub.pid)
	for i := int32(1); i <= 2; i++ {
		dial(t, addr)
		if ev := next[*messages.NewConnection](t, sub); ev.Pending != i {
			t.Fatalf("event for pending %d, want %d: %v", ev.Pending, i, ev)
		}
	}
	noMessage[*messages.NewConnection](t, sub)
}

func TestServerDropsASubscriberThatStops(t *testing.T) {
	s := startServer(t, ServerOptions{})
	addr := s.listen()
	gone := newProbe(t, s.sys)
	subscribe(s, gone.pid)
	dial(t, addr)
	next[*messages.NewConnection](t, gone)

	// Whatever the server still sends to the stopped subscriber ends in dead
	// letters.
	dead := make(chan *actor.DeadLetterEvent, 64)
	es := s.sys.EventStream.Subscribe(func(evt any) {
		if d, ok := evt.(*actor.DeadLetterEvent); ok && d.PID.Equal(gone.pid) {
			select {
			case dead <- d:
			default:
			}
		}
	})
	defer s.sys.EventStream.Unsubscribe(es)
	// The server watched the subscriber before StopFuture did, so it has its
	// Terminated queued by the time the stop is confirmed.
	if err := s.sys.Root.StopFuture(gone.pid).Wait(); err != nil {
		t.Fatal(err)
	}

	fresh := newProbe(t, s.sys)
	subscribe(s, fresh.pid)
	dial(t, addr)
	if ev := next[*messages.NewConnection](t, fresh); ev.Pending != 2 {
		t.Fatalf("the fresh subscriber got %v, want the second connection", ev)
	}
	s.status() // the server has finished publishing that connection
	select {
	case d := <-dead:
		t.Fatalf("the server still sends to its stopped subscriber: %T %v", d.Message, d.Message)
	default:
	}
}

// ---------------------------------------------------------------------------
// acceptError(): a real EMFILE, in a child process with few descriptors.

const emfileChildEnv = "TCPACTOR_TEST_EMFILE_CHILD"

// TestAcceptErrorIsReportedWithBackOffWhenOutOfDescriptors runs a server in
// a child process (TestHelperProcessEMFILE) that has used up its descriptors,
// connects a client and watches the child through its stdout: AcceptError
// events with SocketResourceError, a rate bounded by the back-off (5 ms
// doubling to 1 s), no busy loop, still listening, and the client accepted
// once descriptors are free again.
func TestAcceptErrorIsReportedWithBackOffWhenOutOfDescriptors(t *testing.T) {
	child := startEMFILEChild(t)
	port := child.expect("PORT")[0]
	child.expect("FILLED")
	client := dial(t, net.JoinHostPort("127.0.0.1", port))

	child.waitAcceptError()
	cpu0 := child.cpuTime()
	time.Sleep(time.Second) // the window the child's CPU time is measured over
	if used := child.cpuTime() - cpu0; used >= 300*time.Millisecond {
		child.fatalf("the child used %v of CPU in 1 s while out of descriptors: accept is spinning", used)
	}
	child.send("STATUS")
	if st := child.expect("STATUS"); st[0] != "true" || st[1] == "0" {
		child.fatalf("child status listening=%s accept_errors=%s, want still listening with errors counted", st[0], st[1])
	}

	errs := child.acceptErrors()
	within := 0
	for _, e := range errs {
		if e.code != messages.SocketError_SOCKET_ERROR_SOCKET_RESOURCE {
			child.fatalf("AcceptError code %v, want SOCKET_ERROR_SOCKET_RESOURCE", e.code)
		}
		if e.at-errs[0].at <= 500*time.Millisecond {
			within++
		}
	}
	// Back-off 5, 10, 20, ... ms: about 7 attempts in the first 500 ms.
	if within > 10 {
		child.fatalf("%d AcceptErrors within 500 ms of the first: not backing off", within)
	}

	child.send("FREE")
	if got := child.expect("NEWCONNECTION")[0]; got != strconv.Itoa(int(dialedPort(client))) {
		child.fatalf("the child accepted peer port %s, want the client's %d", got, dialedPort(client))
	}
	client.Close() // else its connection lingers (up to 5 s) in the child's end
	child.send("EXIT")
	child.wait()
}

// emfileChild is the parent's view of TestHelperProcessEMFILE. A goroutine
// reads the child's stdout into memory as fast as it comes, so the child
// never blocks on its output, whatever it prints and whatever the test does.
type emfileChild struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *bytes.Buffer // written by exec's goroutine: read only after exited
	exited chan struct{}
	err    error // the child's exit status, set before exited closes

	mu        sync.Mutex
	lines     []string // every line but ACCEPTERROR
	consumed  int      // lines already matched by expect
	errs      []childAcceptError
	errsTotal int
}

type childAcceptError struct {
	code messages.SocketError
	at   time.Duration // since the child started listening
}

const maxRecordedAcceptErrors = 1 << 16

func startEMFILEChild(t *testing.T) *emfileChild {
	t.Helper()
	return startChild(t, "TestHelperProcessEMFILE", emfileChildEnv)
}

// startChild runs this test binary again as the helper test helperTest, with
// env=1 set, reading its report lines; the child ends when the test does
// (its stdin closes).
func startChild(t *testing.T, helperTest, env string) *emfileChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+helperTest+"$", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), env+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &emfileChild{t: t, cmd: cmd, stdin: stdin, stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.record(sc.Text())
		}
		c.err = cmd.Wait() // after every read from stdout, as exec requires
		close(c.exited)
	}()
	t.Cleanup(func() {
		stdin.Close() // the child ends on EOF too
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-c.exited
			t.Errorf("the child did not exit by itself%s", c.transcript())
		}
	})
	return c
}

func (c *emfileChild) record(l string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := strings.Fields(l)
	if len(f) != 3 || f[0] != "ACCEPTERROR" {
		if len(c.lines) < 1000 {
			c.lines = append(c.lines, l)
		}
		return
	}
	c.errsTotal++
	code, _ := strconv.Atoi(f[1])
	ms, _ := strconv.Atoi(f[2])
	if len(c.errs) < maxRecordedAcceptErrors {
		c.errs = append(c.errs, childAcceptError{messages.SocketError(code), time.Duration(ms) * time.Millisecond})
	}
}

// transcript is what the child said, for failure messages.
func (c *emfileChild) transcript() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "\nchild stdout (%d ACCEPTERROR lines left out):\n%s", c.errsTotal, strings.Join(c.lines, "\n"))
	select {
	case <-c.exited:
		fmt.Fprintf(&b, "\nchild exit: %v\nchild stderr:\n%s", c.err, c.stderr)
	default:
	}
	return b.String()
}

// fatalf fails the test with what the child said.
func (c *emfileChild) fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf(format+"%s", append(args, c.transcript())...)
}

// expect waits for the child's next line that starts with word and returns
// the fields after it.
func (c *emfileChild) expect(word string) []string {
	c.t.Helper()
	deadline := time.Now().Add(replyTimeout)
	for {
		c.mu.Lock()
		for i := c.consumed; i < len(c.lines); i++ {
			if f := strings.Fields(c.lines[i]); len(f) > 0 && f[0] == word {
				c.consumed = i + 1
				c.mu.Unlock()
				return f[1:]
			}
		}
		c.mu.Unlock()
		select {
		case <-c.exited:
			c.fatalf("the child ended without printing %s", word)
		default:
		}
		if time.Now().After(deadline) {
			c.fatalf("the child printed no %s within %v", word, replyTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *emfileChild) acceptErrors() []childAcceptError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]childAcceptError(nil), c.errs...)
}

func (c *emfileChild) waitAcceptError() {
	c.t.Helper()
	deadline := time.Now().Add(replyTimeout)
	for len(c.acceptErrors()) == 0 {
		if time.Now().After(deadline) {
			c.fatalf("the child reported no AcceptError within %v", replyTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *emfileChild) send(cmd string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		c.fatalf("tell the child %s: %v", cmd, err)
	}
}

// wait waits for the child to exit and checks that it succeeded.
func (c *emfileChild) wait() {
	c.t.Helper()
	select {
	case <-c.exited:
	case <-time.After(replyTimeout):
		c.fatalf("the child did not exit within %v", replyTimeout)
	}
	if c.err != nil {
		c.fatalf("child: %v", c.err)
	}
}

// cpuTime is the child's user + system CPU time (/proc/PID/stat, fields 14
// and 15, in clock ticks of 1/100 s).
func (c *emfileChild) cpuTime() time.Duration {
	c.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		c.t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])) // the name may hold spaces
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		c.t.Fatalf("parse /proc/PID/stat: %v %v", err1, err2)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// TestHelperProcessEMFILE is the child of
// TestAcceptErrorIsReportedWithBackOffWhenOutOfDescriptors, not a test of
// its own. It serves on 127.0.0.1, uses up its descriptors and reports on
// stdout: "PORT n", "FILLED", "ACCEPTERROR code ms-since-start",
// "NEWCONNECTION peer-port", "FREED", "STATUS listening accept-errors". It
// obeys "STATUS", "FREE" and "EXIT" on stdin and ends at EXIT, at EOF or
// after 30 s whatever happens.
func TestHelperProcessEMFILE(t *testing.T) {
	if os.Getenv(emfileChildEnv) != "1" {
		t.Skip("the child process of TestAcceptErrorIsReportedWithBackOffWhenOutOfDescriptors")
	}
	s, port := startReportingChild(t, "EMFILE child", ServerOptions{}, 64)
	// Few descriptors, all of them taken: accept(2) fails with EMFILE.
	var fillers []int
	free := func() {
		for _, fd := range fillers {
			syscall.Close(fd)
		}
		fillers = nil
	}
	defer free()
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EMFILE {
			break
		}
		if err != nil || len(fillers) > 1<<16 {
			t.Fatalf("filling descriptors: %v after %d", err, len(fillers))
		}
		fillers = append(fillers, fd)
	}
	fmt.Printf("PORT %d\nFILLED\n", port)

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "STATUS":
			st := s.status()
			fmt.Printf("STATUS %t %d\n", st.Listening, st.AcceptErrors)
		case "FREE":
			free()
			fmt.Println("FREED")
		case "EXIT":
			return
		}
	}
}

// startReportingChild starts what the EMFILE child processes share: a
// watchdog that ends the process after 30 s whatever happens, a server with
// opts listening on 127.0.0.1, a subscriber that prints its events
// ("ACCEPTERROR code ms-since-start", "NEWCONNECTION peer-port"), and a
// descriptor limit headroom above the descriptors open now. It returns the
// server and its port.
func startReportingChild(t *testing.T, name string, opts ServerOptions, headroom int) (*testServer, uint32) {
	t.Helper()
	watchdog := time.AfterFunc(30*time.Second, func() {
		fmt.Fprintln(os.Stderr, name+": watchdog expired")
		os.Exit(3)
	})
	t.Cleanup(func() { watchdog.Stop() })
	s := startServer(t, opts)
	r := ask[*messages.ListenResult](s, &messages.Listen{Address: "127.0.0.1"})
	if !r.Ok {
		t.Fatalf("listen: %v", r.Error)
	}
	start := time.Now()
	reporter := s.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.AcceptError:
			fmt.Printf("ACCEPTERROR %d %d\n", m.Error.GetCode(), time.Since(start).Milliseconds())
		case *messages.NewConnection:
			fmt.Printf("NEWCONNECTION %d\n", m.Info.GetPeerPort())
		}
	}))
	t.Cleanup(func() { _ = s.sys.Root.StopFuture(reporter).Wait() })
	subscribe(s, reporter)
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	rl.Cur = uint64(testkit.OpenFDs(t) + headroom)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	return s, r.Port
}
