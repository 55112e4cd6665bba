// Package childproc is the line protocol between tcpactor-bench and
// tcpactor-soak and the child processes they measure (the same binary run
// as a server or a node), so that what is measured of a child — its
// memory, goroutines, descriptors — is its own and not the load
// generator's.
//
// The child prints one line once it serves (its address, say), then
// answers each command read on its stdin, one a line, with one line on its
// stdout, and exits when its stdin ends: the parent closing it, or exiting.
// "gc" is every child's: a full collection that returns freed memory to the
// OS, then "ok", so that the RSS read next shows what is live.
package childproc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Child is the parent's handle on one running child.
type Child struct {
	name    string // in errors: "raw server", "the handler node"
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string // stdout, line by line; closed at EOF
	timeout time.Duration
	done    chan struct{} // closed when the process has been waited for
	err     error         // Wait's result, once done
}

// Start starts cmd (with its Stderr as the caller wants it; Start takes its
// stdin and stdout) and returns the child with its first line, read within
// timeout, which also bounds the wait for each reply. name names the child
// in errors. A child that fails to say its first line is stopped.
func Start(cmd *exec.Cmd, name string, timeout time.Duration) (*Child, string, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 16), timeout: timeout, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text() // one reply per command: the buffer never fills
		}
		close(c.lines)
		// Wait only after stdout is drained (exec's rule).
		c.err = cmd.Wait()
		close(c.done)
	}()
	first, err := c.line()
	if err != nil {
		_ = c.Stop()
		return nil, "", fmt.Errorf("%s: %w", name, err)
	}
	return c, first, nil
}

// Pid is the child's process id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// line waits for the next line of the child's output.
func (c *Child) line() (string, error) {
	t := time.NewTimer(c.timeout)
	defer t.Stop()
	select {
	case l, ok := <-c.lines:
		if !ok {
			return "", errors.New("exited")
		}
		return l, nil
	case <-t.C:
		return "", fmt.Errorf("did not answer within %v", c.timeout)
	}
}

// Command sends one command and returns its one-line reply.
func (c *Child) Command(cmd string) (string, error) {
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		return "", fmt.Errorf("%s: %w", c.name, err)
	}
	l, err := c.line()
	if err != nil {
		return "", fmt.Errorf("%s, %s: %w", c.name, cmd, err)
	}
	return l, nil
}

// GC asks the child for a collection that returns freed memory to the OS.
func (c *Child) GC() error {
	l, err := c.Command("gc")
	if err == nil && l != "ok" {
		err = fmt.Errorf("%s: gc answered %q", c.name, l)
	}
	return err
}

// Stop closes the child's stdin, which ends it, and waits; a child that
// does not end within 10 s is killed.
func (c *Child) Stop() error {
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s did not exit: killed", c.name)
	}
	return c.err
}

// Commands are a child's answers, by command; an error ends Serve.
type Commands map[string]func() (string, error)

// Serve is the child's side: it answers each command line read from in with
// the line cmds gives, "gc" (unless cmds has its own) with a collection and
// "ok", an unknown command with "error unknown command", until in ends.
func Serve(in io.Reader, out io.Writer, cmds Commands) error {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f, ok := cmds[sc.Text()]
		switch {
		case ok:
			l, err := f()
			if err != nil {
				return err
			}
			fmt.Fprintln(out, l)
		case sc.Text() == "gc":
			runtime.GC()
			debug.FreeOSMemory()
			fmt.Fprintln(out, "ok")
		default:
			fmt.Fprintf(out, "error unknown command %q\n", sc.Text())
		}
	}
	return nil
}

// Memory reads the resident set (VmRSS) and its peak (VmHWM) of process
// pid, in bytes (Linux's /proc).
func Memory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v << 10
		case "VmHWM:":
			hwm = v << 10
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, fmt.Errorf("no VmRSS/VmHWM in /proc/%d/status", pid)
	}
	return rss, hwm, nil
}

// CPU is the CPU time, user and system, of process pid and of its
// descendants that are still running, from /proc/PID/stat in clock ticks
// (USER_HZ, 100 a second on Linux), so a figure over a round of seconds is
// good to about a percent.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command's name in parentheses, which may hold
	// spaces: state is the first, utime the 12th and stime the 13th.
	_, rest, _ := bytes.Cut(b, []byte(") "))
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	total := time.Duration(utime+stime) * (time.Second / 100)
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		for _, kid := range strings.Fields(string(kids)) {
			if k, err := strconv.Atoi(kid); err == nil {
				if t, err := CPU(k); err == nil { // a child that just ended: not counted
					total += t
				}
			}
		}
	}
	return total, nil
}
