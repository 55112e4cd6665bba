package main

import (
	"flag"
	"net/url"
	"strconv"

	"github.com/tcpactor/tcpactor/messages"
)

// addSocksFlag is serve's --proxy: listen through a SOCKS5 proxy.
func addSocksFlag(fs *flag.FlagSet) *string {
	return fs.String("proxy", "", "listen through a SOCKS5 proxy, `socks5://[USER:PASSWORD@]HOST:PORT` (RFC 1928 BIND, QTcpServer::setProxy); `listening on` shows the proxy's address, which changes after each client")
}

// parseSocks parses --proxy; "" is no proxy.
func parseSocks(v string) (*messages.NetworkProxy, error) {
	if v == "" {
		return nil, nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "socks5" || u.Hostname() == "" || u.Path != "" || u.RawQuery != "" {
		return nil, badUsage("--proxy %q: want socks5://[USER:PASSWORD@]HOST:PORT", v)
	}
	port, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil || port == 0 {
		return nil, badUsage("--proxy %q: want a port from 1 to 65535", v)
	}
	p := &messages.NetworkProxy{Type: messages.ProxyType_PROXY_TYPE_SOCKS5, Host: u.Hostname(), Port: uint32(port)}
	if u.User != nil {
		p.User = u.User.Username()
		p.Password, _ = u.User.Password()
	}
	return p, nil
}
