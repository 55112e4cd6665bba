package remotenode

import (
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/internal/remotecfg"
	"google.golang.org/grpc"
)

// TLS names the PEM files of a node's mutual TLS on Proto.Actor
// remote: the node's certificate chain and key, and the CA whose
// certificates it accepts from peers. The same certificate serves both
// directions, so it needs both extended key usages (serverAuth and
// clientAuth) and, as subject alternative names, every host peers dial the
// node at (the host of its PIDs: --advertise, or the remote's host).
//
// With it, a node hears only peers that present a certificate of the CA
// (the handshake fails before the endpoint reader sees a byte), and talks
// only to peers whose certificate the CA issued for the address it dials.
type TLS struct {
	CertFile string
	KeyFile  string
	CAFile   string
}

// Apply loads the files and turns cfg's remote into mutual TLS, keeping the
// rest of cfg: it appends the server credentials to cfg.ServerOptions and
// the client credentials to cfg.DialOptions (in gRPC the last credentials
// option wins), so a config from Guard.Config keeps its guard, its
// message limit and its blocking dial. Call it once on a config, before the
// remote (or cluster) starts:
//
//	cfg := remotenode.NewGuard(log).Config("10.0.0.5", 8090)
//	if err := (remotenode.TLS{CertFile: "node.pem", KeyFile: "node-key.pem", CAFile: "ca.pem"}).Apply(cfg); err != nil {
//		return err
//	}
//	remote.NewRemote(sys, cfg).Start()
func (t TLS) Apply(cfg *remote.Config) error {
	srv, cli, err := remotecfg.TLSFiles(t).Credentials()
	if err != nil {
		return err
	}
	cfg.ServerOptions = append(cfg.ServerOptions, grpc.Creds(srv))
	if len(cfg.DialOptions) == 0 {
		cfg.DialOptions = remotecfg.DialOptions()
	}
	cfg.DialOptions = append(cfg.DialOptions, grpc.WithTransportCredentials(cli))
	return nil
}
