package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcpactor/tcpactor/internal/testkit"
)

// TestMain checks for leaked goroutines, and lets the test binary stand in
// for the tcpactor-bench binary when the bench re-executes itself as its
// server child (`tcpactor-bench server`): os.Executable is the test binary
// here.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	testkit.RunTests(m)
}

// tinyBench is a bench run small enough for a test under -race.
var tinyBench = []string{
	"--quick", "--rounds", "1", "--accept-conns", "20", "--pingpong-conns", "4",
	"--bulk-conns", "2", "--duration", "100ms", "--idle-conns", "50", "--flood-conns", "2", "--http-conns", "4",
}

// runTinyBench runs the bench as tinyBench plus extra with --json and --out,
// failing the test unless it exits 0; it decodes the JSON printed into res
// and returns the --out table's text.
func runTinyBench(t *testing.T, res any, extra ...string) string {
	t.Helper()
	table := filepath.Join(t.TempDir(), "bench.md")
	var stdout, stderr bytes.Buffer
	args := append(append(append([]string{}, tinyBench...), extra...), "--json", "--out", table)
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("bench exited %d\nstderr:\n%s", code, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), res); err != nil {
		t.Fatalf("bench --json printed no JSON: %v\n%s", err, stdout.String())
	}
	md, err := os.ReadFile(table)
	if err != nil {
		t.Fatal(err)
	}
	return string(md)
}

// benchJSON is the part of the bench's --json output the tests read: per
// metric, the figures of each kind (by round and their median) and its
// ratios to raw and to the other references.
type benchJSON struct {
	Metrics []struct {
		Key              string
		Rounds           []map[string]float64
		Median           map[string]float64
		Ratio            map[string]float64
		RatioToActor     map[string]float64 `json:"ratio_to_actor"`
		RatioToPlaintext map[string]float64 `json:"ratio_to_plaintext_remote"`
		RatioToRelay     map[string]float64 `json:"ratio_to_relay"`
		RatioToTLSRelay  map[string]float64 `json:"ratio_to_tls_relay"`
	}
}

// wantInReport fails for each of wants (a table's header line, a note)
// that the --out report md does not contain.
func wantInReport(t *testing.T, md string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(md, w) {
			t.Errorf("--out file has no %q:\n%s", w, md)
		}
	}
}

// TestBenchMeasuresEveryMetricForEveryServer runs the whole harness end to
// end — child servers, the five loads, the report — and checks that each
// metric has a positive figure for raw and for both tcpactor models, and a
// ratio. It says nothing about speed.
func TestBenchMeasuresEveryMetricForEveryServer(t *testing.T) {
	var res benchJSON
	svg := filepath.Join(t.TempDir(), "bench.svg")
	md := runTinyBench(t, &res, "--svg", svg)
	want := []string{metricAccept, metricPingPong, metricP50, metricP99, metricPingCPU, metricPingClientCPU, metricPingIdle, metricBulk, metricBulkRSS, metricIdle, metricFloodRSS, metricHTTP, metricHTTPP50}
	if len(res.Metrics) != len(want) {
		t.Fatalf("got %d metrics, want %d (%v)", len(res.Metrics), len(want), want)
	}
	for i, m := range res.Metrics {
		if m.Key != want[i] {
			t.Errorf("metric %d is %q, want %q", i, m.Key, want[i])
		}
		for _, kind := range []string{kindRaw, kindGnet, kindActor, kindLoop, kindOwner} {
			if loadOf(m.Key) == loadHTTP && !contains(httpKinds, kind) {
				continue // no HTTP server of this kind
			}
			if m.Key == metricPingIdle {
				continue // a saturated machine is idle 0 µs, rightly
			}
			if m.Key == metricIdle {
				// 50 idle connections move RSS by less than what the GC
				// returns between the two readings on a busy machine: the
				// figure may come out below 0 here, but it must be measured.
				if m.Median[kind] == 0 || math.IsNaN(m.Median[kind]) {
					t.Errorf("%s: %s server figure %v, want a measurement", m.Key, kind, m.Median[kind])
				}
				continue
			}
			if !(m.Median[kind] > 0) {
				t.Errorf("%s: %s server figure %v, want > 0", m.Key, kind, m.Median[kind])
			}
			if kind != kindRaw && !(m.Ratio[kind] > 0) {
				t.Errorf("%s: %s ratio %v, want > 0", m.Key, kind, m.Ratio[kind])
			}
		}
	}
	if !strings.Contains(md, "| metric | raw | tcpactor | ratio | target | met? |") {
		t.Errorf("--out file has no table:\n%s", md)
	}
	if b, err := os.ReadFile(svg); err != nil || !strings.HasPrefix(string(b), "<svg") {
		t.Errorf("--svg file is not an SVG (err %v)", err)
	}
}

// TestBenchRejectsBadFlags checks that impossible settings are refused
// before any server starts.
func TestBenchRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--rounds", "-1"},
		{"--kinds", "nosuchkind"},
		{"--metrics", "latency"},
		{"--duration", "1ns"},
		{"--idle-conns", "1000000"},
		// Integer flags are range-checked, not wrapped (internal/cliflag).
		{"--rounds", "101"},
		{"--accept-conns", "1000001"},
		{"--pingpong-conns", "0"},
		{"--bulk-conns", "1001"},
		{"--idle-conns", "-1"},
		{"--backlog", "2147483648"},
		{"--backlog", "-2"},
		{childCommand, "--backlog", "-1"},
		{childCommand, "--backlog", "2147483648"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code == 0 || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want an error in one line", args, code, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("%v: printed %q, want nothing on stdout", args, stdout.String())
		}
	}
}

// TestBenchMeasuresTheHandlerOnASecondNode runs the remote kind — a server
// node and an owner node, two child processes — through a ping-pong round,
// and checks that it reports figures, ratios to raw and to the local
// handler, and the extra column of its table. It says nothing about speed.
func TestBenchMeasuresTheHandlerOnASecondNode(t *testing.T) {
	var res benchJSON
	md := runTinyBench(t, &res, "--kinds", "actor,remote", "--metrics", "pingpong")
	if len(res.Metrics) != 6 {
		t.Fatalf("got %d metrics, want the 6 of ping-pong (rate, p50, p99, server and client CPU and idle per round trip)", len(res.Metrics))
	}
	for _, m := range res.Metrics {
		if m.Key == metricPingIdle {
			continue // a saturated machine is idle 0 µs, rightly
		}
		if !(m.Median[kindRemote] > 0) || !(m.Ratio[kindRemote] > 0) || !(m.RatioToActor[kindRemote] > 0) {
			t.Errorf("%s: remote figure %v, ratio %v, ratio to actor %v; want all > 0",
				m.Key, m.Median[kindRemote], m.Ratio[kindRemote], m.RatioToActor[kindRemote])
		}
	}
	if !strings.Contains(md, "| metric | raw | tcpactor (owner on a second node) | ratio | target | met? | vs actor |") {
		t.Errorf("--out file has no remote table:\n%s", md)
	}
}

// TestBenchMeasuresTheRemoteHandlerWithMutualTLS runs the remote kind with
// and without mutual TLS between its nodes through a ping-pong round, and
// checks that the TLS kind reports figures and its ratio to plaintext, and
// the extra column of its table. It says nothing about speed.
func TestBenchMeasuresTheRemoteHandlerWithMutualTLS(t *testing.T) {
	var res benchJSON
	md := runTinyBench(t, &res, "--kinds", "remote,remote-tls", "--metrics", "pingpong")
	for _, m := range res.Metrics {
		if m.Key == metricPingIdle {
			continue // a saturated machine is idle 0 µs, rightly
		}
		if !(m.Median[kindRemoteTLS] > 0) || !(m.RatioToPlaintext[kindRemoteTLS] > 0) {
			t.Errorf("%s: remote-tls figure %v, ratio to plaintext %v; want both > 0",
				m.Key, m.Median[kindRemoteTLS], m.RatioToPlaintext[kindRemoteTLS])
		}
	}
	if !strings.Contains(md, "| metric | raw | tcpactor (owner on a second node, mutual TLS) | ratio | target | met? | vs plaintext |") {
		t.Errorf("--out file has no remote-tls table:\n%s", md)
	}
}

// TestBenchProfileWritesHeapProfilesOfTheIdleServers checks that --profile
// leaves, for the idle load, a heap profile of each server holding its
// connections, naming the allocation sites of what they hold: Go's socket
// for raw, the ConnectionActor for loop.
func TestBenchProfileWritesHeapProfilesOfTheIdleServers(t *testing.T) {
	dir := t.TempDir()
	var res any
	runTinyBench(t, &res, "--kinds", "loop", "--metrics", "idle", "--profile", dir)
	for kind, site := range map[string]string{"raw": "net.newFD", "loop": "actors.newConnection"} {
		f, err := os.Open(filepath.Join(dir, "idle-"+kind+"-r1.heap.pprof"))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f) // a pprof profile is gzipped protobuf
		if err != nil {
			f.Close()
			t.Fatalf("%s: %v", kind, err)
		}
		b, err := io.ReadAll(zr)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if !bytes.Contains(b, []byte(site)) {
			t.Errorf("the heap profile of %s names no %s", kind, site)
		}
	}
}

// TestBenchMeasuresTheRemoteHandlerOverStreams runs the remote kinds with
// remotenode.Stream, plaintext and mutual TLS, beside the relay through a
// ping-pong round, and checks that both report figures, the TLS one its
// ratio to the plaintext stream, both their ratio to the relay, and their
// tables. It says nothing about speed.
func TestBenchMeasuresTheRemoteHandlerOverStreams(t *testing.T) {
	var res benchJSON
	md := runTinyBench(t, &res, "--kinds", "remote-stream,remote-stream-tls,relay", "--metrics", "pingpong")
	for _, m := range res.Metrics {
		if m.Key == metricPingIdle {
			continue // a saturated machine is idle 0 µs, rightly
		}
		for _, k := range []string{kindRemoteStream, kindRemoteStreamTLS} {
			if !(m.Median[k] > 0) || !(m.RatioToRelay[k] > 0) {
				t.Errorf("%s: %s figure %v, ratio to relay %v; want both > 0", m.Key, k, m.Median[k], m.RatioToRelay[k])
			}
		}
		if !(m.RatioToPlaintext[kindRemoteStreamTLS] > 0) {
			t.Errorf("%s: remote-stream-tls ratio to plaintext %v, want > 0", m.Key, m.RatioToPlaintext[kindRemoteStreamTLS])
		}
	}
	wantInReport(t, md,
		"| metric | raw | tcpactor (owner on a second node, stream) | ratio | target | met? | vs relay |",
		"| metric | raw | tcpactor (owner on a second node, stream, mutual TLS) | ratio | target | met? | vs plaintext | vs relay |",
	)
}

// TestBenchProfileWritesCPUProfilesOfBothNodesUnderTheAcceptLoad checks
// that --profile profiles the accept load too, and for a remote kind both
// of its nodes: the server node and the owner node (NAME-owner.pprof).
func TestBenchProfileWritesCPUProfilesOfBothNodesUnderTheAcceptLoad(t *testing.T) {
	dir := t.TempDir()
	var res any
	runTinyBench(t, &res, "--kinds", "remote", "--metrics", "accept", "--profile", dir)
	for _, name := range []string{"accept-raw-r1.pprof", "accept-remote-r1.pprof", "accept-remote-r1-owner.pprof"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			t.Errorf("no CPU profile %s: %v", name, err)
		}
	}
}
