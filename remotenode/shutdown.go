package remotenode

import (
	"strings"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
)

// Shutdown is r.Shutdown(graceful) without the pinned remote's panic at a
// graceful shutdown: its endpoint manager tells every endpoint reader to
// leave by sending on the reader's channel, and a reader whose stream has
// just ended closes that channel before it leaves the manager's map — the
// send panics ("send on closed channel") and takes the process down. The
// panic happens in the endpoint manager's stop, before the gRPC server is
// stopped; here it is recovered and the server stopped at once
// (Shutdown(false)), which ends the streams the manager had not reached.
func Shutdown(r *remote.Remote, graceful bool) {
	if recovered := stopping(func() { r.Shutdown(graceful) }); recovered {
		r.Shutdown(false)
	}
}

// ShutdownCluster is c.Shutdown(graceful) with the same remedy: the cluster
// shuts its remote down last.
func ShutdownCluster(c *cluster.Cluster, graceful bool) {
	if recovered := stopping(func() { c.Shutdown(graceful) }); recovered {
		c.Remote.Shutdown(false)
	}
}

// stopping runs stop and recovers only the endpoint manager's send on a
// closed channel; any other panic goes on.
func stopping(stop func()) (recovered bool) {
	defer func() {
		if p := recover(); p != nil {
			if err, ok := p.(error); ok && strings.Contains(err.Error(), "send on closed channel") {
				recovered = true
				return
			}
			panic(p)
		}
	}()
	stop()
	return false
}
