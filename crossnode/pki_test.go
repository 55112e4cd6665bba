package crossnode

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testCA is a certificate authority made by the test, its files in a
// t.TempDir().
type testCA struct {
	t      *testing.T
	dir    string
	name   string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
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
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{t: t, dir: t.TempDir(), name: name, cert: cert, key: key}
	ca.caFile = ca.write(name+"-ca.pem", "CERTIFICATE", der)
	return ca
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
	return ca.issueCert(node, trusted, []net.IP{net.IPv4(127, 0, 0, 1)}, dnsNames)
}

// issueFor makes a node certificate of this CA naming exactly hosts (IP
// addresses or DNS names) as its subject alternative names.
func (ca *testCA) issueFor(node string, hosts ...string) nodeCert {
	ca.t.Helper()
	var ips []net.IP
	var names []string
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			names = append(names, h)
		}
	}
	return ca.issueCert(node, ca, ips, names)
}

func (ca *testCA) issueCert(node string, trusted *testCA, ips []net.IP, dnsNames []string) nodeCert {
	t := ca.t
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: node},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  ips,
		DNSNames:     dnsNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return nodeCert{
		cert: ca.write(node+".pem", "CERTIFICATE", der),
		key:  ca.write(node+"-key.pem", "PRIVATE KEY", keyDER),
		ca:   trusted.caFile,
	}
}

func (ca *testCA) write(name, typ string, der []byte) string {
	ca.t.Helper()
	path := filepath.Join(ca.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return path
}
