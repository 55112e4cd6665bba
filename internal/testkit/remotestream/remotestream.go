// Package remotestream lets a test binary's shared remote nodes
// (testkit.Remote) run remotenode.Stream when TCPACTOR_REMOTE=stream:
// import it for its side effect in the package's TestMain file.
package remotestream

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/remotenode"
)

func init() {
	testkit.StreamStarter = func(sys *actor.ActorSystem) (func(), error) {
		t, err := remotenode.Stream{}.Start(sys)
		if err != nil {
			return nil, err
		}
		return t.Stop, nil
	}
}
