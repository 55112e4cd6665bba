package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	"github.com/labstack/echo"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// etcdDialTimeout bounds the first connection to etcd: a member that cannot
// reach it says so and exits instead of waiting.
const etcdDialTimeout = 5 * time.Second

// provider is the cluster provider the flags name: etcd (--etcd) or
// automanaged (--members, --health-port).
func (n *runningNode) provider() (cluster.ClusterProvider, error) {
	if len(n.cfg.etcd) > 0 {
		cfg := clientv3.Config{
			Endpoints:   n.cfg.etcd,
			DialTimeout: etcdDialTimeout,
			Logger:      zap.NewNop(), // etcd's client logs JSON to stderr by default
			// Without a blocking dial, New returns at once and the
			// provider's first request (which has no deadline) waits
			// forever for an etcd it cannot reach or that refuses it.
			DialOptions: []grpc.DialOption{grpc.WithBlock()},
		}
		if n.cfg.etcdTLS.Set() {
			// etcd checks the client certificate (--client-cert-auth);
			// the member checks etcd's against the CA.
			_, cli, err := n.cfg.etcdTLS.Configs()
			if err != nil {
				return nil, err
			}
			cli.MinVersion = tls.VersionTLS12 // etcd 3.4 and 3.5 speak TLS 1.2 and 1.3
			cfg.TLS = cli
		}
		p, err := etcd.NewWithConfig(n.cfg.etcdPrefix, cfg)
		if err != nil {
			return nil, fmt.Errorf("etcd at %s: no connection within %v (unreachable, or it refused this member): %w", strings.Join(n.cfg.etcd, ","), etcdDialTimeout, err)
		}
		return p, nil
	}
	return n.automanaged()
}

// automanaged is Proto.Actor's automanaged provider, as pollingProvider
// polls it, with its health endpoint bound to --health-host (the provider
// itself binds 0.0.0.0, every interface). Echo's StartServer serves on the
// echo's Listener when one is set, so the listener bound here is the one it
// serves on. The /_health answer is the provider's own (automanaged.NewNode
// of this member), so members of both kinds poll each other.
func (n *runningNode) automanaged() (cluster.ClusterProvider, error) {
	addr := net.JoinHostPort(n.cfg.healthHost, strconv.Itoa(n.cfg.healthPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--health-host/--health-port: %w", err)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Listener = ln
	e.Logger.SetOutput(io.Discard)
	e.StdLogger = slog.NewLogLogger(n.sys.Logger().Handler(), slog.LevelWarn)
	e.GET("/_health", func(c echo.Context) error {
		host, port, err := n.sys.GetHostPort()
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, automanaged.NewNode(n.cfg.clusterName, n.sys.ID, host, port,
			n.cfg.healthPort, n.cl.GetClusterKinds()))
	})
	n.stops = append(n.stops, func() { _ = e.Close() })
	return newPollingProvider(n.cfg.refresh, func() error { return e.Start("") }, n.cfg.members...), nil
}

// startMember is cluster.StartMember, whose provider errors are panics.
func startMember(c *cluster.Cluster) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("join the cluster: %v", r)
		}
	}()
	c.StartMember()
	return nil
}
