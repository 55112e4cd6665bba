// Package remotecfg holds the gRPC client settings every tcpactor remote node
// uses, shared by the server package and the test kit.
package remotecfg

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// DialTimeout bounds one attempt of the remote's endpoint writer to reach a
// peer node.
const DialTimeout = 500 * time.Millisecond

// DialOptions replace the pinned Proto.Actor remote's default dial options
// (insecure, non-blocking). Its endpoint writer dials a peer up to five times
// and, when an attempt fails after the dial (a peer that is gone refuses the
// stream), overwrites its gRPC connection without closing it: each such
// connection then reconnects forever in the background, a leak per failed
// attempt. A blocking dial with a time-out fails inside grpc.Dial instead,
// which closes the connection itself.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithBlock(),
		grpc.WithTimeout(DialTimeout), //nolint:staticcheck // the pinned remote calls grpc.Dial, which has no context
	}
}
