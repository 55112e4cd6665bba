package main

import "testing"

// TestBenchMeasuresHTTPOverTheListener runs the http load — net/http on a
// net.Listener against net/http on a server.Listener — and checks that both
// report figures and the owner kind its ratio, and that a kind without an
// HTTP server is left out of the load. It says nothing about speed.
func TestBenchMeasuresHTTPOverTheListener(t *testing.T) {
	var res benchJSON
	runTinyBench(t, &res, "--kinds", "actor,owner", "--metrics", "http")
	if len(res.Metrics) != 2 {
		t.Fatalf("got %d metrics, want the 2 of http", len(res.Metrics))
	}
	for _, m := range res.Metrics {
		if !(m.Median[kindRaw] > 0) || !(m.Median[kindOwner] > 0) || !(m.Ratio[kindOwner] > 0) {
			t.Errorf("%s: raw %v, owner %v, ratio %v; want all > 0", m.Key, m.Median[kindRaw], m.Median[kindOwner], m.Ratio[kindOwner])
		}
		for _, r := range m.Rounds {
			if _, ok := r[kindActor]; ok {
				t.Errorf("%s: the actor kind, which has no HTTP server, has a figure", m.Key)
			}
		}
	}
}
