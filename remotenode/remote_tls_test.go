package remotenode_test

import (
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"testing"

	"github.com/tcpactor/tcpactor/internal/pki"
	"github.com/tcpactor/tcpactor/remotenode"
)

// writeNodePKI writes a CA and a node certificate for 127.0.0.1 into dir.
func writeNodePKI(t *testing.T, dir string) remotenode.TLS {
	t.Helper()
	ca, err := pki.NewCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	node, err := ca.Issue(pkix.Name{CommonName: "node"}, pki.NodeAuth, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	files := remotenode.TLS{CertFile: filepath.Join(dir, "node.pem"), KeyFile: filepath.Join(dir, "node-key.pem"), CAFile: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(files.CAFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := node.WriteFiles(files.CertFile, files.KeyFile); err != nil {
		t.Fatal(err)
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
