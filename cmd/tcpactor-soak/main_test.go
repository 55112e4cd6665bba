package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcpactor/tcpactor/internal/testkit"
)

func TestMain(m *testing.M) {
	// The soak runs its nodes as this binary with "node": in a test, that
	// is the test binary.
	if len(os.Args) > 1 && os.Args[1] == "node" {
		if err := runNode(os.Args[2:]); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	testkit.RunTests(m)
}

// TestASmallSoakPassesAndReportsEveryFigure runs both phases with a few
// connections for a second: every echo comes back, both nodes return to
// their baseline, and the report has the figures the README quotes.
func TestASmallSoakPassesAndReportsEveryFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three node processes")
	}
	out := filepath.Join(t.TempDir(), "soak.json")
	var stdout bytes.Buffer
	var stderr lockedWriter
	var errBuf bytes.Buffer
	stderr.w = &errBuf
	ok, err := run([]string{"--duration", "1s", "--conns", "60", "--churn", "20", "--rate", "60",
		"--remote-conns", "20", "--remote-churn", "10", "--remote-rate", "20", "--json", out}, &stdout, &stderr)
	if err != nil || !ok {
		t.Fatalf("soak: ok %t, err %v\n%s\n%s", ok, err, stdout.String(), errBuf.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var reports []phaseReport
	if err := json.Unmarshal(b, &reports); err != nil {
		t.Fatal(err)
	}
	if len(reports) != 2 || len(reports[0].Nodes) != 1 || len(reports[1].Nodes) != 2 {
		t.Fatalf("want the local phase with one node and the remote phase with two:\n%s", b)
	}
	for _, r := range reports {
		if r.Load.Held != r.Config.Conns || r.Load.Echoes == 0 || r.Load.Opened == 0 {
			t.Errorf("%s: held %d of %d, %d echoes, %d churned", r.Name, r.Load.Held, r.Config.Conns, r.Load.Echoes, r.Load.Opened)
		}
		for _, n := range r.Nodes {
			// The handler node holds no socket of the load: only the
			// server node's descriptors grow with it.
			if n.Peak.Active < int64(r.Config.Conns/2) || n.Peak.HWM == 0 || (n.Role != roleHandler && n.Peak.FDs <= n.Base.FDs) {
				t.Errorf("%s, %s node: peaks %+v do not show the load (base %+v)", r.Name, n.Role, n.Peak, n.Base)
			}
		}
	}
	if !strings.Contains(stdout.String(), "**pass**") {
		t.Errorf("report:\n%s", stdout.String())
	}
}

// TestTheSoakFailsWhenTheServerIsGone points the load at a port where
// nothing listens: the run must report failures, not pass.
func TestTheSoakFailsWhenTheServerIsGone(t *testing.T) {
	res := runLoad(loadConfig{addr: "127.0.0.1:1", conns: 3, churn: 10, rate: 10, duration: 200 * 1e6, maxMsg: 8})
	r := &phaseReport{Load: res}
	if p := problems(r, loadConfig{conns: 3}); len(p) == 0 {
		t.Fatalf("a load against no server reported no problem: %+v", res)
	}
}
