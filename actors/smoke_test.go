package actors

import (
	"testing"

	"github.com/tcpactor/tcpactor/internal/testkit"
)

func TestActorSystemStartsAndStopsWithoutLeaks(t *testing.T) {
	sys := testkit.NewSystem(t)
	if sys.Address() == "" {
		t.Fatal("actor system has no address")
	}
}
