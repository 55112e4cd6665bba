package main

import (
	"crypto/x509/pkix"
	"os"
	"path/filepath"

	"github.com/tcpactor/tcpactor/internal/pki"
	"github.com/tcpactor/tcpactor/remotenode"
)

// kindRemoteTLS is the remote kind with mutual TLS between its two nodes.
const kindRemoteTLS = "remote-tls"

// benchTLS is the throwaway PKI of kind remote-tls in dir: a CA and one
// certificate for 127.0.0.1 that both nodes present (it serves both ends
// of a stream).
func benchTLS(dir string) remotenode.TLS {
	return remotenode.TLS{
		CertFile: filepath.Join(dir, "node.pem"),
		KeyFile:  filepath.Join(dir, "node-key.pem"),
		CAFile:   filepath.Join(dir, "ca.pem"),
	}
}

// writeBenchPKI makes a CA and a node certificate for 127.0.0.1 in a new
// temporary directory, and returns it.
func writeBenchPKI() (dir string, err error) {
	dir, err = os.MkdirTemp("", "tcpactor-bench-tls-")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	ca, err := pki.NewCA("tcpactor bench CA")
	if err != nil {
		return "", err
	}
	node, err := ca.Issue(pkix.Name{CommonName: "tcpactor bench node"}, pki.NodeAuth, "127.0.0.1")
	if err != nil {
		return "", err
	}
	files := benchTLS(dir)
	if err := os.WriteFile(files.CAFile, ca.PEM, 0o600); err != nil {
		return "", err
	}
	return dir, node.WriteFiles(files.CertFile, files.KeyFile)
}
