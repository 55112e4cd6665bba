package main

import (
	"bytes"
	"crypto/tls"
	"io"
	"math"
	"net"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/internal/remotecfg"
)

// TestBenchMeasuresTheRelayCeilingBesideTheRemoteOwner runs the relay
// reference kind (a relay child and its echo child) beside the remote kind
// through ping-pong and bulk rounds — every byte relayed both ways — and
// checks that both report figures, that the remote kind gets its ratio to
// the relay, and that its table carries the "vs relay" column. It says
// nothing about speed.
func TestBenchMeasuresTheRelayCeilingBesideTheRemoteOwner(t *testing.T) {
	var res benchJSON
	md := runTinyBench(t, &res, "--kinds", "remote,relay", "--metrics", "accept,pingpong,bulk")
	if len(res.Metrics) != 9 {
		t.Fatalf("got %d metrics, want the 9 of accept, ping-pong (with its CPU and idle per round trip) and bulk", len(res.Metrics))
	}
	for _, m := range res.Metrics {
		if m.Key == metricPingIdle {
			continue // a saturated machine is idle 0 µs, rightly
		}
		if !(m.Median[kindRelay] > 0) || !(m.Ratio[kindRelay] > 0) || !(m.RatioToRelay[kindRemote] > 0) {
			t.Errorf("%s: relay figure %v, relay ratio %v, remote/relay %v; want all > 0",
				m.Key, m.Median[kindRelay], m.Ratio[kindRelay], m.RatioToRelay[kindRemote])
		}
	}
	wantInReport(t, md,
		"| metric | raw | tcpactor (owner on a second node) | ratio | target | met? | vs relay |",
		"| metric | raw | relay (no tcpactor) | ratio | target | met? |",
	)
}

// TestBenchMeasuresTheTLSRelayUnderEveryLoadTheRelayServes runs the
// relay-tls reference kind (a relay child, mutual TLS to its echo child)
// beside the relay through every load the relay serves, and checks that it
// reports a figure and a ratio to raw and to the relay for each, and that
// its table carries the "vs relay" column and the notes explain it. It says
// nothing about speed.
func TestBenchMeasuresTheTLSRelayUnderEveryLoadTheRelayServes(t *testing.T) {
	var res benchJSON
	md := runTinyBench(t, &res, "--kinds", "relay,relay-tls", "--metrics", "accept,pingpong,bulk,idle,flood")
	if len(res.Metrics) != 11 {
		t.Fatalf("got %d metrics, want the 11 of accept, ping-pong (with its CPU and idle per round trip), bulk (with its RSS), idle and flood", len(res.Metrics))
	}
	for _, m := range res.Metrics {
		switch m.Key {
		case metricPingIdle:
			continue // a saturated machine is idle 0 µs, rightly
		case metricIdle:
			// 50 idle connections move RSS by less than what the GC returns
			// between two readings (TestBenchMeasuresEveryMetricForEveryServer):
			// measured, maybe below 0.
			if m.Median[kindRelayTLS] == 0 || math.IsNaN(m.Median[kindRelayTLS]) {
				t.Errorf("%s: relay-tls figure %v, want a measurement", m.Key, m.Median[kindRelayTLS])
			}
			continue
		}
		if !(m.Median[kindRelayTLS] > 0) || !(m.Ratio[kindRelayTLS] > 0) || !(m.RatioToRelay[kindRelayTLS] > 0) {
			t.Errorf("%s: relay-tls figure %v, ratio %v, relay-tls/relay %v; want all > 0",
				m.Key, m.Median[kindRelayTLS], m.Ratio[kindRelayTLS], m.RatioToRelay[kindRelayTLS])
		}
	}
	wantInReport(t, md,
		"| metric | raw | relay, mutual TLS to the echo server (no tcpactor) | ratio | target | met? | vs relay |",
		"| metric | raw | relay (no tcpactor) | ratio | target | met? |\n",
		"- relay-tls: the relay with mutual TLS",
	)
}

// TestBenchMeasuresTheTLSOwnersAgainstTheTLSRelay runs the node stream,
// plaintext and mutual TLS, and remote-tls beside both relays through
// ping-pong and bulk rounds, and checks that the TLS kinds get their ratio
// to the TLS relay and a "vs TLS relay" column after their "vs relay" one,
// while the plaintext stream keeps "vs relay" alone. It says nothing about
// speed.
func TestBenchMeasuresTheTLSOwnersAgainstTheTLSRelay(t *testing.T) {
	var res benchJSON
	md := runTinyBench(t, &res, "--kinds", "remote-stream,remote-tls,remote-stream-tls,relay,relay-tls", "--metrics", "pingpong,bulk")
	if len(res.Metrics) != 8 {
		t.Fatalf("got %d metrics, want the 8 of ping-pong (with its CPU and idle per round trip) and bulk (with its RSS)", len(res.Metrics))
	}
	for _, m := range res.Metrics {
		if m.Key == metricPingIdle {
			continue // a saturated machine is idle 0 µs, rightly
		}
		for _, k := range []string{kindRemoteTLS, kindRemoteStreamTLS} {
			if !(m.RatioToTLSRelay[k] > 0) || !(m.RatioToRelay[k] > 0) {
				t.Errorf("%s: %s ratio to the TLS relay %v, to the relay %v; want both > 0", m.Key, k, m.RatioToTLSRelay[k], m.RatioToRelay[k])
			}
		}
		if v, ok := m.RatioToTLSRelay[kindRemoteStream]; ok {
			t.Errorf("%s: the plaintext stream has a ratio to the TLS relay (%v)", m.Key, v)
		}
	}
	wantInReport(t, md,
		"| metric | raw | tcpactor (owner on a second node, stream) | ratio | target | met? | vs relay |\n",
		"| metric | raw | tcpactor (owner on a second node, mutual TLS) | ratio | target | met? | vs relay | vs TLS relay |\n",
		"| metric | raw | tcpactor (owner on a second node, stream, mutual TLS) | ratio | target | met? | vs plaintext | vs relay | vs TLS relay |\n",
	)
}

// TestTheTLSRelayReachesItsEchoServerOnlyThroughMutualTLS starts kind
// relay-tls's relay in the test (its echo server is a child process) and
// checks that the echo server answers no plain TCP client and no TLS client
// without a certificate, while a plain client of the relay gets its bytes
// back: the hop the relay-tls kind measures is mutual TLS.
func TestTheTLSRelayReachesItsEchoServerOnlyThroughMutualTLS(t *testing.T) {
	r, err := startRelay(true, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer r.stop()
	msg := bytes.Repeat([]byte("tcpactor"), 8)

	// echoOf writes msg on c, half-closes, and reads to the end.
	echoOf := func(c net.Conn) ([]byte, error) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(msg); err != nil {
			return nil, err
		}
		if hc, ok := c.(interface{ CloseWrite() error }); ok {
			_ = hc.CloseWrite()
		}
		return io.ReadAll(c)
	}

	plain, err := net.Dial("tcp", r.echo.addr)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := echoOf(plain); bytes.Contains(got, msg) {
		t.Errorf("the echo server echoed a plain TCP client: %q", got)
	}

	_, cli, err := remotecfg.TLSFiles(benchTLS(r.tlsDir)).Configs()
	if err != nil {
		t.Fatal(err)
	}
	cli.Certificates = nil // the CA's server, no certificate of its own
	anon, err := tls.Dial("tcp", r.echo.addr, cli)
	if err != nil {
		t.Fatal(err) // TLS 1.3: the server checks the client's certificate after the client's handshake ends
	}
	if got, err := echoOf(anon); err == nil || bytes.Contains(got, msg) {
		t.Errorf("the echo server echoed a TLS client without a certificate: %q, %v", got, err)
	}

	c, err := net.Dial("tcp", r.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := echoOf(c); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("through the relay: got %q, %v; want %q", got, err, msg)
	}
	// The relay's goroutines end with the connection (goleak checks).
	for deadline := time.Now().Add(10 * time.Second); r.active.Load() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the relay still serves %d connections", r.active.Load())
		}
	}
}
