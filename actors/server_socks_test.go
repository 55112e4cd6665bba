package actors

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/protobuf/proto"
)

// Listening through a SOCKS5 proxy (QNetworkProxy::Socks5Proxy, RFC 1928
// BIND), against the real Dante (Debian's dante-server), started by each
// test with a config it writes.

// startDante runs danted on a free loopback port with the given
// socksmethod ("none" or "username") and returns its port.
func startDante(t *testing.T, method string) uint32 {
	t.Helper()
	danted, err := exec.LookPath("danted")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("danted not found (Debian package dante-server; .ci/run installs it)")
		}
		t.Skip("danted not found (Debian package dante-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	users := ""
	if os.Geteuid() == 0 {
		users = "user.privileged: root\nuser.unprivileged: nobody\n"
	}
	cfg := fmt.Sprintf(`logoutput: stderr
internal: 127.0.0.1 port = %d
external: 127.0.0.1
socksmethod: %s
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
`, port, method, users)
	path := filepath.Join(t.TempDir(), "danted.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(danted, "-f", path, "-N", "1")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	addr := net.JoinHostPort("127.0.0.1", itoa(uint32(port)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return uint32(port)
		}
		select {
		case <-done:
			t.Fatalf("danted exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("danted does not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func socks5(port uint32) *messages.NetworkProxy {
	return &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_SOCKS5, Host: "127.0.0.1", Port: port}
}

func TestListenThroughASocks5ProxyServesEachClientTheProxyRelays(t *testing.T) {
	proxyPort := startDante(t, "none")
	s := startServer(t, ServerOptions{Connection: ConnectionConfig{Handler: EchoHandler()}})
	if a := ask[*messages.Ack](s, &messages.SetProxy{Proxy: socks5(proxyPort)}); a.Error.Failed() {
		t.Fatalf("SetProxy(socks5): %v", a.Error)
	}
	sub := newProbe(t, s.sys)
	subscribe(s, sub.pid)
	r := ask[*messages.ListenResult](s, &messages.Listen{Address: "127.0.0.1"})
	if !r.Ok || r.Address != "127.0.0.1" || r.Port == 0 || r.Port == proxyPort {
		t.Fatalf("Listen through the proxy: %v, want ok with the proxy's bound address", r)
	}
	if st := s.status(); !st.Listening || st.Port != r.Port || !proto.Equal(st.Proxy, socks5(proxyPort)) || st.SocketDescriptor != -1 {
		t.Fatalf("status: %v", st)
	}
	// One BIND carries one client: the server binds again for the next,
	// and reports the new address.
	port := r.Port
	for i := range 3 {
		if i > 0 {
			prev := port
			port = s.waitStatus("the next BIND", func(st *messages.ServerStatus) bool { return st.Listening && st.Port != prev }).Port
		}
		c := dial(t, net.JoinHostPort("127.0.0.1", itoa(port)))
		c.SetDeadline(time.Now().Add(4 * replyTimeout))
		tlsEcho(t, c, randomBytes(100_000+i))
		ev := next[*messages.NewConnection](t, sub)
		if ev.Info.PeerAddress != "127.0.0.1" || ev.Info.PeerPort != dialedPort(c) || ev.Info.LocalPort != port {
			t.Errorf("client %d: info %v, want peer 127.0.0.1:%d (as the proxy saw it), local port %d", i, ev.Info, dialedPort(c), port)
		}
	}
	// A pause interrupts the wait for the BIND's client (the listener's
	// deadline) without giving the BIND up: a client relayed meanwhile is
	// served after the resume.
	prev := port
	port = s.waitStatus("the next BIND", func(st *messages.ServerStatus) bool { return st.Listening && st.Port != prev }).Port
	ask[*messages.Ack](s, &messages.PauseAccepting{})
	c := dial(t, net.JoinHostPort("127.0.0.1", itoa(port)))
	c.SetDeadline(time.Now().Add(4 * replyTimeout))
	if _, err := c.Write([]byte("while paused\n")); err != nil {
		t.Fatal(err)
	}
	before := s.status().AcceptedTotal
	ask[*messages.Ack](s, &messages.ResumeAccepting{})
	got := make([]byte, len("while paused\n"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "while paused\n" {
		t.Fatalf("the client relayed during the pause, after the resume: %q (%v), want its echo", got, err)
	}
	if st := s.status(); st.AcceptedTotal != before+1 {
		t.Errorf("accepted total %d after the resume, want %d", st.AcceptedTotal, before+1)
	}
	ask[*messages.Closed](s, &messages.Close{})
	if st := s.status(); st.Listening {
		t.Fatal("still listening after Close")
	}
}

func TestListenThroughASocks5ProxyFailsWithQtsProxyErrors(t *testing.T) {
	noAuth := startDante(t, "username")
	closed := func() uint32 { // a port nothing listens on
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return uint32(l.Addr().(*net.TCPAddr).Port)
	}()
	withUser := socks5(noAuth)
	withUser.User, withUser.Password = "nosuchuser", "secret"
	for _, c := range []struct {
		name  string
		proxy *messages.NetworkProxy
		want  messages.SocketError
	}{
		{"nothing listens", socks5(closed), messages.SocketError_SOCKET_ERROR_PROXY_CONNECTION_REFUSED},
		{"a user is required", socks5(noAuth), messages.SocketError_SOCKET_ERROR_PROXY_AUTHENTICATION_REQUIRED},
		{"a wrong user", withUser, messages.SocketError_SOCKET_ERROR_PROXY_AUTHENTICATION_REQUIRED},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			ask[*messages.Ack](s, &messages.SetProxy{Proxy: c.proxy})
			r := ask[*messages.ListenResult](s, &messages.Listen{Address: "127.0.0.1"})
			if r.Ok || r.Error.GetCode() != c.want {
				t.Fatalf("Listen through %v: %v, want %v", c.proxy, r, c.want)
			}
			st := s.status()
			if st.Listening || st.Error.GetCode() != c.want || st.Proxy.GetPassword() != "" || st.Proxy.GetUser() != c.proxy.User {
				t.Fatalf("status after the failure: %v (the password must never be reported)", st)
			}
			// The server goes on: without the proxy it listens.
			ask[*messages.Ack](s, &messages.SetProxy{Proxy: &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_NO_PROXY}})
			dial(t, s.listen())
		})
	}
}

// A proxy that accepts and then says nothing: the Listen waits for it in a
// goroutine, the server answers everything else meanwhile, a second Listen
// is refused, and stopping the server ends the BIND (goleak checks the
// goroutine is gone).
func TestListenThroughASilentProxyDoesNotBlockTheServer(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	held := make(chan net.Conn, 1)
	go func() {
		if c, err := silent.Accept(); err == nil {
			held <- c
		}
	}()
	s := startServer(t, ServerOptions{})
	ask[*messages.Ack](s, &messages.SetProxy{Proxy: socks5(uint32(silent.Addr().(*net.TCPAddr).Port))})
	pending := s.sys.Root.RequestFuture(s.pid, &messages.Listen{Address: "127.0.0.1"}, 2*replyTimeout)
	c := <-held
	defer c.Close()
	if st := s.status(); st.Listening {
		t.Fatalf("listening before the proxy answered: %v", st)
	}
	r := ask[*messages.ListenResult](s, &messages.Listen{Address: "127.0.0.1"})
	if r.Ok || r.Error.GetCode() != messages.SocketError_SOCKET_ERROR_OPERATION || !strings.Contains(r.Error.GetMessage(), "under way") {
		t.Fatalf("a second Listen while binding: %v", r)
	}
	c.Close() // the proxy hangs up: the first Listen fails
	res, err := pending.Result()
	if err != nil {
		t.Fatal(err)
	}
	if r := res.(*messages.ListenResult); r.Ok || r.Error.GetCode() != messages.SocketError_SOCKET_ERROR_PROXY_CONNECTION_CLOSED {
		t.Fatalf("Listen through a proxy that hung up: %v, want PROXY_CONNECTION_CLOSED", r)
	}
	// And a BIND still waiting when the server stops ends with it.
	go func() {
		if c, err := silent.Accept(); err == nil {
			held <- c
		}
	}()
	pending = s.sys.Root.RequestFuture(s.pid, &messages.Listen{Address: "127.0.0.1"}, 2*replyTimeout)
	c2 := <-held
	defer c2.Close()
	if err := s.sys.Root.StopFuture(s.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	if res, err := pending.Result(); err != nil || res.(*messages.ListenResult).Error.GetCode() != messages.SocketError_SOCKET_ERROR_OPERATION {
		t.Fatalf("a Listen still binding when the server stopped: %v (%v), want an OperationError reply", res, err)
	}
	c2.SetReadDeadline(time.Now().Add(replyTimeout))
	buf := make([]byte, 64)
	for {
		if _, err := c2.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the BIND's connection to the proxy outlived the server")
			}
			break
		}
	}
}
