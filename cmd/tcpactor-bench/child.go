package main

// The parent's handle on one server child process (`tcpactor-bench server`).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// child is one running server child.
type child struct {
	kind  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout, line by line; closed at EOF
	addr  string
	done  chan struct{} // closed when the process has been waited for
	err   error         // Wait's result, once done
}

// startChild runs `self server --kind kind [extra...]` (self is this
// binary) and waits for its port.
func startChild(self, kind, cpuprofile string, backlog int, stderr io.Writer, extra ...string) (*child, error) {
	args := append([]string{childCommand, "--kind", kind, "--backlog", strconv.Itoa(backlog)}, extra...)
	if cpuprofile != "" {
		args = append(args, "--cpuprofile", cpuprofile)
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = stderr
	cmd.Env = os.Environ()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s server: %w", kind, err)
	}
	c := &child{kind: kind, cmd: cmd, stdin: stdin, lines: make(chan string, 16), done: make(chan struct{})}
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
	line, err := c.readLine(10 * time.Second)
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("%s server: %w", kind, err)
	}
	port, ok := strings.CutPrefix(line, "port ")
	if _, err := strconv.Atoi(port); !ok || err != nil {
		c.stop()
		return nil, fmt.Errorf("%s server said %q, want \"port N\"", kind, line)
	}
	c.addr = "127.0.0.1:" + port
	return c, nil
}

// readLine waits for the next line of the child's output.
func (c *child) readLine(timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l, ok := <-c.lines:
		if !ok {
			return "", errors.New("server exited")
		}
		return l, nil
	case <-t.C:
		return "", errors.New("server did not answer in time")
	}
}

// command sends one command and returns its one-line reply.
func (c *child) command(cmd string) (string, error) {
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		return "", fmt.Errorf("%s server: %w", c.kind, err)
	}
	l, err := c.readLine(10 * time.Second)
	if err != nil {
		return "", fmt.Errorf("%s server, %s: %w", c.kind, cmd, err)
	}
	return l, nil
}

func (c *child) stats() (accepted, active, pending int64, err error) {
	l, err := c.command("stats")
	if err != nil {
		return 0, 0, 0, err
	}
	return parseStats(l)
}

// gc asks the child for a garbage collection that returns freed memory to
// the OS, so RSS shows what is live.
func (c *child) gc() error {
	l, err := c.command("gc")
	if err == nil && l != "ok" {
		err = fmt.Errorf("%s server: gc: %q", c.kind, l)
	}
	return err
}

// waitFor polls the child's stats until ok says yes, for at most timeout.
func (c *child) waitFor(timeout time.Duration, ok func(accepted, active, pending int64) bool) error {
	deadline := time.Now().Add(timeout)
	var a, l, p int64
	for {
		var err error
		if a, l, p, err = c.stats(); err != nil {
			return err
		}
		if ok(a, l, p) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s server: still %d accepted, %d active, %d pending after %v", c.kind, a, l, p, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// memory reads VmRSS and VmHWM of the child, in bytes.
func (c *child) memory() (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
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
		return 0, 0, fmt.Errorf("no VmRSS/VmHWM in /proc/%d/status", c.cmd.Process.Pid)
	}
	return rss, hwm, nil
}

// cpu is the CPU time, user and system, that the child and the processes
// it started (a remote kind's second node, the relay's echo server) have
// used so far.
func (c *child) cpu() (time.Duration, error) { return treeCPU(c.cmd.Process.Pid) }

// treeCPU is the CPU time of pid and of its descendants that are still
// running, from /proc/PID/stat in clock ticks (USER_HZ, 100 a second on
// Linux), so a figure over a round of seconds is good to about a percent.
func treeCPU(pid int) (time.Duration, error) {
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
				if t, err := treeCPU(k); err == nil { // a child that just ended: not counted
					total += t
				}
			}
		}
	}
	return total, nil
}

// stop closes the child's stdin, which ends it, and waits; a child that does
// not end within a few seconds is killed.
func (c *child) stop() error {
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s server did not exit: killed", c.kind)
	}
	return c.err
}
