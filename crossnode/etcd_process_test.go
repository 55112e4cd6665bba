package crossnode

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startEtcd runs a one-member etcd (Debian's etcd-server) on two free
// loopback ports, its data in a temporary directory, and returns its client
// endpoint once it says it serves clients. With cert, clients speak TLS and
// must present a certificate of cert's CA. kill ends it with SIGKILL (it is
// also killed when the test ends). Without the binary the test is skipped,
// or fails when CI=true (.ci/run installs it).
func startEtcd(t *testing.T, cert *nodeCert) (endpoint string, kill func()) {
	t.Helper()
	path, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("etcd is not installed (Debian package etcd-server): %v", err)
		}
		t.Skipf("etcd is not installed (Debian package etcd-server): %v", err)
	}
	client, peer := hostport(freePort(t)), hostport(freePort(t))
	scheme := "http://"
	var tlsArgs []string
	if cert != nil {
		scheme = "https://"
		tlsArgs = []string{"--cert-file", cert.cert, "--key-file", cert.key,
			"--client-cert-auth", "--trusted-ca-file", cert.ca}
	}
	cmd := exec.Command(path, append([]string{"--name", "crossnode", "--data-dir", t.TempDir(),
		"--listen-client-urls", scheme + client, "--advertise-client-urls", scheme + client,
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", "crossnode=http://" + peer}, tlsArgs...)...)
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	ready := make(chan struct{})
	var log lockedBuffer
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			line := sc.Text()
			log.mu.Lock()
			if log.b.Len() < 64<<10 {
				log.b.WriteString(line + "\n")
			}
			log.mu.Unlock()
			if strings.Contains(line, "ready to serve client requests") {
				select {
				case <-ready:
				default:
					close(ready)
				}
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	kill = func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("etcd not reaped 10 s after SIGKILL")
		}
	}
	t.Cleanup(kill)
	select {
	case <-ready:
		return client, kill
	case <-exited:
		t.Fatalf("etcd exited:\n%s", log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("etcd not ready within 30 s:\n%s", log.String())
	}
	return "", nil
}

// TestEtcdClusterServesFromASurvivorWhenTheServersHostIsKilled runs three
// `tcpactor node` members of one cluster with Proto.Actor's etcd provider
// and a real etcd, every remote and etcd itself with mutual TLS (one CA for
// the test; a deployment may use two): two may host the server
// identity "echo", the third serves its connections with a remote echo
// handler. It kills (SIGKILL) the member hosting the server and checks that
// the other one listens on the same port and a reconnecting client is
// served.
func TestEtcdClusterServesFromASurvivorWhenTheServersHostIsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster with etcd")
	}
	ca := newTestCA(t, "cluster")
	etcdCert := ca.issue("etcd")
	etcd, killEtcd := startEtcd(t, &etcdCert)
	bin := buildTCPActor(t)
	c := &testCluster{t: t, listen: hostport(freePort(t))}
	member := func(name string, role ...string) (*nodeProc, string) {
		cert := ca.issue(name)
		args := append([]string{"--remote", "127.0.0.1:0", "--cluster", "crossnode", "--etcd", etcd,
			"--etcd-cert", cert.cert, "--etcd-key", cert.key, "--etcd-ca", cert.ca,
			"--log-level", "error"}, cert.args()...)
		p := startNode(t, bin, name, append(args, role...)...)
		line, _ := p.waitLine("remote on ", time.Time{}, 30*time.Second)
		p.waitLine("member of crossnode", time.Time{}, 30*time.Second)
		return p, addrAfter(line, "remote on ")
	}
	// A member without a client certificate of etcd's CA is not let in.
	stranger := startNode(t, bin, "stranger", "--remote", "127.0.0.1:0", "--cluster", "crossnode", "--etcd", etcd,
		"--log-level", "error")
	select {
	case <-stranger.exit:
		if stranger.cmd.ProcessState.Success() || stranger.count("member of", time.Time{}) > 0 {
			t.Fatalf("a member without etcd's TLS joined: %v\n%s", stranger.cmd.ProcessState, stranger.output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("a member without etcd's TLS still runs 30 s later:\n%s", stranger.output())
	}

	serverRole := []string{"--listen", c.listen, "--name", "echo"}
	a, aAddr := member("A", serverRole...)
	b, bAddr := member("B", serverRole...)
	owner, _ := member("C", "--handler", "echo", "--server", "echo")

	probe, took := c.echoEventually("first", 30*time.Second)
	probe.Close()
	t.Logf("cluster up: first echo after %v more", took)
	line, _ := owner.waitLine("owner: claimed", time.Time{}, 5*time.Second)
	m := claimedAt.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("the owner claimed nothing:\n%s", owner.output())
	}
	var host, other *nodeProc
	switch m[1] {
	case aAddr:
		host, other = a, b
	case bAddr:
		host, other = b, a
	default:
		t.Fatalf("connection accepted on %s, which is neither server member (%s, %s)", m[1], aAddr, bAddr)
	}
	t.Logf("server identity echo is hosted by %s", host.name)

	killed := time.Now()
	host.kill()
	_, at := other.waitLine(fmt.Sprintf("listening on %s server=echo", c.listen), killed, 60*time.Second)
	t.Logf("DETECTION etcd: %s listens on %s %v after the kill", other.name, c.listen, at.Sub(killed))
	probe, _ = c.echoEventually("after the kill", 30*time.Second)
	probe.Close()
	t.Logf("DETECTION etcd: a reconnecting client was served %v after the kill", time.Since(killed))
	for _, p := range []*nodeProc{other, owner} {
		if !p.alive() {
			t.Fatalf("%s died", p.name)
		}
	}

	// With etcd gone, a member told to stop still exits (the provider's
	// leave has no deadline of its own).
	killEtcd()
	if err := other.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-other.exit:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still runs 30 s after SIGTERM with etcd gone", other.name)
	}
}
