package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/clusterkind"
	"github.com/tcpactor/tcpactor/internal/remotecfg"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/owner"
	"github.com/tcpactor/tcpactor/remotenode"
	"github.com/tcpactor/tcpactor/server"
)

// nodeConfig is what `tcpactor node` was asked to run.
type nodeConfig struct {
	remote      string
	clusterName string
	members     []string
	healthHost  string
	healthPort  int
	etcd        []string
	etcdPrefix  string
	etcdTLS     remotecfg.TLSFiles
	sec         remoteFlags
	refresh     time.Duration
	listen      string
	name        string
	handler     string
	target      string
	watch       string
	credit      int
	idle        time.Duration
	remoteAdmin bool
	debugAddr   string
	level       string
}

// node runs one member of a tcpactor deployment: a remote endpoint, and
// optionally cluster membership, a server, an owner-actor handler that
// serves a server on any node, and a watcher (a plain subscriber). It prints
// one machine-readable line per milestone: `remote on HOST:PORT`,
// `member of NAME`, `listening on HOST:PORT server=NAME`, and the events of
// its handler (`owner: ...`) and watcher (`watch: ...`).
func node(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseNode(args, stdout)
	if err != nil {
		return err
	}
	lvl, err := logLevel(cfg.level)
	if err != nil {
		return err
	}
	out := &linePrinter{w: stdout}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	sys := newSystem(stderr, lvl)
	// A cluster's Shutdown shuts its actor system down itself, and a second
	// ActorSystem.Shutdown panics (it closes a channel).
	defer func() {
		if !sys.IsStopped() {
			sys.Shutdown()
		}
	}()
	guard := remotenode.NewGuard(sys.Logger())
	n := &runningNode{cfg: cfg, sys: sys, out: out, guard: guard}
	defer n.stop()
	if err := n.start(); err != nil {
		return err
	}
	<-sigs
	return nil
}

func parseNode(args []string, stdout io.Writer) (*nodeConfig, error) {
	fs := newFlags("node", stdout)
	c := &nodeConfig{}
	fs.StringVar(&c.remote, "remote", "", "this node's remote `HOST:PORT` (required; port 0 picks one)")
	fs.StringVar(&c.clusterName, "cluster", "", "join the cluster `NAME`: automanaged provider (--members and --health-port) or etcd (--etcd)")
	members := fs.String("members", "", "automanaged health endpoints of all members, this one included: `HOST:PORT,...`")
	intVar(fs, &c.healthPort, "health-port", 0, 0, 65535, "`PORT` of this member's automanaged health endpoint (plain HTTP)")
	fs.StringVar(&c.healthHost, "health-host", "", "`HOST` the automanaged health endpoint binds to (default: the host of --remote)")
	etcd := fs.String("etcd", "", "etcd provider: the etcd cluster's client endpoints, `HOST:PORT,...`")
	fs.StringVar(&c.etcdPrefix, "etcd-prefix", "/tcpactor", "etcd provider: the key prefix under which members register")
	fs.StringVar(&c.etcdTLS.CertFile, "etcd-cert", "", "etcd provider: TLS to etcd with this client certificate, PEM `FILE` (needs --etcd-key and --etcd-ca)")
	fs.StringVar(&c.etcdTLS.KeyFile, "etcd-key", "", "etcd provider: the key of --etcd-cert, PEM `FILE`")
	fs.StringVar(&c.etcdTLS.CAFile, "etcd-ca", "", "etcd provider: the CA of etcd's server certificate, PEM `FILE`")
	fs.DurationVar(&c.refresh, "refresh", time.Second, "how often the automanaged provider polls the members")
	fs.StringVar(&c.listen, "listen", "", "run a server listening on `HOST:PORT`; in a cluster, this member hosts the server identity --name when the cluster places it here")
	fs.StringVar(&c.name, "name", "echo", "the server's actor name (HOST:PORT/NAME) or, in a cluster, its identity of kind tcpserver")
	fs.StringVar(&c.handler, "handler", "", "serve connections with owner actors on this node: echo or discard")
	fs.StringVar(&c.target, "server", "", "the server --handler serves: `HOST:PORT/NAME`, or in a cluster an identity (default: --name)")
	fs.StringVar(&c.watch, "watch", "", "subscribe a watcher that prints each NewConnection of a server (`HOST:PORT/NAME` or identity)")
	intVar(fs, &c.credit, "credit", 0, 0, math.MaxInt32, "initial credit of each claim (`N` Received in flight); 0 = the server's default")
	fs.DurationVar(&c.idle, "idle-timeout", 0, "the server closes connections idle this long; 0 = never")
	fs.BoolVar(&c.remoteAdmin, "remote-admin", false, "let remote nodes send the server administrative requests (Listen, Close, SetProxy, pause/resume, ...); off, they are refused")
	fs.StringVar(&c.debugAddr, "debug-addr", "", "serve /status and net/http/pprof on `HOST:PORT` (for tests and diagnosis)")
	fs.StringVar(&c.level, "log-level", "error", "log level of stderr: debug, info, warn, error")
	c.sec.add(fs)
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if c.remote == "" {
		return nil, badUsage("--remote HOST:PORT is required")
	}
	host, port, err := hostPort("remote", c.remote)
	if err != nil {
		return nil, err
	}
	if err := c.sec.check("remote", host, port); err != nil {
		return nil, err
	}
	if *members != "" {
		c.members = strings.Split(*members, ",")
	}
	if *etcd != "" {
		c.etcd = strings.Split(*etcd, ",")
		for _, e := range c.etcd {
			if _, _, err := hostPort("etcd", e); err != nil {
				return nil, err
			}
		}
	}
	if c.etcdTLS.Set() {
		if len(c.etcd) == 0 {
			return nil, badUsage("--etcd-cert, --etcd-key and --etcd-ca need --etcd")
		}
		if _, _, err := c.etcdTLS.Configs(); err != nil {
			return nil, badUsage("etcd TLS: %v", err)
		}
	}
	if c.healthHost == "" {
		c.healthHost = host
	}
	automanaged := len(c.members) > 0 || c.healthPort > 0
	switch {
	case c.clusterName != "" && automanaged && len(c.etcd) > 0:
		return nil, badUsage("--cluster: choose one provider, automanaged (--members, --health-port) or etcd (--etcd)")
	case c.clusterName != "" && len(c.etcd) == 0 && (len(c.members) == 0 || c.healthPort <= 0):
		return nil, badUsage("--cluster needs --members and --health-port (automanaged) or --etcd")
	case c.clusterName == "" && (automanaged || len(c.etcd) > 0):
		return nil, badUsage("--members, --health-port and --etcd need --cluster")
	case c.handler != "" && c.target == "" && c.listen == "" && c.clusterName == "":
		return nil, badUsage("--handler needs --server (or a server of this node: --listen)")
	case c.remoteAdmin && c.listen == "":
		return nil, badUsage("--remote-admin needs a server of this node (--listen)")
	}
	if c.handler != "" {
		if _, err := owner.HandlerByName(c.handler); err != nil {
			return nil, badUsage("--handler: %v", err)
		}
	}
	if c.listen != "" {
		if _, err := messages.ParseListen(c.listen); err != nil {
			return nil, badUsage("--listen %v", err)
		}
	}
	return c, nil
}

// runningNode holds what node started, to stop it in reverse.
type runningNode struct {
	cfg   *nodeConfig
	sys   *actor.ActorSystem
	out   *linePrinter
	guard *remotenode.Guard
	rem   *remote.Remote
	cl    *cluster.Cluster
	stops []func()
	debug *http.Server

	topoMu sync.Mutex
	topo   *cluster.ClusterTopology // the last topology the member published
}

func (n *runningNode) start() error {
	host, port, err := hostPort("remote", n.cfg.remote)
	if err != nil {
		return err
	}
	if err := probeListen(host, port); err != nil {
		return err
	}
	rcfg, err := n.cfg.sec.config(n.guard, host, port)
	if err != nil {
		return err
	}
	// Before the remote starts: the cluster resolves its members' PIDs
	// while the member joins, and a PID keeps what it first resolved to.
	if err := n.cfg.sec.installStream(n.sys); err != nil {
		return err
	}
	if n.cfg.clusterName != "" {
		provider, err := n.provider()
		if err != nil {
			return err
		}
		var kinds []*cluster.Kind
		if n.cfg.listen != "" {
			kinds = append(kinds, clusterkind.Kind(n.clusterServerConfig()))
		}
		n.cl = cluster.New(n.sys, cluster.Configure(n.cfg.clusterName, provider, disthash.New(), rcfg,
			cluster.WithKinds(kinds...)))
		n.sys.EventStream.Subscribe(func(ev any) {
			if t, ok := ev.(*cluster.ClusterTopology); ok {
				n.topoMu.Lock()
				n.topo = t
				n.topoMu.Unlock()
			}
		})
		if err := startMember(n.cl); err != nil {
			n.cl = nil // half started: its graceful shutdown would only fail again
			return err
		}
		n.rem = n.cl.Remote
	} else {
		n.rem = remote.NewRemote(n.sys, rcfg)
		n.rem.Start()
	}
	n.guard.Started(n.sys)
	if err := listenStream(n.sys); err != nil {
		return err
	}
	n.out.printf("remote on %s", n.sys.Address())
	if n.cl != nil {
		n.out.printf("member of %s", n.cfg.clusterName)
	}
	if n.cfg.debugAddr != "" {
		if err := n.startDebug(); err != nil {
			return err
		}
	}
	if err := n.startServer(); err != nil {
		return err
	}
	if err := n.startHandler(); err != nil {
		return err
	}
	return n.startWatcher()
}

// serverOptions are the options of the server --listen runs, alone or as
// the cluster's activations.
func (n *runningNode) serverOptions() server.Options {
	opts := server.Options{AllowRemoteAdmin: n.cfg.remoteAdmin}
	opts.Connection.IdleTimeout = n.cfg.idle
	return opts
}

func (n *runningNode) clusterServerConfig() clusterkind.Config {
	opts := n.serverOptions()
	return clusterkind.Config{
		Options: opts,
		Listen:  clusterkind.ListenTable(map[string]string{n.cfg.name: n.cfg.listen}),
		OnListen: func(identity string, r *messages.ListenResult) {
			if r.Ok {
				n.out.printf("listening on %s server=%s", net.JoinHostPort(r.Address, strconv.Itoa(int(r.Port))), identity)
			} else {
				n.out.printf("listen failed server=%s: %s", identity, r.Error.GetMessage())
			}
		},
	}
}

// startServer runs --listen: a named ServerActor, or in a cluster the
// activations of the server identity, kept activated from here.
func (n *runningNode) startServer() error {
	if n.cfg.listen == "" {
		return nil
	}
	if n.cl != nil {
		n.stops = append(n.stops, clusterkind.KeepActivated(n.cl, []string{n.cfg.name}, 0))
		return nil
	}
	srv, err := server.SpawnNamed(n.sys, n.cfg.name, n.serverOptions())
	if err != nil {
		return err
	}
	n.stops = append(n.stops, func() { _ = srv.Stop() })
	l, _ := messages.ParseListen(n.cfg.listen)
	ctx, cancel := context.WithTimeout(context.Background(), server.DefaultTimeout)
	defer cancel()
	addr, bound, err := srv.Listen(ctx, l.Address, uint16(l.Port), nil)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", n.cfg.listen, err)
	}
	n.out.printf("listening on %s server=%s", net.JoinHostPort(addr, strconv.Itoa(int(bound))), srv.PID())
	return nil
}

// target is the server --handler or --watch names: a PID (HOST:PORT/NAME),
// or in a cluster an identity.
func (n *runningNode) target(v string) (pid *actor.PID, identity string, err error) {
	if v == "" {
		v = n.cfg.name
		if n.cl == nil {
			return actor.NewPID(n.sys.Address(), v), "", nil
		}
	}
	if strings.Contains(v, "/") {
		pid, err := serverPID("server", v)
		return pid, "", err
	}
	if n.cl == nil {
		return nil, "", badUsage("server %q: outside a cluster, name it HOST:PORT/NAME", v)
	}
	return nil, v, nil
}

func (n *runningNode) startHandler() error {
	if n.cfg.handler == "" {
		return nil
	}
	pid, identity, err := n.target(n.cfg.target)
	if err != nil {
		return err
	}
	h, _ := owner.HandlerByName(n.cfg.handler)
	cfg := owner.Config{Server: pid, Handler: h, Notify: func(line string) { n.out.printf("owner: %s", line) }}
	if n.cfg.credit > 0 {
		cfg.Claim = &messages.ClaimOptions{InitialCredit: int32(n.cfg.credit)}
	}
	owner, err := n.sys.Root.SpawnNamed(owner.New(cfg), "owner")
	if err != nil {
		return err
	}
	n.stops = append(n.stops, func() { _ = n.sys.Root.StopFuture(owner).Wait() })
	if identity != "" {
		n.stops = append(n.stops, clusterkind.KeepSubscribed(n.cl, owner, []string{clusterkind.TopicOf(identity)}, 0))
		n.out.printf("handler on topic %s", clusterkind.TopicOf(identity))
	} else {
		n.out.printf("handler on %s", pid)
	}
	return nil
}

func (n *runningNode) startWatcher() error {
	if n.cfg.watch == "" {
		return nil
	}
	pid, identity, err := n.target(n.cfg.watch)
	if err != nil {
		return err
	}
	w, err := n.sys.Root.SpawnNamed(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.NewConnection:
			n.out.printf("watch: new connection %s peer=%s:%d", m.Connection, m.Info.GetPeerAddress(), m.Info.GetPeerPort())
		case *actor.Terminated:
			n.out.printf("watch: lost server %s: %s", m.Who, m.Why)
		}
	}), "watcher")
	if err != nil {
		return err
	}
	n.stops = append(n.stops, func() { _ = n.sys.Root.StopFuture(w).Wait() })
	if identity != "" {
		n.stops = append(n.stops, clusterkind.KeepSubscribedToServer(n.cl, identity, w, 0))
		n.out.printf("watching %s", identity)
		return nil
	}
	res, err := n.sys.Root.RequestFuture(pid, &messages.Subscribe{Subscriber: w, SubscriberStartId: actors.StartID(n.sys)}, server.DefaultTimeout).Result()
	if ack, ok := res.(*messages.Ack); err != nil || !ok || ack.Error.Failed() {
		return fmt.Errorf("subscribe to %s: %v %v", pid, res, err)
	}
	n.out.printf("watching %s", pid)
	return nil
}

// nodeStatus is what /status reports.
type nodeStatus struct {
	Goroutines     int    `json:"goroutines"`
	Address        string `json:"address"`
	DroppedRemote  uint64 `json:"dropped_remote_messages"`
	RecoveredPanic uint64 `json:"recovered_remote_panics"`
	// Messages of tcpactor's protocol the remote (gRPC) delivered; with
	// --remote-stream on both nodes, the streams carry them instead.
	RemoteProtocol uint64 `json:"remote_protocol_messages"`
	// Messages from remote peers refused or dropped, by reason, on either
	// lane (the remote or the streams): the /metrics counter of serve.
	RemoteRefused map[string]uint64 `json:"remote_refused"`
	// With --remote-stream: messages this node's streams sent and received.
	StreamAddress  string `json:"stream_address,omitempty"`
	StreamSent     uint64 `json:"stream_sent,omitempty"`
	StreamReceived uint64 `json:"stream_received,omitempty"`
	// In a cluster: this member's view of it (for diagnosis).
	Cluster *clusterStatus `json:"cluster,omitempty"`
}

// clusterStatus is a member's view of its cluster: the members it counts,
// the member ids it has blocked, and where it believes the identities it
// uses live (its PID cache). Two members that disagree on an identity's
// PID send to different activations.
type clusterStatus struct {
	ID      string            `json:"id"`
	Members []string          `json:"members"`
	Blocked []string          `json:"blocked,omitempty"`
	Cached  map[string]string `json:"cached,omitempty"`
}

func (n *runningNode) clusterStatus() *clusterStatus {
	if n.cl == nil {
		return nil
	}
	st := &clusterStatus{ID: n.sys.ID, Cached: map[string]string{}}
	n.topoMu.Lock()
	if n.topo != nil {
		for _, m := range n.topo.Members {
			st.Members = append(st.Members, fmt.Sprintf("%s %s %v", m.Address(), m.Id, m.Kinds))
		}
	}
	n.topoMu.Unlock()
	st.Blocked = n.cl.GetBlockedMembers().ToSlice()
	for _, id := range []string{n.cfg.name, n.cfg.target, n.cfg.watch} {
		if id == "" || strings.Contains(id, "/") {
			continue
		}
		for _, ik := range [][2]string{{id, clusterkind.Name}, {clusterkind.TopicOf(id), cluster.TopicActorKind}} {
			if pid, ok := n.cl.PidCache.Get(ik[0], ik[1]); ok {
				st.Cached[ik[1]+"/"+ik[0]] = pid.Address + "/" + pid.Id
			}
		}
	}
	return st
}

func (n *runningNode) startDebug() error {
	ln, err := net.Listen("tcp", n.cfg.debugAddr)
	if err != nil {
		return fmt.Errorf("--debug-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		st := nodeStatus{
			Goroutines: runtime.NumGoroutine(), Address: n.sys.Address(),
			DroppedRemote: n.guard.Dropped(), RecoveredPanic: n.guard.Recovered(), RemoteProtocol: n.guard.Protocol(),
			RemoteRefused: actors.RemoteRefusals(),
		}
		if t := remotenode.StreamOf(n.sys); t != nil {
			st.StreamAddress, st.StreamSent, st.StreamReceived = t.Address(), t.Sent(), t.Received()
		}
		st.Cluster = n.clusterStatus()
		_ = json.NewEncoder(w).Encode(st)
	})
	n.debug = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = n.debug.Serve(ln) }()
	n.out.printf("debug on %s", ln.Addr())
	return nil
}

func (n *runningNode) stop() {
	for i := len(n.stops) - 1; i >= 0; i-- {
		n.stops[i]()
	}
	if n.debug != nil {
		_ = n.debug.Close()
	}
	stopStream(n.sys)
	switch {
	case n.cl != nil:
		// Bounded: the etcd provider deregisters with a request that has
		// no deadline, which waits forever when etcd is gone; the process
		// is exiting, and the lease ends the registration anyway.
		done := make(chan struct{})
		go func() {
			defer close(done)
			remotenode.ShutdownCluster(n.cl, true)
		}()
		select {
		case <-done:
		case <-time.After(clusterShutdownTimeout):
			n.sys.Logger().Warn("tcpactor node: the cluster did not shut down in time; exiting anyway", "after", clusterShutdownTimeout)
		}
	case n.rem != nil:
		remotenode.Shutdown(n.rem, true)
	}
}

// clusterShutdownTimeout bounds a member's graceful leave (Proto.Actor's
// cluster alone sleeps ~2 s in it).
const clusterShutdownTimeout = 10 * time.Second

// probeListen checks that host:port is free: remote.Start panics otherwise.
func probeListen(host string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
	}
	return l.Close()
}

// linePrinter writes whole lines from any goroutine.
type linePrinter struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *linePrinter) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}
