package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// clientLoop is a client that connects, echoes one line and closes, again
// and again, counting how each attempt ended.
type clientLoop struct {
	ok, refused, reset atomic.Int64
	mu                 sync.Mutex
	other              []string
}

func (l *clientLoop) run(addr string, id int, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if err := echoOnce(addr, fmt.Sprintf("client %d round %d\n", id, i)); err != nil {
			switch {
			case errors.Is(err, syscall.ECONNREFUSED):
				l.refused.Add(1)
			case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				l.reset.Add(1)
			default:
				l.mu.Lock()
				l.other = append(l.other, err.Error())
				l.mu.Unlock()
			}
			continue
		}
		l.ok.Add(1)
	}
}

func echoOnce(addr, line string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != line {
		return fmt.Errorf("echo of %q: got %q", line, got)
	}
	return nil
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testServeRestartsOnSIGHUPWithoutDroppingAClient(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "serve.pid")
	// stdout is a pipe of our own that the successor inherits too, so its
	// lines arrive after the first process has exited.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// stderr too is a file, not a pipe Wait would copy from until the
	// successor closes it.
	errFile, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	stderr := func() string { b, _ := os.ReadFile(errFile.Name()); return string(b) }
	cmd := exec.Command(tcpactorBin(t), "serve", "--listen", "127.0.0.1:0", "--pid-file", pidFile, "--drain-timeout", "5s")
	cmd.Stdout, cmd.Stderr = w, errFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines) // every process holding the pipe has exited
	}()
	servingPID := func() int {
		b, _ := os.ReadFile(pidFile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return pid
	}
	t.Cleanup(func() {
		if pid := servingPID(); pid > 0 && pid != cmd.Process.Pid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = cmd.Process.Kill()
		<-exited
	})
	line := func(prefix string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok || !strings.HasPrefix(l, prefix+" ") {
				t.Fatalf("got line %q (open %v), want %q; stderr:\n%s", l, ok, prefix, stderr())
			}
			return strings.TrimPrefix(l, prefix+" ")
		case <-time.After(30 * time.Second):
			t.Fatalf("no line %q; stderr:\n%s", prefix, stderr())
		}
		return ""
	}
	addr := line("listening on")
	waitFor(t, "the pid file", func() bool { return servingPID() == cmd.Process.Pid })

	var loop clientLoop
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go loop.run(addr, i, stop, &wg)
	}
	defer func() { close(stop); wg.Wait() }()
	waitFor(t, "clients served by the first process", func() bool { return loop.ok.Load() >= 50 })

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if got := line("listening on"); got != addr {
		t.Fatalf("the successor listens on %s, want the same %s", got, addr)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("the first process exited with %v after handing over; stderr:\n%s", err, stderr())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the first process did not exit after its successor was ready; stderr:\n%s", stderr())
	}
	successor := servingPID()
	if successor == cmd.Process.Pid || successor <= 0 {
		t.Fatalf("pid file names %d after the restart, want the successor's (not %d)", successor, cmd.Process.Pid)
	}
	after := loop.ok.Load()
	waitFor(t, "clients served by the successor alone", func() bool { return loop.ok.Load() >= after+50 })
	close(stop)
	wg.Wait()
	stop = make(chan struct{})

	t.Logf("%d echoes through the restart", loop.ok.Load())
	if n, m := loop.refused.Load(), loop.reset.Load(); n != 0 || m != 0 || len(loop.other) != 0 {
		t.Errorf("through the restart: %d refused, %d reset, other failures %q; want none", n, m, loop.other)
	}
	if err := syscall.Kill(successor, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-lines:
		if ok {
			t.Errorf("the successor printed more after SIGTERM")
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the successor did not exit on SIGTERM")
	}
	if s := stderr(); s != "" {
		t.Errorf("stderr:\n%s", s)
	}
}

// testServeReusePortLetsTwoProcessesShareAPort runs two serve processes on
// one port: both serve, and when one stops the other takes every client.
func testServeReusePortLetsTwoProcessesShareAPort(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", freePort(t))
	a := start(t, "serve", "--listen", addr, "--reuseport", "--drain-timeout", "100ms")
	b := start(t, "serve", "--listen", addr, "--reuseport", "--drain-timeout", "100ms")
	if a.line("listening on") != addr || b.line("listening on") != addr {
		t.Fatal("both processes should listen on", addr)
	}
	for i := range 20 {
		if err := echoOnce(addr, fmt.Sprintf("shared %d\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("first serve exited %d", code)
	}
	for i := range 20 {
		if err := echoOnce(addr, fmt.Sprintf("one left %d\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Without --reuseport the port is taken.
	if _, errOut, code := runCmd(t, "serve", "--listen", addr); code == 0 || !strings.Contains(errOut, "in use") {
		t.Errorf("a third serve without --reuseport: exit %d, stderr %q; want address in use", code, errOut)
	}
	if code := b.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("second serve exited %d", code)
	}
}
