package main

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// How the commands end: signals, drains, a server that stops under them.
// These run as subtests of TestCommandLine, which builds the binary.

// freePort is a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

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
	health := strconv.Itoa(freePort(t))
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
