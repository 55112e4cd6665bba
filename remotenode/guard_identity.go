package remotenode

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Binding a stream's node to its certificate.
//
// With mutual TLS, a stream's peer has shown a certificate that the
// cluster's CA issued, and the CA names in it (as subject alternative names)
// the hosts the node may be dialled at. The guard takes the node a stream
// announces in its ConnectRequest as the sender of everything on that
// stream, so it refuses the stream when the announced address's host is not
// one the certificate names: otherwise any holder of a certificate of the
// CA could announce another node's address and act as that node (claim
// that node's connections, report its PIDs Terminated, spend its caps).
//
// The rule is the one a peer applies when it dials the node at that host
// (crypto/x509's Certificate.VerifyHostname), so a node may announce
// exactly the hosts at which its peers accept its certificate:
//   - an IP address matches an IP subject alternative name equal to it
//     (IPv4 and IPv4-mapped IPv6 are the same address);
//   - a name matches a DNS subject alternative name case-insensitively,
//     ignoring a final dot; a wildcard "*.example.com" matches one label in
//     its place ("a.example.com", not "example.com" nor "a.b.example.com");
//   - nothing is resolved: an IP is compared with IP names only and a name
//     with DNS names only (a certificate for node1.example does not let its
//     holder announce node1.example's address, nor the reverse), and the
//     subject's common name is not a host name.
//
// The port is not part of the identity: certificates name hosts. Nodes that
// share a host named in their certificates (the README's one-machine
// example, where every certificate names 127.0.0.1) can pass for one
// another; give nodes that must not distinct hosts or names.
//
// A stream that is not TLS, or TLS without a verified client certificate
// (a library user's own credentials that do not ask for one), has no
// certificate to hold the announcement against: as without TLS, the
// announced node is the peer's word.

// verifiedPeerCert is the leaf certificate the peer of a stream presented
// and the TLS handshake verified against the CA, or nil.
func verifiedPeerCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0]
}

// certNamesNode says why cert does not let its holder announce the node at
// addr (HOST:PORT), or "" when it does.
func certNamesNode(cert *x509.Certificate, addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("the stream announced node %q, which is not HOST:PORT", addr)
	}
	if err := cert.VerifyHostname(host); err != nil {
		return fmt.Sprintf("the stream announced node %s, but the peer's certificate names %s", addr, certHosts(cert))
	}
	return ""
}

// certHosts lists the hosts a certificate names, for logs and errors.
func certHosts(cert *x509.Certificate) string {
	var names []string
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	names = append(names, cert.DNSNames...)
	if len(names) == 0 {
		return "no host"
	}
	return "only " + strings.Join(names, ", ")
}

// certPeerName names the holder of cert in the refusal log (which logs at
// most once per name per interval): the certificate, not the node it
// announced, so that one holder announcing many addresses is one peer.
func certPeerName(cert *x509.Certificate) string {
	return fmt.Sprintf("certificate %q (serial %s)", cert.Subject.String(), cert.SerialNumber)
}
