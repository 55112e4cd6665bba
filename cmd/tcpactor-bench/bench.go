package main

// The bench: tcpactor against a plain goroutine-per-connection net.Listener
// echo server ("raw"), side by side in one run, on loopback.
//
// Each server runs in a child process (`tcpactor-bench server`, see
// server.go) so that its memory is its own; the load runs here (load.go). Every
// measurement gets a fresh child, kinds alternate within each round, and the
// figures quoted are medians of the per-round ratios tcpactor/raw: absolute
// times mean little on a shared 2-core machine, ratios measured minutes apart
// a little more, ratios measured seconds apart most.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tcpactor/tcpactor/internal/cliflag"
)

// benchConfig is what one run measures.
type benchConfig struct {
	Rounds        int           `json:"rounds"`
	AcceptConns   int           `json:"accept_conns"`
	AcceptDialers int           `json:"accept_dialers"`
	PingPongConns int           `json:"pingpong_conns"`
	BulkConns     int           `json:"bulk_conns"`
	HTTPConns     int           `json:"http_conns"`
	Duration      time.Duration `json:"-"`
	DurationText  string        `json:"duration"`
	IdleConns     int           `json:"idle_conns"`
	FloodConns    int           `json:"flood_conns"`
	Backlog       int           `json:"backlog"`
	Kinds         []string      `json:"kinds"`
	Metrics       []string      `json:"metrics"`
	profileDir    string
}

// The loads, by name (for --metrics).
const (
	loadAccept   = "accept"
	loadPingPong = "pingpong"
	loadBulk     = "bulk"
	loadIdle     = "idle"
	loadFlood    = "flood"
)

var allLoads = []string{loadAccept, loadPingPong, loadBulk, loadIdle, loadFlood, loadHTTP}

// bench compares tcpactor with a plain net.Listener server.
func bench(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tcpactor-bench", stderr)
	quick := fs.Bool("quick", false, "fewer rounds and smaller loads (a CI smoke run, under a minute)")
	jsonOut := fs.Bool("json", false, "print JSON instead of a Markdown table")
	rounds := cliflag.Int(fs, "rounds", 0, 0, 100, "interleaved rounds per load, `N` up to 100 (default 5, --quick 2)")
	acceptConns := cliflag.Int(fs, "accept-conns", 0, 0, 1_000_000, "connections opened and closed per accept round, `N` up to 1000000 (default 3000, --quick 500)")
	pingConns := cliflag.Int(fs, "pingpong-conns", 100, 1, 5000, "connections in the 64-byte ping-pong, `N` from 1 to 5000")
	bulkConns := cliflag.Int(fs, "bulk-conns", 8, 1, 1000, "connections in the bulk echo, `N` from 1 to 1000")
	httpConns := cliflag.Int(fs, "http-conns", 64, 1, 5000, "keep-alive connections of the HTTP load (GET /hello), `N` from 1 to 5000")
	duration := fs.Duration("duration", 0, "length of each ping-pong and bulk round (default 2s, --quick 500ms)")
	idleConns := cliflag.Int(fs, "idle-conns", 0, 0, 100_000, "connections held open for idle memory, `N` up to 100000 (default 10000, --quick 2000)")
	floodConns := cliflag.Int(fs, "flood-conns", 4, 1, 1000, "connections in the flood (clients that send without reading), `N` from 1 to 1000")
	kinds := fs.String("kinds", "gnet,actor,loop,owner", "servers to compare with raw: gnet (gnet v2's echo, the event-loop reference), actor (tcpactor, local Handler), loop (actor with the event-loop reader), owner (owner actor per connection), remote (owner actor on a second node), remote-tls (remote with mutual TLS between the nodes, throwaway certificates), remote-stream and remote-stream-tls (remote and remote-tls with remotenode.Stream carrying the messages between the nodes), relay (the cross-process ceiling: a plain TCP relay to an echo server in a second process; the remote kinds get a \"vs relay\" column), relay-tls (the relay with mutual TLS between it and the echo server, the encrypted ceiling; the TLS kinds get a \"vs TLS relay\" column)")
	metrics := fs.String("metrics", strings.Join(allLoads, ","), "loads to run: "+strings.Join(allLoads, ", "))
	out := fs.String("out", "", "also write the Markdown table to `FILE`")
	svg := fs.String("svg", "", "also write a bar chart of the ratios to `FILE` (SVG)")
	backlog := cliflag.Int(fs, "backlog", -1, -1, math.MaxInt32, "listen backlog (`N`) of the tcpactor servers; -1: the one net.Listen gives raw (net.core.somaxconn); 0: tcpactor's default (50)")
	profile := fs.String("profile", "", "write CPU profiles of the servers during accept, ping-pong, bulk and http (a remote kind's owner node too: NAME-owner.pprof), and heap profiles (every allocation sampled) of them holding the idle connections, into `DIR`")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg := benchConfig{
		Rounds: pick(*rounds, *quick, 2, 5), AcceptConns: pick(*acceptConns, *quick, 500, 3000), AcceptDialers: 4,
		PingPongConns: *pingConns, BulkConns: *bulkConns, HTTPConns: *httpConns, IdleConns: pick(*idleConns, *quick, 2000, 10000), FloodConns: *floodConns,
		Duration: *duration, profileDir: *profile, Backlog: *backlog,
	}
	if cfg.Backlog < 0 {
		cfg.Backlog = somaxconn()
	}
	if cfg.Duration == 0 {
		cfg.Duration = map[bool]time.Duration{true: 500 * time.Millisecond, false: 2 * time.Second}[*quick]
	}
	cfg.DurationText = cfg.Duration.String()
	var err error
	if cfg.Kinds, err = splitList("--kinds", *kinds, []string{kindGnet, kindActor, kindLoop, kindOwner, kindRemote, kindRemoteTLS, kindRemoteStream, kindRemoteStreamTLS, kindRelay, kindRelayTLS}); err != nil {
		return err
	}
	if cfg.Metrics, err = splitList("--metrics", *metrics, allLoads); err != nil {
		return err
	}
	if err := cfg.check(); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	if cfg.profileDir != "" {
		if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
			return err
		}
	}
	if err := raiseFileLimit(); err != nil {
		return err
	}
	if cfg.IdleConns+64 > fileLimit() && contains(cfg.Metrics, loadIdle) {
		return fmt.Errorf("--idle-conns %d needs more descriptors than RLIMIT_NOFILE (%d) allows", cfg.IdleConns, fileLimit())
	}

	res, err := runBench(self, cfg, stderr)
	if err != nil {
		return err
	}
	table := res.markdown()
	if *out != "" {
		if err := os.WriteFile(*out, []byte(table), 0o644); err != nil {
			return err
		}
	}
	if *svg != "" {
		if err := os.WriteFile(*svg, []byte(res.svg()), 0o644); err != nil {
			return err
		}
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	_, err = io.WriteString(stdout, table)
	return err
}

// pick is v when set, else the quick or the full default.
func pick(v int, quick bool, q, full int) int {
	switch {
	case v != 0:
		return v
	case quick:
		return q
	default:
		return full
	}
}

func splitList(flag, s string, allowed []string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !contains(allowed, f) {
			return nil, fmt.Errorf("%s: %q is not one of %s", flag, f, strings.Join(allowed, ", "))
		}
		if !contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: name at least one of %s", flag, strings.Join(allowed, ", "))
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c benchConfig) check() error {
	for _, v := range []struct {
		name   string
		n, max int
	}{
		{"--rounds", c.Rounds, 100},
		{"--accept-conns", c.AcceptConns, 1_000_000},
		{"--pingpong-conns", c.PingPongConns, 5000},
		{"--bulk-conns", c.BulkConns, 1000},
		{"--http-conns", c.HTTPConns, 5000},
		{"--idle-conns", c.IdleConns, 100_000},
		{"--flood-conns", c.FloodConns, 1000},
	} {
		if v.n < 1 || v.n > v.max {
			return fmt.Errorf("%s %d: want 1 to %d", v.name, v.n, v.max)
		}
	}
	if c.Duration < 10*time.Millisecond || c.Duration > 5*time.Minute {
		return fmt.Errorf("--duration %v: want 10ms to 5m", c.Duration)
	}
	return nil
}

// runBench runs every round: for each load, each server kind in turn (raw
// first in even rounds, last in odd ones), each in a fresh child.
func runBench(self string, cfg benchConfig, progress io.Writer) (*benchResult, error) {
	res := newBenchResult(cfg)
	began := time.Now()
	for r := range cfg.Rounds {
		order := append([]string{kindRaw}, cfg.Kinds...)
		if r%2 == 1 {
			order = append(append([]string{}, cfg.Kinds...), kindRaw)
		}
		for _, load := range cfg.Metrics {
			for _, kind := range order {
				if load == loadHTTP && !contains(httpKinds, kind) {
					continue // no HTTP server of this kind (http.go)
				}
				fmt.Fprintf(progress, "bench: round %d/%d, %s, %s server\n", r+1, cfg.Rounds, load, kind)
				if err := measureOne(self, cfg, res, r, load, kind, progress); err != nil {
					return nil, fmt.Errorf("round %d, %s, %s server: %w", r+1, load, kind, err)
				}
			}
		}
	}
	res.Elapsed = time.Since(began).Round(time.Millisecond).String()
	res.finish()
	return res, nil
}

// measureOne runs one load against one fresh child and records its figures.
func measureOne(self string, cfg benchConfig, res *benchResult, round int, load, kind string, stderr io.Writer) (err error) {
	var prof string
	if cfg.profileDir != "" && (load == loadAccept || load == loadPingPong || load == loadBulk || load == loadHTTP) {
		prof = filepath.Join(cfg.profileDir, fmt.Sprintf("%s-%s-r%d.pprof", load, kind, round+1))
	}
	var extra []string
	if load == loadHTTP {
		extra = []string{"--serve", "http"}
	}
	var heapProf string
	if cfg.profileDir != "" && load == loadIdle {
		heapProf = filepath.Join(cfg.profileDir, fmt.Sprintf("idle-%s-r%d.heap.pprof", kind, round+1))
		extra = append(extra, "--heapprofile", heapProf)
	}
	c, err := startChild(self, kind, prof, cfg.Backlog, stderr, extra...)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Stop()) }()
	switch load {
	case loadAccept:
		a, err := measureAccept(c, cfg.AcceptConns, cfg.AcceptDialers)
		if err != nil {
			return err
		}
		res.record(metricAccept, round, kind, a.connsPerSec)
	case loadPingPong:
		p, err := measurePingPong(c, cfg.PingPongConns, cfg.Duration)
		if err != nil {
			return err
		}
		res.record(metricPingPong, round, kind, p.roundTripsPerSec)
		res.record(metricP50, round, kind, float64(p.p50)/float64(time.Microsecond))
		res.record(metricP99, round, kind, float64(p.p99)/float64(time.Microsecond))
		res.record(metricPingCPU, round, kind, float64(p.cost.server)/float64(time.Microsecond))
		res.record(metricPingClientCPU, round, kind, float64(p.cost.client)/float64(time.Microsecond))
		res.record(metricPingIdle, round, kind, float64(p.cost.idle)/float64(time.Microsecond))
	case loadBulk:
		b, err := measureBulk(c, cfg.BulkConns, cfg.Duration)
		if err != nil {
			return err
		}
		res.record(metricBulk, round, kind, b.bytesPerSec/1e6)
		res.record(metricBulkRSS, round, kind, float64(b.peakRSS)/(1<<20))
	case loadHTTP:
		h, err := measureHTTP(c, cfg.HTTPConns, cfg.Duration)
		if err != nil {
			return err
		}
		res.record(metricHTTP, round, kind, h.requestsPerSec)
		res.record(metricHTTPP50, round, kind, float64(h.p50)/float64(time.Microsecond))
	case loadIdle:
		i, err := measureIdle(c, cfg.IdleConns, heapProf != "")
		if err != nil {
			return err
		}
		res.record(metricIdle, round, kind, i.bytesPerConn/1024)
	case loadFlood:
		f, err := measureFlood(c, cfg.FloodConns, cfg.Duration)
		if err != nil {
			return err
		}
		res.record(metricFloodRSS, round, kind, float64(f.peakRSS)/(1<<20))
	}
	return nil
}

// somaxconn is the listen backlog net.Listen uses on Linux.
func somaxconn() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return 4096
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return 4096
	}
	return min(n, 65535)
}

// runtimeNote describes the machine the figures come from.
func runtimeNote() string {
	return fmt.Sprintf("%s, %s/%s, %d CPUs, GOMAXPROCS %d", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
}
