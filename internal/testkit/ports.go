package testkit

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FreePort returns a loopback port that was free a moment ago, for a child
// process or a program under test to listen on. It picks from below the
// kernel's ephemeral range: a port of that range, once this function has
// released it, may be any process's next outgoing connection (cluster
// members' health polls, remotes and clients open many) before the program
// meant to listen on it has started, which failed tests under load with
// "address already in use".
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		if port := CandidatePort(); IsFree(port) {
			return port
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// CandidatePort is a random port from 10000 up to the ephemeral range (as
// wide as can be: concurrent test processes pick from it too, and keep what
// they picked unbound until their children start).
func CandidatePort() int {
	low := ephemeralLow()
	return low - 1 - rand.IntN(max(low-10000, 1000))
}

// IsFree says whether a loopback listener could bind port just now.
func IsFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if f := strings.Fields(string(b)); err == nil && len(f) == 2 {
		if n, err := strconv.Atoi(f[0]); err == nil && n > 2048 {
			return n
		}
	}
	return 32768
}
