package main

import (
	"flag"
	"net/netip"
	"strings"
	"time"

	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/server"
)

// proxyFlags are serve's PROXY protocol flags: a load balancer (HAProxy's
// send-proxy, send-proxy-v2) in front of the server tells it each client's
// real address.
type proxyFlags struct {
	on      *bool
	trust   *string
	timeout *time.Duration
}

func addProxyFlags(fs *flag.FlagSet) *proxyFlags {
	return &proxyFlags{
		on:      fs.Bool("proxy-protocol", false, "every connection begins with a PROXY protocol header (v1 or v2) from a trusted load balancer; the client's address in it becomes the connection's peer address"),
		trust:   fs.String("proxy-trust", "", "with --proxy-protocol: the `CIDR,...` the load balancers connect from; connections from anywhere else are refused"),
		timeout: fs.Duration("proxy-header-timeout", actors.DefaultProxyHeaderTimeout, "with --proxy-protocol: close a connection whose header has not arrived by then"),
	}
}

// apply sets opts.ProxyProtocol from the flags.
func (f *proxyFlags) apply(opts *server.Options) error {
	switch {
	case !*f.on && *f.trust != "":
		return badUsage("--proxy-trust needs --proxy-protocol")
	case !*f.on:
		return nil
	case *f.trust == "":
		return badUsage("--proxy-protocol needs --proxy-trust CIDR,... (the load balancers' addresses)")
	case *f.timeout <= 0:
		return badUsage("--proxy-header-timeout %v: want more than 0", *f.timeout)
	}
	pp := &actors.ProxyProtocol{HeaderTimeout: *f.timeout}
	for _, c := range strings.Split(*f.trust, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return badUsage("--proxy-trust %q: want CIDR networks such as 127.0.0.0/8,10.0.0.0/8", *f.trust)
		}
		pp.Trusted = append(pp.Trusted, p.Masked())
	}
	opts.ProxyProtocol = pp
	return nil
}
