package actors

import (
	"net"
	"strconv"
	"sync"
)

// Listeners of this process that no ServerActor may adopt.
//
// SetSocketDescriptor takes a descriptor number of this process. A server
// that adopted the descriptor of the process's own remote endpoint or
// metrics listener would accept (and on Close, close) connections meant for
// them. ProtectListener names such listeners by their address; a descriptor
// whose socket is bound there is refused, whatever its number (a dup of it
// too).

var protected = struct {
	sync.Mutex
	addrs map[string]int // "host:port" → how many ProtectListener calls hold it
}{addrs: map[string]int{}}

// ProtectListener makes every ServerActor of this process refuse
// SetSocketDescriptor for a socket bound at addr (HOST:PORT as the listener
// reports it; a host that is not an IP, or an unspecified one, protects the
// port on every address). release undoes it.
func ProtectListener(addr string) (release func()) {
	protected.Lock()
	protected.addrs[addr]++
	protected.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			protected.Lock()
			defer protected.Unlock()
			if protected.addrs[addr]--; protected.addrs[addr] <= 0 {
				delete(protected.addrs, addr)
			}
		})
	}
}

// isProtected says whether a socket bound at ip:port is a protected listener.
func isProtected(ip net.IP, port int) (string, bool) {
	protected.Lock()
	defer protected.Unlock()
	for addr := range protected.addrs {
		host, p, err := net.SplitHostPort(addr)
		if err != nil || p != strconv.Itoa(port) {
			continue
		}
		pip := net.ParseIP(host)
		if pip == nil || pip.IsUnspecified() || ip.IsUnspecified() || pip.Equal(ip) {
			return addr, true
		}
	}
	return "", false
}
