package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/internal/testkit"
)

// needTool returns the path of a program a test runs against, skipping the
// test when it is missing, except in CI, where .ci/run installs it.
func needTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (Debian package %s; .ci/run installs it)", name, debianPackage)
	}
	t.Skipf("%s not found (Debian package %s)", name, debianPackage)
	return ""
}

// freePort finds a loopback port nothing listens on, for programs that
// cannot pick one themselves (systemd-socket-activate refuses port 0):
// testkit.FreePort, from below the ephemeral range, so that no outgoing
// connection takes it before the program starts.
func freePort(t *testing.T) string { return strconv.Itoa(testkit.FreePort(t)) }

// testServeAdoptsASystemdActivatedSocket runs serve under the real
// systemd-socket-activate, which binds the port, waits for the first
// client, then execs serve with the socket as descriptor 3: the first
// client, queued in the kernel before serve ran, is served, and so are the
// next ones.
func testServeAdoptsASystemdActivatedSocket(t *testing.T) {
	ssa := needTool(t, "systemd-socket-activate", "systemd")
	addr := net.JoinHostPort("127.0.0.1", freePort(t))
	p := startCmd(t, exec.Command(ssa, "-l", addr, tcpactorBin(t), "serve", "--listen", "systemd", "--drain-timeout", "100ms"))

	var first net.Conn
	eventually(t, func() string { // until systemd-socket-activate listens
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return "dial the activation socket: " + err.Error() + "; stderr:\n" + p.stderr.String()
		}
		first = c
		return ""
	})
	t.Cleanup(func() { first.Close() })
	first.SetDeadline(time.Now().Add(15 * time.Second))
	if got := p.line("listening on"); got != addr {
		t.Fatalf("serve --listen systemd reports %q, want the activation socket's %q", got, addr)
	}
	echoBytes(t, first, []byte("first client, queued before serve ran\n"))
	c, _ := dialEcho(t, addr)
	echoBytes(t, c, bytes.Repeat([]byte{0, 1, 2, 254, 255}, 20_000))
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d; stderr:\n%s", code, p.stderr)
	}
}

// echoBytes writes data and reads back exactly as many bytes, which must be
// the same.
func echoBytes(t *testing.T, c net.Conn, data []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { _, err := c.Write(data); errc <- err }()
	got := make([]byte, len(data))
	n, err := io.ReadFull(c, got)
	if werr := <-errc; werr != nil {
		t.Fatalf("write: %v", werr)
	}
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo of %d bytes: got %d (%v), different: %v", len(data), n, err, !bytes.Equal(got[:n], data[:n]))
	}
}

// testServeSystemdRefusesBadActivations passes serve what systemd would not:
// the variables of another process, no socket, two sockets, and descriptors
// that are not listening TCP sockets, which the ServerActor's
// setSocketDescriptor checks refuse. Each is one line on stderr and a
// non-zero exit.
func testServeSystemdRefusesBadActivations(t *testing.T) {
	file, err := os.Create(filepath.Join(t.TempDir(), "not-a-socket"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udpFile, err := udp.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer udpFile.Close()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tcpFile, err := tcp.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer tcpFile.Close()

	for _, tc := range []struct {
		name     string
		pid      string // LISTEN_PID; "self" for the process's own
		fds      string
		extra    []*os.File // descriptors 3, 4…
		stderrOK string
	}{
		{"no variables", "", "", nil, "no socket passed"},
		{"another process's variables", "1", "1", []*os.File{tcpFile}, "is not this process"},
		{"two sockets", "self", "2", []*os.File{tcpFile, tcpFile}, "want exactly one socket"},
		{"a regular file", "self", "1", []*os.File{file}, "is not a socket"},
		{"a UDP socket", "self", "1", []*os.File{udpFile}, "is not a stream socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// sh sets LISTEN_PID to its own pid, then execs serve in
			// place, as systemd does.
			script := `exec "$0" serve --listen systemd`
			if tc.pid == "self" {
				script = `LISTEN_PID=$$; export LISTEN_PID; ` + script
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script, tcpactorBin(t))
			cmd.Env = withoutListenVars(os.Environ())
			if tc.pid != "" && tc.pid != "self" {
				cmd.Env = append(cmd.Env, "LISTEN_PID="+tc.pid)
			}
			if tc.fds != "" {
				cmd.Env = append(cmd.Env, "LISTEN_FDS="+tc.fds)
			}
			cmd.ExtraFiles = tc.extra
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("exit %v, want non-zero; stdout %q stderr %q", err, out.String(), errOut.String())
			}
			if strings.Count(errOut.String(), "\n") != 1 || !strings.Contains(errOut.String(), tc.stderrOK) || out.Len() != 0 {
				t.Errorf("stdout %q, stderr %q: want nothing on stdout and one line saying %q", out.String(), errOut.String(), tc.stderrOK)
			}
		})
	}
}

func withoutListenVars(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "LISTEN_") {
			out = append(out, kv)
		}
	}
	return out
}
