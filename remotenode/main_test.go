package remotenode_test

import (
	"os"
	"testing"

	"github.com/tcpactor/tcpactor/internal/testkit"
	_ "github.com/tcpactor/tcpactor/internal/testkit/remotestream" // the shared nodes run remotenode.Stream
)

func TestMain(m *testing.M) {
	// This package's shared remote nodes always run the stream transport
	// (its tests are about it); other packages run it on demand.
	os.Setenv(testkit.RemoteEnv, "stream")
	testkit.RunTests(m)
}
