package main

// The `relay` reference kind: the cross-process ceiling.
//
// Any path where a connection's bytes cross to another process and back —
// the remote kinds, whose owner runs on a second node — pays at least what
// a plain TCP relay pays. The relay child listens for the load and starts a
// second child of its own, a raw echo server; for every client connection
// it dials that echo server and copies both ways with a goroutine each (a
// 32 KiB buffer, io.CopyBuffer without its splice fast path, as the raw
// echo reads and writes: the bytes pass through user space, as they must
// for tcpactor). So every byte crosses two loopback hops and a process
// boundary each way, with nothing of tcpactor in between. The remote kinds'
// "vs relay" column divides by it, round by round.
//
// The memory figures (bulk peak RSS, idle memory) are the relay process's
// own, as the remote kinds' are the server node's.
//
// The `relay-tls` kind is the same relay with mutual TLS on the hop
// between the relay and the echo server — TLS 1.3, the certificates of a
// CA made for the run by the code the remote-tls kinds use (tls.go,
// internal/remotecfg) — while the client's leg stays plain TCP, as the
// load's is to the remote kinds' server node. So every echoed byte is
// encrypted and decrypted twice between the processes, as between the TLS
// kinds' two nodes: it is the ceiling of an encrypted cross-process path,
// and the TLS kinds' "vs TLS relay" column divides by it. Unlike those
// kinds, which carry every connection on one node-to-node connection, it
// pays a handshake per relayed connection (resumed from a session ticket
// after the first), which weighs on accept, not on the rest.

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/tcpactor/tcpactor/internal/remotecfg"
)

// The relay reference kinds.
const (
	kindRelay    = "relay"     // a plain TCP relay to a raw echo server in a second process
	kindRelayTLS = "relay-tls" // the relay with mutual TLS to its echo server
	// kindRelayTLSEcho is hidden: the echo server of kind relay-tls, the raw
	// echo behind a mutual TLS listener.
	kindRelayTLSEcho = "relay-tls-echo"
)

// relayDialTimeout bounds the relay's dial of its echo server, TLS
// handshake included.
const relayDialTimeout = 10 * time.Second

// relayServer is the relay child: a listener for the load and the echo
// child every connection is relayed to.
type relayServer struct {
	ln   net.Listener
	echo *child
	// upTLS is kind relay-tls's client configuration for the echo server;
	// nil for kind relay. tlsDir holds its certificates, removed on stop.
	upTLS            *tls.Config
	tlsDir           string
	accepted, active atomic.Int64
	// pending counts the connections whose hop to the echo server is not
	// up yet (dial, handshake): the idle load waits for none.
	pending atomic.Int64
}

// startRelay starts the echo child, then listens; withTLS (kind relay-tls)
// makes the hop to the echo child mutual TLS, with a CA and a certificate
// made for this run.
func startRelay(withTLS bool, stderr io.Writer) (_ *relayServer, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r := &relayServer{}
	defer func() {
		if err != nil {
			r.stop() // what started so far: the echo child, the certificates
		}
	}()
	echoKind, extra := kindRaw, []string(nil)
	if withTLS {
		if r.tlsDir, err = writeBenchPKI(); err != nil {
			return nil, fmt.Errorf("make certificates: %w", err)
		}
		if _, r.upTLS, err = remotecfg.TLSFiles(benchTLS(r.tlsDir)).Configs(); err != nil {
			return nil, err
		}
		// Resume: a relay that opens a connection per client would keep
		// its sessions, as any TLS client that dials one server often.
		r.upTLS.ClientSessionCache = tls.NewLRUClientSessionCache(0)
		echoKind, extra = kindRelayTLSEcho, []string{"--remote-tls-dir", r.tlsDir}
	}
	if r.echo, err = startChild(self, echoKind, "", 0, stderr, extra...); err != nil {
		return nil, err
	}
	if r.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	go acceptEach(r.ln, &r.accepted, &r.active, r.serve)
	return r, nil
}

// serve relays one client to the echo server until either side ends; each
// direction's end is passed on (a FIN, or TLS's close_notify), so the
// client's close reaches the echo server and the echo's close comes back.
func (r *relayServer) serve(client net.Conn) {
	defer r.active.Add(-1)
	defer client.Close()
	r.pending.Add(1)
	up, err := r.dialEcho()
	r.pending.Add(-1)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyNoSplice(up, client)
	}()
	copyNoSplice(client, up)
	<-done
}

// dialEcho connects to the echo server: plain TCP, or for kind relay-tls
// mutual TLS, handshake done.
func (r *relayServer) dialEcho() (net.Conn, error) {
	d := &net.Dialer{Timeout: relayDialTimeout}
	if r.upTLS == nil {
		return d.Dial("tcp", r.echo.addr)
	}
	return (&tls.Dialer{NetDialer: d, Config: r.upTLS}).Dial("tcp", r.echo.addr)
}

// copyNoSplice copies src to dst through a 32 KiB buffer in user space,
// then half-closes dst (*net.TCPConn and *tls.Conn can). Hiding src behind
// a plain io.Reader keeps io.CopyBuffer off TCPConn.ReadFrom's splice path.
func copyNoSplice(dst, src net.Conn) {
	_, _ = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 32<<10))
	if hc, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = hc.CloseWrite()
	} else {
		dst.Close()
	}
}

func (r *relayServer) port() int { return r.ln.Addr().(*net.TCPAddr).Port }

func (r *relayServer) stats() (int64, int64, int64, error) {
	return r.accepted.Load(), r.active.Load(), r.pending.Load(), nil
}

func (r *relayServer) stop() {
	if r.ln != nil {
		r.ln.Close()
	}
	if r.echo != nil {
		_ = r.echo.Stop()
	}
	if r.tlsDir != "" {
		os.RemoveAll(r.tlsDir)
	}
}

// startTLSEcho is kind relay-tls's echo server: the raw echo, each
// connection behind mutual TLS with the certificates in tlsDir (the
// handshake runs in the connection's goroutine, on its first read).
func startTLSEcho(tlsDir string) (*rawEcho, error) {
	if tlsDir == "" {
		return nil, badUsage("--kind %s needs --remote-tls-dir", kindRelayTLSEcho)
	}
	srv, _, err := remotecfg.TLSFiles(benchTLS(tlsDir)).Configs()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &rawEcho{ln: tls.NewListener(ln, srv)}
	go acceptEach(r.ln, &r.accepted, &r.active, r.serve)
	return r, nil
}
