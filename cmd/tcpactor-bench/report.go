package main

// The figures of the bench: medians, ratios, targets, and their
// Markdown, JSON and SVG forms.

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strconv"
	"strings"
)

// metricDef is one row of the table.
type metricDef struct {
	key    string
	name   string // row label; %d is replaced by a count from the config
	unit   string
	target float64 // ratio tcpactor/raw to meet; 0: reported, no target
	higher bool    // higher is better (the ratio must be at least target)
	digits int     // decimals of the absolute figures
	// loopTarget is the event-loop reader's target (kind loop), issue 14's;
	// 0: the same as target.
	loopTarget float64
}

// The metrics, in table order.
const (
	metricAccept   = "accept_rate"
	metricPingPong = "pingpong_throughput"
	metricP50      = "pingpong_p50"
	metricP99      = "pingpong_p99"
	metricPingCPU  = "pingpong_cpu"
	// metricPingClientCPU and metricPingIdle say where the rest of the
	// machine went: the client's CPU, and the CPUs' idle time, per round
	// trip.
	metricPingClientCPU = "pingpong_client_cpu"
	metricPingIdle      = "pingpong_idle"
	metricBulk          = "bulk_throughput"
	metricBulkRSS       = "bulk_peak_rss"
	metricIdle          = "idle_memory"
	metricFloodRSS      = "flood_peak_rss"
)

func metricDefs(cfg benchConfig) []metricDef {
	return []metricDef{
		{metricAccept, "accept rate, connect + close", "conn/s", 0.97, true, 0, 1.0},
		{metricPingPong, fmt.Sprintf("ping-pong, %d conns × 64 B", cfg.PingPongConns), "round trips/s", 0.95, true, 0, 0.97},
		{metricP50, "ping-pong latency p50", "µs", 1.1, false, 1, 1.0},
		{metricP99, "ping-pong latency p99", "µs", 0, false, 1, 0},
		{metricPingCPU, "ping-pong, server CPU per round trip (all its processes)", "µs", 0, false, 2, 0},
		{metricPingClientCPU, "ping-pong, client CPU per round trip (the bench)", "µs", 0, false, 2, 0},
		{metricPingIdle, "ping-pong, machine idle per round trip (all CPUs)", "µs", 0, false, 2, 0},
		{metricBulk, fmt.Sprintf("bulk echo, %d conns × 64 KiB writes", cfg.BulkConns), "MB/s", 0.90, true, 0, 1.0},
		{metricBulkRSS, "bulk echo, server peak RSS (VmHWM)", "MiB", 3.0, false, 1, 0},
		{metricIdle, fmt.Sprintf("idle memory, %d conns", cfg.IdleConns), "KiB/conn", 1.0, false, 2, 0.25},
		{metricFloodRSS, fmt.Sprintf("flood, %d clients that never read, server peak RSS", cfg.FloodConns), "MiB", 3.0, false, 1, 0},
		{metricHTTP, fmt.Sprintf("HTTP GET /hello, %d keep-alive conns (net/http)", cfg.HTTPConns), "req/s", 0.8, true, 0, 0},
		{metricHTTPP50, "HTTP latency p50", "µs", 0, false, 1, 0},
	}
}

// loadOf names the load that produces a metric.
func loadOf(metric string) string {
	switch metric {
	case metricAccept:
		return loadAccept
	case metricPingPong, metricP50, metricP99, metricPingCPU, metricPingClientCPU, metricPingIdle:
		return loadPingPong
	case metricBulk, metricBulkRSS:
		return loadBulk
	case metricFloodRSS:
		return loadFlood
	case metricHTTP, metricHTTPP50:
		return loadHTTP
	default:
		return loadIdle
	}
}

// benchResult is the outcome of a run; it is also the --json output.
type benchResult struct {
	Config  benchConfig     `json:"config"`
	Runtime string          `json:"runtime"`
	Elapsed string          `json:"elapsed"`
	Metrics []*metricResult `json:"metrics"`
	Notes   []string        `json:"notes"`
	byKey   map[string]*metricResult
}

// metricResult is one metric: per-round figures and their medians.
type metricResult struct {
	Key    string  `json:"key"`
	Name   string  `json:"name"`
	Unit   string  `json:"unit"`
	Target float64 `json:"target,omitempty"`
	// LoopTarget is the target of the loop kind when it differs.
	LoopTarget float64 `json:"loop_target,omitempty"`
	// HigherIsBetter says which way the target goes: ratio ≥ target when
	// true, ratio ≤ target when false.
	HigherIsBetter bool `json:"higher_is_better"`
	// Rounds holds each round's figure per server kind.
	Rounds []map[string]float64 `json:"rounds"`
	// Median is the median figure per server kind.
	Median map[string]float64 `json:"median"`
	// Ratio is, per tcpactor kind, the median of the per-round ratios
	// kind/raw.
	Ratio map[string]float64 `json:"ratio"`
	// Met is, per tcpactor kind, whether Ratio meets Target (absent when
	// there is no target).
	Met map[string]bool `json:"met,omitempty"`
	// RatioToActor is, for the owner and remote kinds in a run that has the
	// actor kind too, the median of the per-round ratios kind/actor: the
	// owner actor, on this node or a second one, against the same echo run
	// as a local handler.
	RatioToActor map[string]float64 `json:"ratio_to_actor,omitempty"`
	// RatioToPlaintext is, for the remote-tls kind in a run that has the
	// remote kind too, the median of the per-round ratios remote-tls/remote:
	// what mutual TLS between the nodes costs.
	RatioToPlaintext map[string]float64 `json:"ratio_to_plaintext_remote,omitempty"`
	// RatioToRelay is, for the remote kinds in a run that has the relay
	// kind too, the median of the per-round ratios kind/relay: the owner on
	// a second node against the cross-process ceiling (relay.go).
	RatioToRelay map[string]float64 `json:"ratio_to_relay,omitempty"`
	// RatioToTLSRelay is, for the TLS kinds in a run that has the relay-tls
	// kind too, the median of the per-round ratios kind/relay-tls: mutual
	// TLS across nodes against the same crypto's cross-process ceiling.
	RatioToTLSRelay map[string]float64 `json:"ratio_to_tls_relay,omitempty"`
	def             metricDef
}

func newBenchResult(cfg benchConfig) *benchResult {
	r := &benchResult{Config: cfg, Runtime: runtimeNote(), byKey: map[string]*metricResult{}}
	for _, d := range metricDefs(cfg) {
		if !contains(cfg.Metrics, loadOf(d.key)) {
			continue
		}
		m := &metricResult{Key: d.key, Name: d.name, Unit: d.unit, Target: d.target, LoopTarget: d.loopTarget, HigherIsBetter: d.higher, def: d}
		m.Rounds = make([]map[string]float64, cfg.Rounds)
		for i := range m.Rounds {
			m.Rounds[i] = map[string]float64{}
		}
		r.Metrics = append(r.Metrics, m)
		r.byKey[d.key] = m
	}
	return r
}

func (r *benchResult) record(metric string, round int, kind string, v float64) {
	r.byKey[metric].Rounds[round][kind] = v
}

// finish computes the medians, ratios and verdicts, and the notes.
func (r *benchResult) finish() {
	kinds := append([]string{kindRaw}, r.Config.Kinds...)
	for _, m := range r.Metrics {
		m.Median, m.Ratio = map[string]float64{}, map[string]float64{}
		for _, k := range kinds {
			var vs, ratios []float64
			for _, round := range m.Rounds {
				v, ok := round[k]
				if !ok {
					continue
				}
				vs = append(vs, v)
				if raw := round[kindRaw]; raw > 0 && k != kindRaw {
					ratios = append(ratios, v/raw)
				}
			}
			m.Median[k] = median(vs)
			if k == kindRaw {
				continue
			}
			m.Ratio[k] = median(ratios)
			if m.targetFor(k) > 0 {
				if m.Met == nil {
					m.Met = map[string]bool{}
				}
				m.Met[k] = m.meets(k, m.Ratio[k])
			}
		}
		m.RatioToActor = r.ratiosTo(m, kindActor, kindOwner, kindRemote, kindRemoteStream)
		for tlsKind, plain := range map[string]string{kindRemoteTLS: kindRemote, kindRemoteStreamTLS: kindRemoteStream} {
			if contains(r.Config.Kinds, tlsKind) && contains(r.Config.Kinds, plain) {
				if m.RatioToPlaintext == nil {
					m.RatioToPlaintext = map[string]float64{}
				}
				m.RatioToPlaintext[tlsKind] = m.ratioTo(tlsKind, plain)
			}
		}
		// relay-tls against the relay too: what the crypto costs the relay.
		m.RatioToRelay = r.ratiosTo(m, kindRelay, kindRemote, kindRemoteTLS, kindRemoteStream, kindRemoteStreamTLS, kindRelayTLS)
		m.RatioToTLSRelay = r.ratiosTo(m, kindRelayTLS, kindRemoteTLS, kindRemoteStreamTLS)
	}
	c := r.Config
	r.Notes = []string{
		"raw: a goroutine per connection on a net.Listener, echoing with a 32 KiB buffer (io.Copy without splice).",
		"tcpactor (kind actor): server.Spawn with the echo Handler run inside each ConnectionActor (Ranch's model, the fast path for local protocols), each connection read by a goroutine of its own (ReadGoroutine).",
	}
	if contains(c.Kinds, kindGnet) {
		r.Notes = append(r.Notes, "gnet: github.com/panjf2000/gnet/v2 v2.9.7, multicore, OnTraffic writes back c.Next(-1) with c.Write: event loops, no goroutine per connection; what a socket does not take at once is buffered without limit (see the flood).")
	}
	if contains(c.Kinds, kindLoop) {
		r.Notes = append(r.Notes, "loop: the actor kind with ConnectionConfig.ReadMode = ReadLoop: a few epoll loops (four per GOMAXPROCS, two of them while connections are few) read every connection, armed once per read credit; the echo Handler runs on the loop.")
	}
	if contains(c.Kinds, kindOwner) {
		r.Notes = append(r.Notes, "owner: server.Spawn without a Handler; one owner actor per connection claims it and writes back each Received with a Write whose demand grants the next Received once it is on the wire (Write.demand: no separate Demand per WriteAck; Akka's model, needed for owners on other nodes). \"vs actor\" is the median of the per-round ratios owner/actor.")
	}
	if contains(c.Kinds, kindRemote) {
		r.Notes = append(r.Notes, "remote: the handler on a second node. The server child runs server.SpawnNamed without a Handler on a node with Proto.Actor remote (127.0.0.1, gRPC); a second child process runs owner.New with owner.Echo, subscribed to it over remote, so every Received, Write (with its demand) and WriteAck crosses the nodes. RSS figures are the server node's only. \"vs actor\" is the median of the per-round ratios remote/actor (target for ping-pong: ≥ 0.5×).")
	}
	if contains(c.Kinds, kindRemoteStream) || contains(c.Kinds, kindRemoteStreamTLS) {
		r.Notes = append(r.Notes, "remote-stream, remote-stream-tls: the remote and remote-tls kinds with remotenode.Stream on both nodes: every message between them travels on a TCP (mutual TLS) connection of each node's own, as length-prefixed frames, Received and Write data written with writev straight from their slices; only the stream's set-up crosses gRPC. \"vs plaintext\" of remote-stream-tls is against remote-stream.")
	}
	if contains(c.Kinds, kindRemoteTLS) {
		r.Notes = append(r.Notes, "remote-tls: the remote kind with mutual TLS (TLS 1.3, ECDSA P-256 certificates of a CA made for the run) on the nodes' gRPC streams (remotenode.TLS). \"vs plaintext\" is the median of the per-round ratios remote-tls/remote.")
	}
	if contains(c.Metrics, loadHTTP) && contains(c.Kinds, kindOwner) {
		r.Notes = append(r.Notes, fmt.Sprintf("http: Go's net/http serving GET /hello to %d keep-alive connections, one request in flight each, %v per round. raw: http.Server on a net.Listener; owner: the same http.Server on a server.Listener (each connection a ConnectionActor owned by a server.Conn's owner actor, as examples/httpoveractors). Only these two kinds serve HTTP.", c.HTTPConns, c.Duration))
	}
	if contains(c.Kinds, kindRelay) {
		r.Notes = append(r.Notes, "relay: the cross-process ceiling, no tcpactor in it. The child relays each connection to a raw echo server in a second process (client → relay → echo → relay → client), copying both ways with io.CopyBuffer through a 32 KiB buffer (no splice); RSS figures are the relay's only. \"vs relay\" (remote kinds, relay-tls) is the median of the per-round ratios kind/relay.")
	}
	if contains(c.Kinds, kindRelayTLS) {
		r.Notes = append(r.Notes, "relay-tls: the relay with mutual TLS (TLS 1.3, the remote-tls kinds' throwaway CA and certificates) on the hop between the relay and its echo server; the client's leg stays plain TCP, as the load's is to the remote kinds' server node. Every echoed byte is encrypted and decrypted twice between the processes, as between the TLS kinds' nodes: the ceiling of an encrypted cross-process path. It pays a handshake per relayed connection (resumed after the first), which the remote kinds, one connection between the nodes, do not: its accept figure is no ceiling for theirs. \"vs TLS relay\" (remote-tls, remote-stream-tls) is the median of the per-round ratios kind/relay-tls; its own \"vs relay\" is what the crypto costs the relay.")
	}
	r.Notes = append(r.Notes,
		fmt.Sprintf("Each server runs in its own child process, started afresh for every measurement; the load runs in the parent, on loopback. %d interleaved rounds (raw first in odd rounds, last in even ones); ratio = median of the per-round ratios tcpactor/raw; the absolute columns are medians across rounds and only frame the ratios.", c.Rounds),
		fmt.Sprintf("accept: %d connections opened and closed by %d dialers, timed until the server has accepted and finished every one. ping-pong: %d connections, one 64-byte message in flight each, %v per round; latency is per round trip, as the client sees it; CPU per round trip is the user and system time of the server's processes (/proc/PID/stat) over the round, divided by its round trips — on a busy machine a steadier figure than the rates. bulk: %d connections, a writer and a reader each, %v per round after a %v warm-up; peak RSS is the server's VmHWM. idle: %d connections held open; (RSS after − RSS before) / count, each RSS read after a GC that returns freed memory to the OS. flood: %d connections that send 64 KiB writes for %v and never read the echo; the server's VmHWM after.",
			c.AcceptConns, c.AcceptDialers, c.PingPongConns, c.Duration, c.BulkConns, c.Duration, c.Duration/5, c.IdleConns, c.FloodConns, c.Duration),
		"Client and server share the machine's cores, so differences of 10–20% can be noise; compare ratios, never absolute figures across runs.",
		"Measured with "+r.Runtime+" in "+r.Elapsed+".",
	)
}

// measured tells whether kind k has a figure in some round.
func (m *metricResult) measured(k string) bool {
	for _, round := range m.Rounds {
		if _, ok := round[k]; ok {
			return true
		}
	}
	return false
}

// ratioTo is the median of the per-round ratios k/base.
func (m *metricResult) ratioTo(k, base string) float64 {
	var ratios []float64
	for _, round := range m.Rounds {
		if b := round[base]; b > 0 {
			ratios = append(ratios, round[k]/b)
		}
	}
	return median(ratios)
}

// ratiosTo is, for each of kinds that the run has, the median of m's
// per-round ratios kind/base (ratioTo); nil when the run lacks base or all
// of kinds, so that the JSON leaves the column out.
func (r *benchResult) ratiosTo(m *metricResult, base string, kinds ...string) map[string]float64 {
	if !contains(r.Config.Kinds, base) {
		return nil
	}
	var out map[string]float64
	for _, k := range kinds {
		if contains(r.Config.Kinds, k) {
			if out == nil {
				out = map[string]float64{}
			}
			out[k] = m.ratioTo(k, base)
		}
	}
	return out
}

// targetFor is kind k's target: none for the references (gnet, relay, relay-tls), the loop's
// own for the loop kind.
func (m *metricResult) targetFor(k string) float64 {
	switch {
	case k == kindGnet, k == kindRelay, k == kindRelayTLS: // references, not contenders
		return 0
	case k == kindLoop && m.LoopTarget > 0:
		return m.LoopTarget
	}
	return m.Target
}

func (m *metricResult) meets(k string, ratio float64) bool {
	if m.HigherIsBetter {
		return ratio >= m.targetFor(k)
	}
	return ratio <= m.targetFor(k)
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// markdown is the table (one per tcpactor kind) and the notes.
func (r *benchResult) markdown() string {
	var b strings.Builder
	first := true
	for _, k := range r.Config.Kinds {
		if !slices.ContainsFunc(r.Metrics, func(m *metricResult) bool { return m.measured(k) }) {
			continue // serves none of the loads run (http)
		}
		if !first {
			b.WriteString("\n")
		}
		first = false
		title := map[string]string{kindGnet: "gnet", kindLoop: "tcpactor (event loop)", kindActor: "tcpactor", kindOwner: "tcpactor (owner actor)", kindRemote: "tcpactor (owner on a second node)",
			kindRemoteTLS: "tcpactor (owner on a second node, mutual TLS)", kindRemoteStream: "tcpactor (owner on a second node, stream)",
			kindRemoteStreamTLS: "tcpactor (owner on a second node, stream, mutual TLS)", kindRelay: "relay (no tcpactor)", kindRelayTLS: "relay, mutual TLS to the echo server (no tcpactor)"}[k]
		if len(r.Config.Kinds) > 1 {
			fmt.Fprintf(&b, "**%s**\n\n", map[string]string{kindGnet: "gnet v2.9.7 (the event-loop reference; no targets)",
				kindLoop: "Local handler, event-loop reader (ReadLoop; issue 14's targets)", kindActor: "Local handler (Ranch's model)", kindOwner: "Owner actor per connection (Akka's model)",
				kindRemote: "Owner actor on a second node (remote)", kindRemoteTLS: "Owner actor on a second node, mutual TLS (remote-tls)",
				kindRemoteStream:    "Owner actor on a second node, node-to-node stream (remote-stream)",
				kindRemoteStreamTLS: "Owner actor on a second node, node-to-node stream with mutual TLS (remote-stream-tls)",
				kindRelay:           "Reference: a plain TCP relay through a second process (relay)",
				kindRelayTLS:        "Reference: the relay with mutual TLS to the second process (relay-tls)"}[k])
		}
		// The extra columns: the remote kind against the local handler and
		// the relay, the TLS one against plaintext, the relay and the TLS
		// relay; the TLS relay against the relay.
		type column struct {
			name string
			of   func(*metricResult) float64
		}
		var cols []column
		switch {
		case (k == kindRemote || k == kindRemoteStream || k == kindOwner) && contains(r.Config.Kinds, kindActor):
			cols = append(cols, column{"vs actor", func(m *metricResult) float64 { return m.RatioToActor[k] }})
		case k == kindRemoteTLS && contains(r.Config.Kinds, kindRemote), k == kindRemoteStreamTLS && contains(r.Config.Kinds, kindRemoteStream):
			cols = append(cols, column{"vs plaintext", func(m *metricResult) float64 { return m.RatioToPlaintext[k] }})
		}
		if (isRemoteKind(k) || k == kindRelayTLS) && contains(r.Config.Kinds, kindRelay) {
			cols = append(cols, column{"vs relay", func(m *metricResult) float64 { return m.RatioToRelay[k] }})
		}
		if (k == kindRemoteTLS || k == kindRemoteStreamTLS) && contains(r.Config.Kinds, kindRelayTLS) {
			cols = append(cols, column{"vs TLS relay", func(m *metricResult) float64 { return m.RatioToTLSRelay[k] }})
		}
		fmt.Fprintf(&b, "| metric | raw | %s | ratio | target | met? |", title)
		for _, c := range cols {
			fmt.Fprintf(&b, " %s |", c.name)
		}
		b.WriteString("\n|---|---:|---:|---:|---|---|" + strings.Repeat("---:|", len(cols)) + "\n")
		for _, m := range r.Metrics {
			if !m.measured(k) {
				continue // a load this kind does not serve (http)
			}
			target, met := "–", "–"
			if t := m.targetFor(k); t > 0 {
				op := "≤"
				if m.HigherIsBetter {
					op = "≥"
				}
				target = fmt.Sprintf("%s %s×", op, trimFloat(t, 2))
				met = map[bool]string{true: "yes", false: "**no**"}[m.Met[k]]
			}
			fmt.Fprintf(&b, "| %s (%s) | %s | %s | %.2f | %s | %s |", m.Name, m.Unit,
				group(m.Median[kindRaw], m.def.digits), group(m.Median[k], m.def.digits), m.Ratio[k], target, met)
			for _, c := range cols {
				if v := c.of(m); v > 0 {
					fmt.Fprintf(&b, " %.2f |", v)
				} else {
					b.WriteString(" – |") // the other kind has no figure for it
				}
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\n")
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	b.WriteString("- Per-round ratios: ")
	var parts []string
	for _, m := range r.Metrics {
		for _, k := range r.Config.Kinds {
			if !m.measured(k) {
				continue
			}
			var rs []string
			for _, round := range m.Rounds {
				if raw := round[kindRaw]; raw > 0 {
					rs = append(rs, fmt.Sprintf("%.2f", round[k]/raw))
				}
			}
			parts = append(parts, fmt.Sprintf("%s/%s %s", m.Key, k, strings.Join(rs, " ")))
		}
	}
	b.WriteString(strings.Join(parts, "; ") + ".\n")
	return b.String()
}

// group formats v with thousands separators.
func group(v float64, digits int) string {
	s := strconv.FormatFloat(v, 'f', digits, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var out []byte
	for i := range len(intPart) {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, intPart[i])
	}
	s = string(out)
	if frac != "" {
		s += "." + frac
	}
	if neg {
		s = "-" + s
	}
	return s
}

func trimFloat(v float64, digits int) string {
	s := strconv.FormatFloat(v, 'f', digits, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// svg draws the ratios as horizontal bars, one group per metric, with the
// target as a tick; a bar is green when it meets its target.
func (r *benchResult) svg() string {
	const (
		left, barH, gap, width = 300, 14, 10, 760
		plotW                  = width - left - 40
	)
	maxR := 2.0
	for _, m := range r.Metrics {
		for _, v := range m.Ratio {
			maxR = math.Max(maxR, math.Ceil(v*2)/2)
		}
	}
	x := func(v float64) float64 { return left + v/maxR*plotW }
	rowH := len(r.Config.Kinds)*barH + gap
	height := 50 + len(r.Metrics)*rowH + 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14" font-weight="bold">tcpactor / raw net.Listener (median of per-round ratios)</text>`+"\n")
	top := 40
	for i := 0; float64(i) <= maxR*2; i++ {
		v := float64(i) / 2
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x(v), top, x(v), height-30, map[bool]string{true: "#888", false: "#ddd"}[v == 1])
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s×</text>`+"\n", x(v), height-14, trimFloat(v, 1))
	}
	colors := map[string][2]string{kindGnet: {"#90a4ae", "#90a4ae"}, kindLoop: {"#1565c0", "#6a1b9a"}, kindActor: {"#2e7d32", "#c62828"}, kindOwner: {"#81c784", "#ef9a9a"}, kindRemote: {"#a5d6a7", "#ffcdd2"}, kindRemoteTLS: {"#c8e6c9", "#ffebee"}, kindRemoteStream: {"#66bb6a", "#e57373"}, kindRemoteStreamTLS: {"#43a047", "#ef5350"}, kindRelay: {"#b0bec5", "#b0bec5"}, kindRelayTLS: {"#78909c", "#78909c"}}
	for i, m := range r.Metrics {
		y := top + 5 + i*rowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+barH, html.EscapeString(m.Name))
		for j, k := range r.Config.Kinds {
			by := y + j*barH
			v := m.Ratio[k]
			fill := colors[k][0]
			if m.targetFor(k) > 0 && !m.Met[k] {
				fill = colors[k][1]
			} else if m.targetFor(k) == 0 {
				fill = "#90a4ae"
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s %s: %.2f×</title></rect>`+"\n", left, by, x(v)-left, barH-2, fill, k, html.EscapeString(m.Name), v)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="10">%.2f %s</text>`+"\n", x(v)+3, by+barH-4, v, k)
		}
		if m.Target > 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-width="2" stroke-dasharray="3,2"/>`+"\n", x(m.Target), y-2, x(m.Target), y+len(r.Config.Kinds)*barH)
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}
