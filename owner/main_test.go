package owner_test

import (
	"testing"

	"github.com/tcpactor/tcpactor/internal/testkit"
	_ "github.com/tcpactor/tcpactor/internal/testkit/remotestream" // TCPACTOR_REMOTE=stream
)

func TestMain(m *testing.M) { testkit.RunTests(m) }
