package crossnode

import (
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"testing"

	"github.com/tcpactor/tcpactor/internal/pki"
)

// testCA is a certificate authority made by the test, its files in a
// t.TempDir().
type testCA struct {
	t      *testing.T
	dir    string
	ca     *pki.CA
	caFile string
}

// nodeCert is the PEM files of one node: its certificate and key, and the
// CA it trusts.
type nodeCert struct{ cert, key, ca string }

// args are the node's --remote-cert/--remote-key/--remote-ca flags.
func (n nodeCert) args() []string {
	return []string{"--remote-cert", n.cert, "--remote-key", n.key, "--remote-ca", n.ca}
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	ca, err := pki.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCA{t: t, dir: t.TempDir(), ca: ca}
	c.caFile = filepath.Join(c.dir, name+"-ca.pem")
	if err := os.WriteFile(c.caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// issue makes a node certificate for 127.0.0.1 (the address peers dial on
// loopback), good for both ends of a remote stream, trusting this CA.
func (ca *testCA) issue(node string) nodeCert {
	return ca.issueTrusting(node, ca)
}

// issueNamed is issue with host names besides 127.0.0.1.
func (ca *testCA) issueNamed(node string, dnsNames ...string) nodeCert {
	return ca.issueTrusting(node, ca, dnsNames...)
}

// issueTrusting makes a node certificate of this CA whose node trusts
// another CA: a node of one cluster that knows another cluster's CA
// certificate (which is no secret) but holds none of its certificates.
func (ca *testCA) issueTrusting(node string, trusted *testCA, dnsNames ...string) nodeCert {
	ca.t.Helper()
	return ca.issueCert(node, trusted, append([]string{"127.0.0.1"}, dnsNames...))
}

// issueFor makes a node certificate of this CA naming exactly hosts (IP
// addresses or DNS names) as its subject alternative names.
func (ca *testCA) issueFor(node string, hosts ...string) nodeCert {
	ca.t.Helper()
	return ca.issueCert(node, ca, hosts)
}

func (ca *testCA) issueCert(node string, trusted *testCA, hosts []string) nodeCert {
	t := ca.t
	t.Helper()
	p, err := ca.ca.Issue(pkix.Name{CommonName: node}, pki.NodeAuth, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	n := nodeCert{cert: filepath.Join(ca.dir, node+".pem"), key: filepath.Join(ca.dir, node+"-key.pem"), ca: trusted.caFile}
	if err := p.WriteFiles(n.cert, n.key); err != nil {
		t.Fatal(err)
	}
	return n
}
