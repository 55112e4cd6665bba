package main

import (
	"flag"
	"os"
	"time"

	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/server"
)

// tlsFlags are serve's --tls-* flags: TLS for the TCP server's clients
// (QSslServer). They are not the remote's TLS between nodes.
type tlsFlags struct {
	cert, key, clientCA *string
	timeout             *time.Duration
}

func addTLSFlags(fs *flag.FlagSet) *tlsFlags {
	return &tlsFlags{
		cert:     fs.String("tls-cert", "", "serve TLS to clients with the certificate (then its chain) in PEM `FILE`; needs --tls-key"),
		key:      fs.String("tls-key", "", "the private key of --tls-cert, PEM `FILE`"),
		clientCA: fs.String("tls-client-ca", "", "require client certificates signed by a CA in PEM `FILE` (mutual TLS)"),
		timeout:  fs.Duration("tls-handshake-timeout", actors.DefaultHandshakeTimeout, "drop a client whose TLS handshake has not finished by then (QSslServer::handshakeTimeout)"),
	}
}

// apply reads the files and sets opts.TLS; without --tls-cert it checks
// that no other --tls-* flag was given.
func (f *tlsFlags) apply(opts *server.Options) error {
	switch {
	case *f.cert == "" && (*f.key != "" || *f.clientCA != ""):
		return badUsage("--tls-key and --tls-client-ca need --tls-cert")
	case *f.cert == "":
		return nil
	case *f.key == "":
		return badUsage("--tls-cert needs --tls-key")
	case *f.timeout <= 0:
		return badUsage("--tls-handshake-timeout %v: want more than 0", *f.timeout)
	}
	read := func(flagName, path string) ([]byte, error) {
		if path == "" {
			return nil, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, badUsage("--%s: %v", flagName, err)
		}
		return b, nil
	}
	cert, err := read("tls-cert", *f.cert)
	if err != nil {
		return err
	}
	key, err := read("tls-key", *f.key)
	if err != nil {
		return err
	}
	ca, err := read("tls-client-ca", *f.clientCA)
	if err != nil {
		return err
	}
	if opts.TLS, err = actors.TLSServerConfig(cert, key, ca); err != nil {
		return badUsage("--tls-cert %s, --tls-key %s: %v", *f.cert, *f.key, err)
	}
	opts.HandshakeTimeout = *f.timeout
	return nil
}
