package testkit

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"testing"

	"github.com/tcpactor/tcpactor/internal/pki"
)

// Certs are a certificate authority made for one test and what it signed: a
// server certificate for 127.0.0.1, ::1 and localhost, and a client
// certificate (mutual TLS). Each is PEM text and a file in the test's
// temporary directory, for programs such as openssl and Qt.
type Certs struct {
	CAPEM, ServerCertPEM, ServerKeyPEM, ClientCertPEM, ClientKeyPEM      []byte
	CAFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile string
	// ClientSubject is the client certificate's subject as Go prints it.
	ClientSubject string
}

// NewCerts makes a fresh CA, server and client certificate, written to
// t.TempDir().
func NewCerts(t testing.TB) *Certs {
	t.Helper()
	ca, err := pki.NewCA("tcpactor test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue(pkix.Name{CommonName: "localhost"}, pki.ServerAuth, "localhost", "127.0.0.1", "::1")
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ca.Issue(pkix.Name{CommonName: "tcpactor test client", Organization: []string{"tcpactor"}}, pki.ClientAuth)
	if err != nil {
		t.Fatal(err)
	}
	c := &Certs{
		CAPEM: ca.PEM, ServerCertPEM: srv.CertPEM, ServerKeyPEM: srv.KeyPEM,
		ClientCertPEM: cli.CertPEM, ClientKeyPEM: cli.KeyPEM,
		ClientSubject: cli.Cert.Subject.String(),
	}
	dir := t.TempDir()
	for _, f := range []struct {
		path *string
		name string
		data []byte
	}{
		{&c.CAFile, "ca.pem", c.CAPEM},
		{&c.ServerCertFile, "server.pem", c.ServerCertPEM},
		{&c.ServerKeyFile, "server.key", c.ServerKeyPEM},
		{&c.ClientCertFile, "client.pem", c.ClientCertPEM},
		{&c.ClientKeyFile, "client.key", c.ClientKeyPEM},
	} {
		*f.path = filepath.Join(dir, f.name)
		if err := os.WriteFile(*f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// ServerConfig is a tls.Config serving the server certificate.
func (c *Certs) ServerConfig(t testing.TB) *tls.Config {
	t.Helper()
	cert, err := tls.X509KeyPair(c.ServerCertPEM, c.ServerKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

// ClientConfig is a tls.Config that trusts the CA; withCert adds the client
// certificate.
func (c *Certs) ClientConfig(t testing.TB, withCert bool) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAPEM)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if withCert {
		cert, err := tls.X509KeyPair(c.ClientCertPEM, c.ClientKeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}
