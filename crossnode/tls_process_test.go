package crossnode

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Mutual TLS between `tcpactor` processes on loopback, with certificates
// the tests make (crypto/x509) in their temporary directories.

// tlsServerNode starts `tcpactor node` with a server "echo" listening on a
// port of its own and no handler (its connections wait for a remote one),
// with extra flags (TLS or none). It returns the node, its remote address
// and its listening address.
func tlsServerNode(t *testing.T, bin, name string, extra ...string) (p *nodeProc, remote, listen string) {
	t.Helper()
	args := append([]string{"--remote", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--name", "echo"}, extra...)
	p = startNode(t, bin, name, args...)
	line, _ := p.waitLine("remote on ", time.Time{}, 20*time.Second)
	remote = addrAfter(line, "remote on ")
	line, _ = p.waitLine("listening on ", time.Time{}, 20*time.Second)
	return p, remote, addrAfter(line, "listening on ")
}

// statusOf runs `tcpactor status --json` against the server at remote
// (HOST:PORT/echo) with extra flags, and returns its decoded answer, or an
// error carrying its stderr when it fails.
func statusOf(t *testing.T, bin, remote string, timeout time.Duration, extra ...string) (map[string]any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+15*time.Second)
	defer cancel()
	args := append([]string{"status", "--server", remote + "/echo", "--json", "--timeout", timeout.String()}, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var st map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
		return nil, fmt.Errorf("status output %q: %v", stdout.String(), err)
	}
	return st, nil
}

// mustServe checks that `tcpactor status` with cert gets the server's
// answer: the node is up and hears a peer of its CA.
func mustServe(t *testing.T, bin, remote string, cert nodeCert) {
	t.Helper()
	st, err := statusOf(t, bin, remote, 10*time.Second, cert.args()...)
	if err != nil {
		t.Fatalf("status with a certificate of the node's CA: %v", err)
	}
	if st["listening"] != true {
		t.Fatalf("status with a certificate of the node's CA: %v, want listening", st)
	}
}

// TestTLSNodeServesPeersWithACertificateOfItsCA: a node with mutual TLS
// answers `tcpactor status` from a process with a certificate of its CA, and
// a remote handler (`tcpactor handle`) with one serves its clients.
func TestTLSNodeServesPeersWithACertificateOfItsCA(t *testing.T) {
	bin := buildTCPActor(t)
	ca := newTestCA(t, "cluster")
	_, remote, listen := tlsServerNode(t, bin, "server", ca.issue("server").args()...)

	mustServe(t, bin, remote, ca.issue("status"))

	h := startCommand(t, bin, "handler", "handle", append([]string{"--server", remote + "/echo"}, ca.issue("handler").args()...)...)
	h.waitLine("remote on ", time.Time{}, 20*time.Second)
	conn, err := echoOnce(listen, "across nodes, over mutual TLS")
	if err != nil {
		t.Fatalf("a client of the server, served by the remote handler: %v", err)
	}
	conn.Close()
}

// TestTLSNodeRefusesPeersWithoutACertificateOfItsCA: a node with mutual TLS
// does not hear a plaintext peer, nor one whose certificate another CA
// issued (even though that peer trusts the node's CA): their requests go
// unanswered, a remote handler of theirs never subscribes, and the node
// goes on serving a peer with a certificate of its CA.
func TestTLSNodeRefusesPeersWithoutACertificateOfItsCA(t *testing.T) {
	bin := buildTCPActor(t)
	ca, other := newTestCA(t, "cluster"), newTestCA(t, "other")
	srv, remote, listen := tlsServerNode(t, bin, "server", ca.issue("server").args()...)
	good := ca.issue("good")
	mustServe(t, bin, remote, good)

	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"plaintext", nil},
		{"certificate of another CA", other.issueTrusting("intruder", ca).args()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st, err := statusOf(t, bin, remote, 2*time.Second, tc.flags...); err == nil {
				t.Fatalf("status answered a peer without a certificate of the node's CA: %v", st)
			} else if !strings.Contains(err.Error(), "no answer") {
				t.Fatalf("status failed with %v, want no answer", err)
			}

			// A handler of the intruder's never subscribes: handle gives up
			// and exits non-zero, and the server's client is not served.
			h := startCommand(t, bin, "intruder handler", "handle", append([]string{"--server", remote + "/echo"}, tc.flags...)...)
			select {
			case <-h.exit:
			case <-time.After(30 * time.Second):
				t.Fatalf("the intruder's handler still runs 30 s later:\n%s", h.output())
			}
			if h.cmd.ProcessState.Success() || h.count("remote on ", time.Time{}) > 0 {
				t.Fatalf("the intruder's handler subscribed: exit %v, output:\n%s", h.cmd.ProcessState, h.output())
			}
			conn, err := net.DialTimeout("tcp", listen, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
			if _, err := conn.Write([]byte("anyone?")); err != nil {
				t.Fatal(err)
			}
			if n, err := conn.Read(make([]byte, 16)); n > 0 || !isTimeout(err) {
				t.Fatalf("a client was answered (%d bytes, %v) with no handler of the server's CA", n, err)
			}

			mustServe(t, bin, remote, good)
			if !srv.alive() {
				t.Fatal("the server node died")
			}
		})
	}
}

// TestTLSPeerRefusesANodeWithoutACertificateOfItsCA: the other direction. A
// process with mutual TLS does not talk to a plaintext node, nor to a node
// whose certificate another CA issued (even one that trusts the process's
// CA): `tcpactor status` gets no answer.
func TestTLSPeerRefusesANodeWithoutACertificateOfItsCA(t *testing.T) {
	bin := buildTCPActor(t)
	ca, other := newTestCA(t, "cluster"), newTestCA(t, "other")
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"plaintext node", nil},
		{"node with a certificate of another CA", other.issueTrusting("impostor", ca).args()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, remote, _ := tlsServerNode(t, bin, "node", tc.flags...)
			if st, err := statusOf(t, bin, remote, 2*time.Second, ca.issue("status").args()...); err == nil {
				t.Fatalf("a TLS peer talked to a node without a certificate of its CA: %v", st)
			} else if !strings.Contains(err.Error(), "no answer") {
				t.Fatalf("status failed with %v, want no answer", err)
			}
		})
	}
}

// TestAdvertisedHostIsWherePeersReachTheNodeAndWhatItsCertificateMustName:
// a node started with --advertise localhost has PIDs on localhost:PORT, a
// peer reaches it there, and the peer checks the node's certificate against
// that name: a certificate for 127.0.0.1 only is refused.
func TestAdvertisedHostIsWherePeersReachTheNodeAndWhatItsCertificateMustName(t *testing.T) {
	bin := buildTCPActor(t)
	ca := newTestCA(t, "cluster")
	client := ca.issue("status")
	for _, tc := range []struct {
		name   string
		cert   nodeCert
		served bool
	}{
		{"certificate names localhost", ca.issueNamed("named", "localhost"), true},
		{"certificate names 127.0.0.1 only", ca.issue("unnamed"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			p := startNode(t, bin, "server", append([]string{"--remote", hostport(port), "--advertise", "localhost",
				"--listen", "127.0.0.1:0", "--name", "echo"}, tc.cert.args()...)...)
			line, _ := p.waitLine("remote on ", time.Time{}, 20*time.Second)
			if got, want := addrAfter(line, "remote on "), fmt.Sprintf("localhost:%d", port); got != want {
				t.Fatalf("remote on %s, want the advertised %s", got, want)
			}
			p.waitLine("listening on ", time.Time{}, 20*time.Second)
			st, err := statusOf(t, bin, fmt.Sprintf("localhost:%d", port), 3*time.Second, client.args()...)
			switch {
			case tc.served && err != nil:
				t.Fatalf("status at the advertised address: %v", err)
			case tc.served && st["listening"] != true:
				t.Fatalf("status at the advertised address: %v", st)
			case !tc.served && err == nil:
				t.Fatalf("a peer accepted a certificate that does not name the host it dialled: %v", st)
			}
		})
	}
}

// TestREADMECertificateRecipe runs the README's openssl recipe (the sh
// block after the "openssl recipe" marker) with the real openssl, and
// checks that tcpactor nodes with its certificates serve each other.
func TestREADMECertificateRecipe(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl is not installed: %v", err)
		}
		t.Skipf("openssl is not installed: %v", err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "<!-- openssl recipe")
	if !ok {
		t.Fatal("README.md has no openssl recipe marker")
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	if ok {
		block, _, ok = strings.Cut(block, "```")
	}
	if !ok {
		t.Fatal("README.md: no sh block after the openssl recipe marker")
	}
	dir := t.TempDir()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(openssl)+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's recipe failed: %v\n%s", err, out)
	}
	cert := func(n string) nodeCert {
		return nodeCert{cert: filepath.Join(dir, n+".pem"), key: filepath.Join(dir, n+"-key.pem"), ca: filepath.Join(dir, "ca.pem")}
	}
	bin := buildTCPActor(t)
	_, remote, _ := tlsServerNode(t, bin, "node1", cert("node1").args()...)
	mustServe(t, bin, remote, cert("node2"))
}
