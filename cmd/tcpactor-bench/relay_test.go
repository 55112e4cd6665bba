package main

import (
	"strings"
	"testing"
)

// TestBenchMeasuresTheRelayCeilingBesideTheRemoteOwner runs the relay
// reference kind (a relay child and its echo child) beside the remote kind
// through ping-pong and bulk rounds — every byte relayed both ways — and
// checks that both report figures, that the remote kind gets its ratio to
// the relay, and that its table carries the "vs relay" column. It says
// nothing about speed.
func TestBenchMeasuresTheRelayCeilingBesideTheRemoteOwner(t *testing.T) {
	var res struct {
		Metrics []struct {
			Key          string
			Median       map[string]float64
			Ratio        map[string]float64
			RatioToRelay map[string]float64 `json:"ratio_to_relay"`
		}
	}
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
	for _, want := range []string{
		"| metric | raw | tcpactor (owner on a second node) | ratio | target | met? | vs relay |",
		"| metric | raw | relay (no tcpactor) | ratio | target | met? |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("--out file has no line %q:\n%s", want, md)
		}
	}
}
