// Package crossnode tests tcpactor across nodes: remote owners in one
// process (the shared testkit remote nodes), and clusters of `tcpactor node`
// processes that lose members to kill -9.
package crossnode

import (
	"testing"

	"github.com/tcpactor/tcpactor/internal/testkit"
	_ "github.com/tcpactor/tcpactor/internal/testkit/remotestream" // TCPACTOR_REMOTE=stream
)

func TestMain(m *testing.M) { testkit.RunTests(m) }
