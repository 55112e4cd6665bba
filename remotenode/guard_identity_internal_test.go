package remotenode

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"
)

// TestCertificateNamesTheNodesItsHolderMayAnnounce: the host of an announced
// node must be one the certificate names, by crypto/x509's host-name rules:
// IPs against IP names, names against DNS names (case-insensitive, final dot
// ignored, a wildcard for one label), nothing resolved, the port free, the
// common name not a host.
func TestCertificateNamesTheNodesItsHolderMayAnnounce(t *testing.T) {
	cert := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.9"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.2"), net.ParseIP("::1")},
		DNSNames:    []string{"node1.example", "*.nodes.example"},
	}
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.2:8090", true},
		{"127.0.0.2:1", true},
		{"[::1]:8090", true},
		{"[::ffff:127.0.0.2]:8090", true},
		{"node1.example:8090", true},
		{"NODE1.Example:8090", true},
		{"node1.example.:8090", true},
		{"a.nodes.example:8090", true},
		{"127.0.0.3:8090", false},
		{"127.0.0.9:8090", false}, // the common name
		{"[::2]:8090", false},
		{"node2.example:8090", false},
		{"nodes.example:8090", false},
		{"a.b.nodes.example:8090", false},
		{"localhost:8090", false},
		{"127.0.0.2", false}, // not HOST:PORT
		{"", false},
	} {
		if why := certNamesNode(cert, c.addr); (why == "") != c.ok {
			t.Errorf("announcing %q: %q, want allowed %v", c.addr, why, c.ok)
		}
	}
}
