package main

import (
	"flag"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/internal/remotecfg"
	"github.com/tcpactor/tcpactor/remotenode"
)

// remoteFlags are the transport-security flags of every command with a
// remote endpoint (serve, handle, status, node).
type remoteFlags struct {
	tls       remotenode.TLS
	insecure  bool
	advertise string
	stream    bool
}

// add registers the flags on fs.
func (f *remoteFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&f.tls.CertFile, "remote-cert", "", "mutual TLS on the remote: this node's certificate chain, PEM `FILE` (needs --remote-key and --remote-ca)")
	fs.StringVar(&f.tls.KeyFile, "remote-key", "", "mutual TLS on the remote: the key of --remote-cert, PEM `FILE`")
	fs.StringVar(&f.tls.CAFile, "remote-ca", "", "mutual TLS on the remote: only peers with a certificate of this CA (PEM `FILE`) are heard or dialled")
	fs.BoolVar(&f.insecure, "remote-insecure", false, "allow a remote on a non-loopback address without TLS: any host that reaches it is a peer")
	fs.BoolVar(&f.stream, "remote-stream", os.Getenv("TCPACTOR_REMOTE") == "stream",
		"carry every message to a peer node that has it too on a stream of this node's own (remotenode.Stream) instead of through the remote's gRPC; mutual TLS when the remote has it (default true when TCPACTOR_REMOTE=stream)")
	fs.StringVar(&f.advertise, "advertise", "", "the `HOST` peers reach this node at (behind NAT, or with a remote on 0.0.0.0); it is the host of this node's PIDs")
}

// tlsOn reports whether mutual TLS was asked for.
func (f *remoteFlags) tlsOn() bool { return remotecfg.TLSFiles(f.tls).Set() }

// check refuses, before anything starts, an incomplete TLS triple and a
// plaintext remote on a non-loopback host (flagName HOST:PORT) that
// --remote-insecure did not allow.
func (f *remoteFlags) check(flagName, host string, port int) error {
	t := f.tls
	if f.tlsOn() && (t.CertFile == "" || t.KeyFile == "" || t.CAFile == "") {
		return badUsage("mutual TLS needs all of --remote-cert, --remote-key and --remote-ca")
	}
	if !f.tlsOn() && !f.insecure && !remotecfg.IsLoopback(host) {
		return badUsage("--%s %s is not a loopback address: give --remote-cert, --remote-key and --remote-ca (mutual TLS), or --remote-insecure to let any host that reaches it in",
			flagName, hostPortString(host, port))
	}
	if _, err := f.advertised(port); err != nil {
		return err
	}
	if f.tlsOn() {
		// Load now, so a bad file is one line before any port is bound.
		if _, _, err := remotecfg.TLSFiles(t).Credentials(); err != nil {
			return badUsage("%v", err)
		}
	}
	return nil
}

// config is the remote configuration of a node on host:port: the guard's
// (remotenode.Guard.Config), the advertised host, and mutual TLS when
// asked for.
func (f *remoteFlags) config(guard *remotenode.Guard, host string, port int) (*remote.Config, error) {
	var opts []remote.ConfigOption
	adv, err := f.advertised(port)
	if err != nil {
		return nil, err
	}
	if adv != "" {
		opts = append(opts, remote.WithAdvertisedHost(adv))
	}
	cfg := guard.Config(host, port, opts...)
	if f.tlsOn() {
		if err := f.tls.Apply(cfg); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// installStream installs the stream transport on sys when --remote-stream
// asks for it: before its remote starts (or its cluster member), so that
// every PID of another node resolves to it (remotenode.Stream.Install).
func (f *remoteFlags) installStream(sys *actor.ActorSystem) error {
	if !f.stream {
		return nil
	}
	s := remotenode.Stream{}
	if f.tlsOn() {
		s.TLS = &f.tls
	}
	_, err := s.Install(sys)
	return err
}

// listenStream binds the stream listener of sys, whose remote has just
// started, if it has the transport.
func listenStream(sys *actor.ActorSystem) error {
	if t := remotenode.StreamOf(sys); t != nil {
		return t.Listen()
	}
	return nil
}

// stopStream stops the stream transport of sys, if it has one: before the
// remote, so that what is queued on the streams is written first.
func stopStream(sys *actor.ActorSystem) {
	if t := remotenode.StreamOf(sys); t != nil {
		t.Stop()
	}
}

// newGuard is the guard of a CLI node, logging to its system's logger.
func newGuard(sys *actor.ActorSystem) *remotenode.Guard { return remotenode.NewGuard(sys.Logger()) }

func hostPortString(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// advertised is the address peers reach the node at, from --advertise HOST
// or HOST:PORT (behind NAT the port may differ too); "" without the flag.
// A HOST alone takes the remote's port, which must then be fixed.
func (f *remoteFlags) advertised(port int) (string, error) {
	if f.advertise == "" {
		return "", nil
	}
	if h, p, err := net.SplitHostPort(f.advertise); err == nil {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 || h == "" {
			return "", badUsage("--advertise %q: want HOST or HOST:PORT with a port from 1 to 65535", f.advertise)
		}
		return f.advertise, nil
	}
	if port == 0 {
		return "", badUsage("--advertise %s: with a remote on port 0, give HOST:PORT (the port is not known before it is bound)", f.advertise)
	}
	return hostPortString(strings.Trim(f.advertise, "[]"), port), nil
}
