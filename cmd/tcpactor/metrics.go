package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/server"
	"golang.org/x/sys/unix"
)

// scrapeTimeout bounds the GetStatus a scrape sends to the server actor.
const scrapeTimeout = 2 * time.Second

// serverCollector is a prometheus.Collector that asks the ServerActor for
// its status at scrape time (the actor owns its counters; nothing is copied
// or polled in between) and reads the traffic counters its connections
// update as they go.
type serverCollector struct {
	srv   *server.Server
	stats *actors.ConnectionStats

	listening, pending, active, accepted, acceptErrors *prometheus.Desc
	bytesIn, bytesOut, writeFailures                   *prometheus.Desc
	remoteRefused                                      *prometheus.Desc
	handshakeFailures, proxyFailures                   *prometheus.Desc
}

func newServerCollector(srv *server.Server, stats *actors.ConnectionStats) *serverCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("tcpactor_"+name, help, nil, nil)
	}
	return &serverCollector{
		srv: srv, stats: stats,
		listening:     d("listening", "1 while the server listens (QTcpServer::isListening())."),
		pending:       d("connections_pending", "Connections waiting to be claimed."),
		active:        d("connections_active", "Live connections accepted by the server (pending and claimed)."),
		accepted:      d("connections_accepted_total", "Connections accepted since the server started."),
		acceptErrors:  d("accept_errors_total", "Accept failures reported as AcceptError (EMFILE and friends)."),
		bytesIn:       d("bytes_received_total", "Bytes read from peers."),
		bytesOut:      d("bytes_sent_total", "Bytes written to peers (handed to the kernel)."),
		writeFailures: d("write_failures_total", "Writes that ended as WriteFailed."),
		remoteRefused: prometheus.NewDesc("tcpactor_remote_refused_total",
			"Messages from remote peers refused or dropped (README: What a remote peer may do), by reason.", []string{"reason"}, nil),
		handshakeFailures: d("tls_handshake_failures_total",
			"TLS handshakes that failed or timed out (--tls-cert), each reported as HandshakeFailed."),
		proxyFailures: d("proxy_header_failures_total",
			"Connections closed for their PROXY protocol header (--proxy-protocol): untrusted source, bad or late header."),
	}
}

// Describe sends every metric's description.
func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.listening, c.pending, c.active, c.accepted, c.acceptErrors, c.bytesIn, c.bytesOut, c.writeFailures, c.remoteRefused, c.handshakeFailures, c.proxyFailures} {
		ch <- d
	}
}

// Collect asks the server for its status and reports it with the traffic
// counters. A server that does not answer fails the scrape of its metrics.
func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.bytesIn, prometheus.CounterValue, float64(c.stats.BytesReceived.Load()))
	ch <- prometheus.MustNewConstMetric(c.bytesOut, prometheus.CounterValue, float64(c.stats.BytesSent.Load()))
	ch <- prometheus.MustNewConstMetric(c.writeFailures, prometheus.CounterValue, float64(c.stats.WriteFailures.Load()))
	for reason, n := range actors.RemoteRefusals() {
		ch <- prometheus.MustNewConstMetric(c.remoteRefused, prometheus.CounterValue, float64(n), reason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	st, err := c.srv.Status(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.listening, fmt.Errorf("server status: %w", err))
		return
	}
	listening := 0.0
	if st.Listening {
		listening = 1
	}
	ch <- prometheus.MustNewConstMetric(c.listening, prometheus.GaugeValue, listening)
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(st.Active))
	ch <- prometheus.MustNewConstMetric(c.accepted, prometheus.CounterValue, float64(st.AcceptedTotal))
	ch <- prometheus.MustNewConstMetric(c.acceptErrors, prometheus.CounterValue, float64(st.AcceptErrors))
	ch <- prometheus.MustNewConstMetric(c.handshakeFailures, prometheus.CounterValue, float64(st.HandshakeFailures))
	ch <- prometheus.MustNewConstMetric(c.proxyFailures, prometheus.CounterValue, float64(st.ProxyHeaderFailures))
}

// metricsServer serves /metrics in Prometheus text format.
type metricsServer struct {
	http    *http.Server
	addr    string
	done    chan struct{}
	release func() // of actors.ProtectListener
}

// startMetrics listens on addr and serves the server's metrics, with the
// Go runtime's and the process's.
func startMetrics(addr string, srv *server.Server, stats *actors.ConnectionStats, log *slog.Logger) (*metricsServer, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newServerCollector(srv, stats),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics cannot listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	// Out of descriptors, the process collector cannot read /proc: the
	// scrape then serves every other metric rather than failing whole.
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelInfo),
	}))
	m := &metricsServer{
		http: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	// No server of this process may adopt the metrics listener.
	m.release = actors.ProtectListener(m.addr)
	spare := newSpareListener(ln.(*net.TCPListener))
	go func() {
		defer close(m.done)
		defer spare.closeSpare()
		if err := m.http.Serve(spare); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("tcpactor: metrics server stopped; serving goes on without metrics", slog.Any("error", err))
		}
	}()
	return m, nil
}

// stop ends the metrics server, letting a scrape in progress finish.
func (m *metricsServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = m.http.Shutdown(ctx)
	<-m.done
	m.release()
}

// spareListener keeps the metrics endpoint reachable when the process runs
// out of descriptors (EMFILE), which is when its metrics matter most: the
// server's own accepts fail then, and so would a scrape's. It holds one
// spare descriptor; when Accept fails for want of one and a client waits in
// the listen queue, it closes the spare and accepts into the slot that
// frees, and takes the spare again when that connection closes, in the slot
// it frees. nginx and libuv keep a spare the same way.
//
// Both hand-overs run through the process's descriptor reserve
// (actors.UseDescriptorReserve): a server's accept loop, retrying after
// EMFILE, stays out of Accept meanwhile, so it cannot take the slot and
// leave the endpoint without its spare for as long as the server's clients
// hold their descriptors. And the spare is spent only on a client that is
// there: accept(2) takes a descriptor before it waits, so an idle Accept
// would leave the slot free for anyone. The spare is a duplicate of the
// listening socket for that: waiting on it for readability is waiting for
// a client, without a descriptor to spare.
//
// While the spare is spent (a scrape holds its slot), accept(2) fails at
// once even with no client waiting, so instead of handing net/http an error
// every few milliseconds, to log and retry, Accept waits for the connection
// holding the slot to close, looking again every second (another may free).
type spareListener struct {
	*net.TCPListener
	mu        sync.Mutex
	spare     *os.File      // a duplicate of the listening socket; nil while spent
	freed     chan struct{} // a spareConn closed
	closed    chan struct{}
	closeOnce sync.Once
}

func newSpareListener(ln *net.TCPListener) *spareListener {
	l := &spareListener{TCPListener: ln, freed: make(chan struct{}, 1), closed: make(chan struct{})}
	l.takeSpare()
	return l
}

// takeSpare opens the spare when it is spent and a descriptor is free.
func (l *spareListener) takeSpare() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.spare == nil && !l.isClosed() {
		if f, err := l.TCPListener.File(); err == nil {
			l.spare = f
		}
	}
}

// closeSpare frees the spare; it reports whether there was one.
func (l *spareListener) closeSpare() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.spare == nil {
		return false
	}
	l.spare.Close()
	l.spare = nil
	return true
}

func (l *spareListener) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// spareAcceptLimit bounds the Accept into the spare's slot, which holds
// the servers' accepts: the client seen waiting may have gone meanwhile.
const spareAcceptLimit = time.Second

// Accept accepts a connection, spending the spare when out of descriptors.
func (l *spareListener) Accept() (net.Conn, error) {
	for {
		l.takeSpare()
		c, err := l.TCPListener.Accept()
		if err == nil {
			return &spareConn{Conn: c, l: l}, nil
		}
		if !outOfDescriptors(err) {
			return nil, err
		}
		if l.waitForClient() {
			actors.UseDescriptorReserve(func() {
				if !l.closeSpare() {
					return
				}
				_ = l.SetDeadline(time.Now().Add(spareAcceptLimit))
				c, err = l.TCPListener.Accept()
				_ = l.SetDeadline(time.Time{})
				if err != nil {
					l.takeSpare()
				}
			})
			switch {
			case err == nil:
				return &spareConn{Conn: c, l: l, spent: true}, nil
			case outOfDescriptors(err), errors.Is(err, os.ErrDeadlineExceeded):
				continue // the slot went elsewhere, or the client did
			default:
				return nil, err
			}
		}
		if l.isClosed() {
			return nil, net.ErrClosed
		}
		t := time.NewTimer(time.Second)
		select {
		case <-l.freed:
		case <-t.C:
		case <-l.closed:
		}
		t.Stop()
	}
}

// waitForClient waits, on the spare, until a client waits in the listen
// queue; false: there is no spare, or the listener closed.
func (l *spareListener) waitForClient() bool {
	l.mu.Lock()
	spare := l.spare
	l.mu.Unlock()
	if spare == nil {
		return false
	}
	rc, err := spare.SyscallConn()
	if err != nil {
		return false
	}
	err = rc.Read(func(fd uintptr) bool {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 0)
		return n > 0 || (err != nil && err != unix.EINTR) // false: wait for readability
	})
	return err == nil && !l.isClosed()
}

// Close closes the listener and the spare, which ends a wait of Accept.
func (l *spareListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	l.closeSpare()
	return l.TCPListener.Close()
}

func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// spareConn takes the spare again when it closes, in the slot it frees.
type spareConn struct {
	net.Conn
	l     *spareListener
	spent bool // accepted into the spare's slot
	once  sync.Once
}

func (c *spareConn) Close() error {
	err, first := net.ErrClosed, false
	c.once.Do(func() {
		first = true
		if c.spent { // the slot goes back to the spare, not to a server's accept
			actors.UseDescriptorReserve(func() {
				err = c.Conn.Close()
				c.l.takeSpare()
			})
		} else {
			err = c.Conn.Close()
			c.l.takeSpare()
		}
		select {
		case c.l.freed <- struct{}{}:
		default:
		}
	})
	if !first {
		return c.Conn.Close()
	}
	return err
}
