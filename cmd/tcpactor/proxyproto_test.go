package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// startHAProxy runs the real HAProxy in the foreground with a config that
// forwards frontendV1 to backend with send-proxy and frontendV2 with
// send-proxy-v2, and waits until both frontends accept.
func startHAProxy(t *testing.T, haproxy, frontendV1, frontendV2, backend string) *proc {
	t.Helper()
	cfg := fmt.Sprintf(`global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend v1
    bind %s
    default_backend v1
backend v1
    server tcpactor %s send-proxy
frontend v2
    bind %s
    default_backend v2
backend v2
    server tcpactor %s send-proxy-v2
`, frontendV1, backend, frontendV2, backend)
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startCmd(t, exec.Command(haproxy, "-db", "-f", path))
	for _, fe := range []string{frontendV1, frontendV2} {
		eventually(t, func() string {
			c, err := net.DialTimeout("tcp", fe, time.Second)
			if err != nil {
				return "HAProxy's frontend " + fe + ": " + err.Error() + "; stderr:\n" + p.stderr.String()
			}
			c.Close()
			return ""
		})
	}
	return p
}

// dialFromAddr connects to addr from the loopback address src.
func dialFromAddr(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(15 * time.Second))
	return c
}

func testServeBehindHAProxySeesTheClientsAddress(t *testing.T) {
	haproxy := needTool(t, "haproxy", "haproxy")
	p := start(t, "serve", "--listen", "127.0.0.1:0", "--remote", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
		"--proxy-protocol", "--proxy-trust", "127.0.0.1/32", "--drain-timeout", "100ms")
	addr := p.line("listening on")
	rem := p.line("remote on")
	metrics := p.line("metrics on")
	feV1 := net.JoinHostPort("127.0.0.1", freePort(t))
	feV2 := net.JoinHostPort("127.0.0.1", freePort(t))
	startHAProxy(t, haproxy, feV1, feV2, addr)

	// Each client comes from its own loopback address; HAProxy connects to
	// the server from 127.0.0.1 and names the client in its header.
	v1 := dialFromAddr(t, "127.0.0.11", feV1)
	v2 := dialFromAddr(t, "127.0.0.12", feV2)
	echoBytes(t, v1, []byte("through send-proxy\n"))
	echoBytes(t, v2, []byte("through send-proxy-v2\n"))

	out, errOut, code := runCmd(t, "status", "--server", rem+"/tcpserver", "--json")
	if code != 0 {
		t.Fatalf("status exited %d: %s", code, errOut)
	}
	var st struct {
		Connections []struct {
			Peer  string `json:"peer"`
			Local string `json:"local"`
		} `json:"connections"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json printed %q: %v", out, err)
	}
	want := map[string]string{v1.LocalAddr().String(): feV1, v2.LocalAddr().String(): feV2}
	if len(st.Connections) != 2 {
		t.Fatalf("status --json lists %d connections, want 2: %s", len(st.Connections), out)
	}
	for _, c := range st.Connections {
		if fe, ok := want[c.Peer]; !ok || c.Local != fe {
			t.Errorf("connection peer %s local %s; want the clients %v each with the frontend it dialled", c.Peer, c.Local, want)
		}
	}

	// A client that reaches the server directly, not from a trusted
	// balancer, is refused even with a well-formed header.
	direct := dialFromAddr(t, "127.0.0.13", addr)
	fmt.Fprintf(direct, "PROXY TCP4 203.0.113.9 127.0.0.1 1234 80\r\nforged\n")
	if n, err := direct.Read(make([]byte, 64)); err == nil {
		t.Fatalf("an untrusted client read %d bytes, want the connection closed", n)
	}
	eventually(t, func() string {
		if m := scrape(t, metrics); m["tcpactor_proxy_header_failures_total"] != 1 {
			return fmt.Sprintf("tcpactor_proxy_header_failures_total = %v, want 1", m["tcpactor_proxy_header_failures_total"])
		}
		return ""
	})
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d; stderr:\n%s", code, p.stderr)
	}
}

func testServeProxyFlagsRefuseWhatCannotServe(t *testing.T) {
	for _, args := range [][]string{
		{"--proxy-protocol"},
		{"--proxy-trust", "127.0.0.0/8"},
		{"--proxy-protocol", "--proxy-trust", "127.0.0.1"},
		{"--proxy-protocol", "--proxy-trust", "127.0.0.0/8,nonsense"},
		{"--proxy-protocol", "--proxy-trust", "127.0.0.0/8", "--proxy-header-timeout", "0s"},
	} {
		out, errOut, code := runCmd(t, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
		if code == 0 || out != "" || len(errOut) == 0 || errOut[len(errOut)-1] != '\n' {
			t.Errorf("serve %q: exit %d, stdout %q, stderr %q; want non-zero, one line on stderr", args, code, out, errOut)
		}
	}
}
