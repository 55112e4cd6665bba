package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/server"
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
		handshakeFailures: d("tls_handshake_failures_total",
			"TLS handshakes that failed or timed out (--tls-cert), each reported as HandshakeFailed."),
		proxyFailures: d("proxy_header_failures_total",
			"Connections closed for their PROXY protocol header (--proxy-protocol): untrusted source, bad or late header."),
	}
}

// Describe sends every metric's description.
func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.listening, c.pending, c.active, c.accepted, c.acceptErrors, c.bytesIn, c.bytesOut, c.writeFailures, c.handshakeFailures, c.proxyFailures} {
		ch <- d
	}
}

// Collect asks the server for its status and reports it with the traffic
// counters. A server that does not answer fails the scrape of its metrics.
func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.bytesIn, prometheus.CounterValue, float64(c.stats.BytesReceived.Load()))
	ch <- prometheus.MustNewConstMetric(c.bytesOut, prometheus.CounterValue, float64(c.stats.BytesSent.Load()))
	ch <- prometheus.MustNewConstMetric(c.writeFailures, prometheus.CounterValue, float64(c.stats.WriteFailures.Load()))
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
	http *http.Server
	addr string
	done chan struct{}
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
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m := &metricsServer{
		http: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(m.done)
		if err := m.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
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
}
