package actors

import (
	"testing"

	"github.com/tcpactor/tcpactor/internal/testkit"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testkit.LeakOptions()...)
}
