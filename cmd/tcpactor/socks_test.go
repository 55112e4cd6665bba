package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDanted runs the real Dante SOCKS5 server (no authentication, BIND
// allowed) on a free loopback port and returns HOST:PORT.
func startDanted(t *testing.T) string {
	t.Helper()
	danted := needTool(t, "danted", "dante-server")
	addr := net.JoinHostPort("127.0.0.1", freePort(t))
	_, port, _ := net.SplitHostPort(addr)
	users := ""
	if os.Geteuid() == 0 {
		users = "user.privileged: root\nuser.unprivileged: nobody\n"
	}
	cfg := fmt.Sprintf(`logoutput: stderr
internal: 127.0.0.1 port = %s
external: 127.0.0.1
socksmethod: none
clientmethod: none
%sclient pass {
  from: 127.0.0.0/8 to: 0.0.0.0/0
}
socks pass {
  from: 127.0.0.0/8 to: 0.0.0.0/0
  command: bind bindreply connect
}
socks pass {
  from: 0.0.0.0/0 to: 127.0.0.0/8
  command: bindreply
}
`, port, users)
	path := filepath.Join(t.TempDir(), "danted.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startCmd(t, exec.Command(danted, "-f", path, "-N", "1"))
	eventually(t, func() string {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return "danted on " + addr + ": " + err.Error() + "; stderr:\n" + p.stderr.String()
		}
		c.Close()
		return ""
	})
	return addr
}

func testServeListensThroughASocks5Proxy(t *testing.T) {
	proxy := startDanted(t)
	p := start(t, "serve", "--listen", "127.0.0.1:0", "--proxy", "socks5://"+proxy, "--drain-timeout", "100ms")
	addr := p.line("listening on")
	if addr == proxy || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("listening on %s, want the address the proxy bound (not the proxy's own %s)", addr, proxy)
	}
	c, _ := dialEcho(t, addr)
	echoBytes(t, c, []byte("relayed by Dante\n"))
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d; stderr:\n%s", code, p.stderr)
	}

	for _, args := range [][]string{
		{"--proxy", "http://127.0.0.1:3128"},
		{"--proxy", "socks5://127.0.0.1"},
		{"--proxy", "socks5://127.0.0.1:" + freePort(t)}, // nothing listens there
		{"--listen", "systemd", "--proxy", "socks5://" + proxy},
	} {
		out, errOut, code := runCmd(t, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
		if code == 0 || out != "" || strings.Count(errOut, "\n") != 1 {
			t.Errorf("serve %q: exit %d, stdout %q, stderr %q; want non-zero and one line on stderr", args, code, out, errOut)
		}
	}
}
