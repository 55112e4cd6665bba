package main

// The parent's handle on one server child process (`tcpactor-bench server`),
// which speaks internal/childproc's line protocol.

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/tcpactor/tcpactor/internal/childproc"
)

// child is one running server child.
type child struct {
	*childproc.Child
	kind string
	addr string
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
	p, line, err := childproc.Start(cmd, kind+" server", 10*time.Second)
	if err != nil {
		return nil, err
	}
	port, ok := strings.CutPrefix(line, "port ")
	if _, err := strconv.Atoi(port); !ok || err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("%s server said %q, want \"port N\"", kind, line)
	}
	return &child{Child: p, kind: kind, addr: "127.0.0.1:" + port}, nil
}

func (c *child) stats() (accepted, active, pending int64, err error) {
	l, err := c.Command("stats")
	if err != nil {
		return 0, 0, 0, err
	}
	return parseStats(l)
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
func (c *child) memory() (rss, hwm int64, err error) { return childproc.Memory(c.Pid()) }

// cpu is the CPU time, user and system, that the child and the processes
// it started (a remote kind's second node, the relay's echo server) have
// used so far.
func (c *child) cpu() (time.Duration, error) { return childproc.CPU(c.Pid()) }
