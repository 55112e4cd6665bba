package main

// The `http` load: the Go face of tcpactor under net/http.
//
// For this load the server child serves HTTP instead of the echo (the
// parent passes --serve http): raw is a plain net/http server on a
// net.Listener, owner is the same net/http server on a server.Listener —
// every connection a ConnectionActor owned by a server.Conn's owner actor
// (the examples/httpoveractors program). Both answer GET /hello with a short
// body. Other kinds have no HTTP server and skip the load.
//
// The load generator keeps N connections alive (HTTP/1.1 keep-alive, as
// wrk -cN does), each sending one GET at a time and reading the whole
// response before the next; it counts responses per second and their
// latency. No wrk: the bench depends on nothing but itself.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
)

// loadHTTP is the name of the HTTP load (for --metrics).
const loadHTTP = "http"

// The HTTP metrics.
const (
	metricHTTP    = "http_throughput"
	metricHTTPP50 = "http_p50"
)

// httpKinds are the kinds that have an HTTP server: raw (net/http on a
// net.Listener) and owner (net/http on a server.Listener).
var httpKinds = []string{kindRaw, kindOwner}

// helloBody is what GET /hello answers.
const helloBody = "hello from tcpactor-bench\n"

// helloMux is the HTTP handler of both servers.
func helloMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, helloBody)
	})
	return mux
}

// httpServer is the server child of the HTTP load.
type httpServer struct {
	hs   *http.Server
	ln   net.Listener
	sys  *actor.ActorSystem // owner kind
	srv  *server.Server     // owner kind
	conn atomic.Int64       // connections accepted
	live atomic.Int64
}

// startHTTPServer serves GET /hello: on a net.Listener for kind raw, on a
// server.Listener for kind owner.
func startHTTPServer(kind string, backlog int) (*httpServer, error) {
	h := &httpServer{}
	switch kind {
	case kindRaw:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		h.ln = ln
	case kindOwner:
		h.sys = benchSystem()
		h.srv = server.Spawn(h.sys, server.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), server.DefaultTimeout)
		defer cancel()
		if _, _, err := h.srv.Listen(ctx, "127.0.0.1", 0, &messages.ListenOptions{Backlog: int32(backlog)}); err != nil {
			_ = h.srv.Stop()
			return nil, err
		}
		ln, err := server.NewListener(ctx, h.srv, server.ListenerOptions{})
		if err != nil {
			_ = h.srv.Stop()
			return nil, err
		}
		h.ln = ln
	default:
		return nil, fmt.Errorf("--serve http: kind %s has no HTTP server (want raw or owner)", kind)
	}
	h.hs = &http.Server{Handler: helloMux(), ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				h.conn.Add(1)
				h.live.Add(1)
			case http.StateClosed, http.StateHijacked:
				h.live.Add(-1)
			}
		}}
	go func() { _ = h.hs.Serve(h.ln) }()
	return h, nil
}

func (h *httpServer) port() int { return h.ln.Addr().(*net.TCPAddr).Port }

func (h *httpServer) stats() (int64, int64, int64, error) {
	return h.conn.Load(), h.live.Load(), 0, nil
}

// stop closes the listener and every connection, without waiting long: the
// process exits right after.
func (h *httpServer) stop() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.hs.Close()
		if h.srv != nil {
			_ = h.srv.Stop()
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
}

// httpResult is what one HTTP round measured.
type httpResult struct {
	requestsPerSec float64
	p50            time.Duration
}

// measureHTTP keeps conns connections busy with GET /hello for d, one
// request in flight each, after a few warm-up requests.
func measureHTTP(c *child, conns int, d time.Duration) (httpResult, error) {
	req := []byte("GET /hello HTTP/1.1\r\nHost: " + c.addr + "\r\nUser-Agent: tcpactor-bench\r\n\r\n")
	perSec, lat, _, err := closedLoop(c.addr, conns, d, "http", nil, func(_ int, conn net.Conn) func() error {
		br := bufio.NewReader(conn)
		return func() error {
			if _, err := conn.Write(req); err != nil {
				return err
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return err
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && (resp.StatusCode != http.StatusOK || n != int64(len(helloBody))) {
				err = fmt.Errorf("GET /hello: %s, %d bytes", resp.Status, n)
			}
			return err
		}
	})
	if err != nil {
		return httpResult{}, err
	}
	return httpResult{requestsPerSec: perSec, p50: percentile(lat, 0.50)}, nil
}
