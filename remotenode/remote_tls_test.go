package remotenode_test

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

	"github.com/tcpactor/tcpactor/remotenode"
)

// writeNodePKI writes a CA and a node certificate for 127.0.0.1 into dir.
func writeNodePKI(t *testing.T, dir string) remotenode.TLS {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	files := remotenode.TLS{CertFile: filepath.Join(dir, "node.pem"), KeyFile: filepath.Join(dir, "node-key.pem"), CAFile: filepath.Join(dir, "ca.pem")}
	for path, b := range map[string]*pem.Block{
		files.CAFile: {Type: "CERTIFICATE", Bytes: caDER}, files.CertFile: {Type: "CERTIFICATE", Bytes: der},
		files.KeyFile: {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// TestRemoteTLSAddsCredentialsAndKeepsTheGuardsOptions: Apply only appends
// the credentials, so a config from Guard.Config keeps its
// interceptors, its message limit and its blocking dial. (That the
// credentials work is tested across processes in crossnode.)
func TestRemoteTLSAddsCredentialsAndKeepsTheGuardsOptions(t *testing.T) {
	files := writeNodePKI(t, t.TempDir())
	cfg := remotenode.NewGuard(nil).Config("127.0.0.1", 0)
	srv, dial := append(cfg.ServerOptions[:0:0], cfg.ServerOptions...), append(cfg.DialOptions[:0:0], cfg.DialOptions...)
	if err := files.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.ServerOptions) != len(srv)+1 || len(cfg.DialOptions) != len(dial)+1 {
		t.Fatalf("Apply: %d server and %d dial options, want the guard's %d and %d plus one each",
			len(cfg.ServerOptions), len(cfg.DialOptions), len(srv), len(dial))
	}
	for i := range srv {
		if cfg.ServerOptions[i] != srv[i] {
			t.Fatalf("Apply replaced the guard's server option %d", i)
		}
	}
}

// TestRemoteTLSRefusesIncompleteOrUnreadableFiles: a config Apply cannot
// load is an error and stays as it was.
func TestRemoteTLSRefusesIncompleteOrUnreadableFiles(t *testing.T) {
	dir := t.TempDir()
	good := writeNodePKI(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, files := range map[string]remotenode.TLS{
		"no CA":          {CertFile: good.CertFile, KeyFile: good.KeyFile},
		"no key":         {CertFile: good.CertFile, CAFile: good.CAFile},
		"missing file":   {CertFile: filepath.Join(dir, "nope.pem"), KeyFile: good.KeyFile, CAFile: good.CAFile},
		"CA not PEM":     {CertFile: good.CertFile, KeyFile: good.KeyFile, CAFile: notPEM},
		"key of no cert": {CertFile: good.CertFile, KeyFile: good.CAFile, CAFile: good.CAFile},
	} {
		cfg := remotenode.NewGuard(nil).Config("127.0.0.1", 0)
		ns, nd := len(cfg.ServerOptions), len(cfg.DialOptions)
		if err := files.Apply(cfg); err == nil {
			t.Errorf("%s: Apply succeeded", name)
		}
		if len(cfg.ServerOptions) != ns || len(cfg.DialOptions) != nd {
			t.Errorf("%s: Apply changed the config though it failed", name)
		}
	}
}
