package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/internal/servertest"
	"github.com/tcpactor/tcpactor/server"
)

// testCtx bounds a test's calls.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond every 5 ms for up to 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// noConnectionsLeft waits until the server has no live connection: every
// Conn released its ConnectionActor.
func noConnectionsLeft(t testing.TB, srv *server.Server) {
	t.Helper()
	eventually(t, "every connection to end", func() bool {
		st, err := srv.Status(testCtx(t))
		return err == nil && st.Active == 0
	})
}

func itoa(p uint16) string { return fmt.Sprint(p) }

var (
	listening = servertest.Listening
	viewFrom  = servertest.ViewFrom
	dial      = servertest.Dial
)
