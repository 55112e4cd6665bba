package remotecfg

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
)

// TLSFiles names the PEM files of a node's mutual TLS: its certificate
// chain and key, and the certificate authority whose certificates it
// accepts from its peers.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

// Set reports whether any file is named.
func (f TLSFiles) Set() bool { return f.CertFile != "" || f.KeyFile != "" || f.CAFile != "" }

// Credentials loads the files and returns the gRPC credentials of both
// sides of a node's remote:
//   - server: presents the node's certificate and requires one from every
//     peer, issued by the CA (tls.RequireAndVerifyClientCert), so a peer
//     without one never gets past the handshake to the endpoint reader;
//   - client: presents the same certificate and accepts only a server whose
//     certificate the CA issued for the address it dials (the host of the
//     peer's PID: its advertised host or its remote host).
//
// Both require TLS 1.3: every peer is a tcpactor node built with Go.
func (f TLSFiles) Credentials() (server, client credentials.TransportCredentials, err error) {
	srv, cli, err := f.Configs()
	if err != nil {
		return nil, nil, err
	}
	return credentials.NewTLS(srv), credentials.NewTLS(cli), nil
}

// Configs loads the files and returns the TLS configurations behind
// Credentials; the client one also serves other TLS clients (etcd's).
func (f TLSFiles) Configs() (server, client *tls.Config, err error) {
	if f.CertFile == "" || f.KeyFile == "" || f.CAFile == "" {
		return nil, nil, errors.New("mutual TLS needs a certificate, its key and a CA (all three PEM files)")
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %s / key %s: %w", f.CertFile, f.KeyFile, err)
	}
	caPEM, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("CA %s: no PEM certificate in it", f.CAFile)
	}
	server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
	}
	return server, client, nil
}

// IsLoopback reports whether host (an IP address or a name) is a loopback
// address: 127.0.0.0/8, ::1 or "localhost". An empty host, 0.0.0.0 and ::
// mean every interface, so they are not loopback; other names are not
// resolved and count as not loopback.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
