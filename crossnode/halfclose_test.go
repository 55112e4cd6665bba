package crossnode

import (
	"bytes"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/internal/servertest"
)

// A request followed by a half-close (HTTP/1.0, nc -N) to a server whose
// connections are served by an owner-actor echo handler in another process
// is answered in full, then EOF: the owner closes after its echo.
func TestHandlerInAnotherProcessAnswersAHalfClosedRequestInFull(t *testing.T) {
	bin := buildTCPActor(t)
	_, handler, addr := serverAndHandler(t, bin)
	defer func() {
		if t.Failed() {
			t.Logf("handler output:\n%s", handler.output())
		}
	}()
	for _, size := range []int{1, 100, 64 << 10, 1 << 20} {
		servertest.HalfClosedEcho(t, addr, bytes.Repeat([]byte{'h'}, size), 20*time.Second)
	}
}
