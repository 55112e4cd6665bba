// Command tcpactor-soak holds thousands of live connections to a tcpactor
// server for a while, with echo traffic and churn, and checks that the
// server comes through whole: every echo byte-exact, no failure, and its
// goroutines and descriptors back to what they were before the load once
// the clients are gone. It reports the peaks (RSS, goroutines,
// descriptors) on the way.
//
// Two phases, each against server nodes in child processes of their own
// (this binary, `tcpactor-soak node`), so that what is measured is the
// server's and not the load's:
//
//   - local: a ServerActor whose connections are served by the local echo
//     handler (--conns, --churn, --rate);
//   - remote: a ServerActor on one node, its connections claimed and echoed
//     by an owner actor (owner.Echo) on a second node over
//     Proto.Actor remote (--remote-conns, --remote-churn, --remote-rate).
//
// `make soak` runs it for 60 s a phase; CI runs `make soak SOAK_DURATION=10s`.
// It exits 1 when anything failed.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "node" {
		if err := runNode(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "tcpactor-soak node:", err)
			os.Exit(1)
		}
		return
	}
	ok, err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcpactor-soak:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// goroutineSlack is how many goroutines above its baseline a node may keep
// after the load: Proto.Actor's dead-letter throttle and gRPC keep a
// goroutine or two for a while after traffic.
const goroutineSlack = 3

// settle bounds the wait for a node to drop its connections and return to
// its baseline after the load.
const settle = 60 * time.Second

type phaseReport struct {
	Name     string        `json:"name"`
	Load     loadResult    `json:"load"`
	Config   phaseConfig   `json:"config"`
	Nodes    []*nodeReport `json:"nodes"`
	Problems []string      `json:"problems"`
}

type phaseConfig struct {
	Conns    int           `json:"conns"`
	Churn    float64       `json:"churn_per_s"`
	Rate     float64       `json:"echoes_per_s"`
	Duration time.Duration `json:"duration_ns"`
}

type nodeReport struct {
	Role  string    `json:"role"`
	Base  nodeStats `json:"base"`  // before the load, after a GC
	Peak  nodeStats `json:"peak"`  // the largest of each figure sampled during the load
	After nodeStats `json:"after"` // after the load, the clients gone, after a GC
}

func run(args []string, stdout, stderr io.Writer) (bool, error) {
	stderr = &lockedWriter{w: stderr} // the nodes' stderr goes there too
	fs := flag.NewFlagSet("tcpactor-soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 60*time.Second, "how long each phase holds its load, once its connections are open")
	conns := fs.Int("conns", 10000, "local phase: connections held open")
	churn := fs.Float64("churn", 200, "local phase: connections replaced per second")
	rate := fs.Float64("rate", 2000, "local phase: echoes per second over all connections")
	rconns := fs.Int("remote-conns", 1000, "remote phase: connections held open")
	rchurn := fs.Float64("remote-churn", 200, "remote phase: connections replaced per second")
	rrate := fs.Float64("remote-rate", 500, "remote phase: echoes per second over all connections")
	maxMsg := fs.Int("max-msg", 512, "largest echo message in bytes (each is 1..max-msg random bytes)")
	phases := fs.String("phases", "local,remote", "phases to run: local, remote or both")
	jsonOut := fs.String("json", "", "also write the results as JSON to `FILE`")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	if *duration <= 0 || *conns < 1 || *rconns < 1 || *rate <= 0 || *rrate <= 0 || *churn < 0 || *rchurn < 0 || *maxMsg < 1 {
		return false, errors.New("--duration, --conns, --rate and --max-msg must be positive, --churn at least 0")
	}
	if err := checkDescriptors(max(*conns, *rconns)); err != nil {
		return false, err
	}
	var reports []*phaseReport
	for _, p := range strings.Split(*phases, ",") {
		var r *phaseReport
		var err error
		switch p {
		case "local":
			r, err = runPhase("local handler", loadConfig{conns: *conns, churn: *churn, rate: *rate, duration: *duration, maxMsg: *maxMsg}, stderr, false)
		case "remote":
			r, err = runPhase("owner on a second node", loadConfig{conns: *rconns, churn: *rchurn, rate: *rrate, duration: *duration, maxMsg: *maxMsg}, stderr, true)
		default:
			return false, fmt.Errorf("--phases: unknown phase %q", p)
		}
		if err != nil {
			return false, err
		}
		printPhase(stdout, r)
		reports = append(reports, r)
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(reports, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return false, err
		}
	}
	ok := true
	for _, r := range reports {
		ok = ok && len(r.Problems) == 0
	}
	return ok, nil
}

// checkDescriptors: Go raises the soft descriptor limit to the hard one at
// start; the load needs one per connection and some room for churn.
func checkDescriptors(conns int) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return err
	}
	if need := uint64(conns + 1000); rl.Cur < need {
		return fmt.Errorf("%d connections need about %d descriptors; the limit is %d (raise the hard limit: ulimit -Hn)", conns, need, rl.Cur)
	}
	return nil
}

// runPhase starts the nodes, measures them, runs the load, and checks that
// they come back to their baseline.
func runPhase(name string, cfg loadConfig, stderr io.Writer, remote bool) (*phaseReport, error) {
	var nodes []*node
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			_ = nodes[i].Stop()
		}
	}()
	role := roleServer
	if remote {
		role = roleRemoteServer
	}
	srv, err := startNode(role, stderr)
	if err != nil {
		return nil, err
	}
	nodes = append(nodes, srv)
	if remote {
		if len(srv.ready) < 2 {
			return nil, fmt.Errorf("the remote-server node said %q", srv.ready)
		}
		h, err := startNode(roleHandler, stderr, "--server", srv.ready[1])
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, h)
	}
	cfg.addr = srv.tcpAddr()
	r := &phaseReport{Name: name, Config: phaseConfig{cfg.conns, cfg.churn, cfg.rate, cfg.duration}}
	for _, n := range nodes {
		if err := n.GC(); err != nil {
			return nil, err
		}
		base, err := n.stats()
		if err != nil {
			return nil, err
		}
		r.Nodes = append(r.Nodes, &nodeReport{Role: n.role, Base: base, Peak: base})
	}

	// Sample the nodes every second while the load runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for i, n := range nodes {
					if st, err := n.stats(); err == nil {
						r.Nodes[i].Peak = peak(r.Nodes[i].Peak, st)
					}
				}
			}
		}
	}()
	fmt.Fprintf(stderr, "soak %s: %d connections, %.0f/s churn, %.0f echoes/s, %v...\n", name, cfg.conns, cfg.churn, cfg.rate, cfg.duration)
	r.Load = runLoad(cfg)
	close(stop)
	wg.Wait()

	// The clients are gone: every node must let go of everything.
	for i, n := range nodes {
		after, err := settleNode(n, r.Nodes[i].Base)
		if err != nil {
			return nil, err
		}
		after.HWM = max(after.HWM, r.Nodes[i].Peak.HWM)
		r.Nodes[i].Peak = peak(r.Nodes[i].Peak, after)
		r.Nodes[i].After = after
	}
	r.Problems = problems(r, cfg)
	return r, nil
}

// settleNode waits until a node has no connection left and its goroutines
// and descriptors are back to base (or settle has passed), and returns its
// stats then.
func settleNode(n *node, base nodeStats) (nodeStats, error) {
	deadline := time.Now().Add(settle)
	for {
		st, err := n.stats()
		if err != nil {
			return st, err
		}
		if st.Active == 0 {
			if err := n.GC(); err != nil {
				return st, err
			}
			if st, err = n.stats(); err != nil {
				return st, err
			}
			if st.Goroutines <= base.Goroutines+goroutineSlack && st.FDs <= base.FDs {
				return st, nil
			}
		}
		if time.Now().After(deadline) {
			return st, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func peak(a, b nodeStats) nodeStats {
	return nodeStats{Goroutines: max(a.Goroutines, b.Goroutines), FDs: max(a.FDs, b.FDs), RSS: max(a.RSS, b.RSS),
		HWM: max(a.HWM, b.HWM), Heap: max(a.Heap, b.Heap), Active: max(a.Active, b.Active), Accepted: max(a.Accepted, b.Accepted)}
}

func problems(r *phaseReport, cfg loadConfig) []string {
	var p []string
	l := r.Load
	if l.Held < cfg.conns {
		p = append(p, fmt.Sprintf("only %d of %d connections opened", l.Held, cfg.conns))
	}
	if l.Mismatches > 0 {
		p = append(p, fmt.Sprintf("%d echoes came back different", l.Mismatches))
	}
	if l.Errors > 0 {
		p = append(p, fmt.Sprintf("%d failures, the first: %s", l.Errors, l.FirstError))
	}
	if l.Echoes == 0 {
		p = append(p, "no echo at all")
	}
	for _, n := range r.Nodes {
		if n.After.Active != 0 {
			p = append(p, fmt.Sprintf("%s node: %d connections still live after the clients left", n.Role, n.After.Active))
		}
		if n.After.Goroutines > n.Base.Goroutines+goroutineSlack {
			p = append(p, fmt.Sprintf("%s node: %d goroutines after the load, %d before", n.Role, n.After.Goroutines, n.Base.Goroutines))
		}
		if n.After.FDs > n.Base.FDs {
			p = append(p, fmt.Sprintf("%s node: %d descriptors after the load, %d before", n.Role, n.After.FDs, n.Base.FDs))
		}
	}
	return p
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func printPhase(w io.Writer, r *phaseReport) {
	l := r.Load
	fmt.Fprintf(w, "\n## %s: %d connections, %.0f conn/s churn, %.0f echoes/s, %v\n\n", r.Name, r.Config.Conns, r.Config.Churn, r.Config.Rate, r.Config.Duration)
	fmt.Fprintf(w, "| | |\n|---|---|\n")
	fmt.Fprintf(w, "| connections held | %d (opened in %.1f s) |\n", l.Held, l.Ramp.Seconds())
	fmt.Fprintf(w, "| churn | %d opened, %d closed in %.1f s (%.0f conn/s) |\n", l.Opened, l.Closed, l.Ran.Seconds(), float64(l.Opened)/l.Ran.Seconds())
	fmt.Fprintf(w, "| echoes, each checked byte for byte | %d (%s each way), %d mismatches, %d failures |\n", l.Echoes, mib(l.Bytes), l.Mismatches, l.Errors)
	for _, n := range r.Nodes {
		fmt.Fprintf(w, "| %s node: peak RSS (VmHWM) / heap | %s / %s |\n", n.Role, mib(n.Peak.HWM), mib(n.Peak.Heap))
		fmt.Fprintf(w, "| %s node: peak goroutines / descriptors / live connections | %d / %d / %d |\n", n.Role, n.Peak.Goroutines, n.Peak.FDs, n.Peak.Active)
		fmt.Fprintf(w, "| %s node: goroutines / descriptors / heap / RSS, before → after | %d → %d / %d → %d / %s → %s / %s → %s |\n", n.Role,
			n.Base.Goroutines, n.After.Goroutines, n.Base.FDs, n.After.FDs, mib(n.Base.Heap), mib(n.After.Heap), mib(n.Base.RSS), mib(n.After.RSS))
	}
	if len(r.Problems) == 0 {
		fmt.Fprintf(w, "| result | **pass** |\n")
	} else {
		fmt.Fprintf(w, "| result | **FAIL**: %s |\n", strings.Join(r.Problems, "; "))
	}
}

// lockedWriter lets the nodes (through exec's copying goroutines) and the
// soak write to one stderr.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
