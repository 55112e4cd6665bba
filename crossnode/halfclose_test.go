package crossnode

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
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
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		req := bytes.Repeat([]byte{'h'}, size)
		go func() {
			_, _ = c.Write(req)
			_ = c.(*net.TCPConn).CloseWrite()
		}()
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || !bytes.Equal(got, req) {
			t.Fatalf("request of %d bytes then a half-close: the echo was %d bytes, %v", size, len(got), err)
		}
	}
}
