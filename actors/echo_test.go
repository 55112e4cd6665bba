package actors

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/internal/testkit"
)

func TestEchoHandlerSlowsAClientThatDoesNotReadAndSkipsNothing(t *testing.T) {
	if os.Getenv(aloneEnv) == "" {
		runAlone(t) // it measures the process's heap
		return
	}
	total := int64(64 << 20)
	if testing.Short() {
		total = 16 << 20
	}
	sys := testkit.NewSystem(t)
	cc, sc := socketPair(t)
	base := heapInUse()
	conn := startConn(t, sys, sc, 1, nil, ConnectionConfig{Handler: EchoHandler()})

	written, sent := streamTo(cc, total, 3, 128<<10)

	// The client reads nothing: the echo's writes back up, its credit runs
	// out, the connection stops reading and TCP stops the client.
	if !waitStalled(written.Load) {
		t.Fatal("the client never stalled: the echo does not push back")
	}
	if w := written.Load(); w == total {
		t.Fatalf("the client wrote all %d bytes without reading any echo", total)
	}
	i := info(t, sys, conn)
	if held := i.BytesReceived - i.BytesSent; held > 4*DefaultReadChunkSize || i.BytesToWrite > 4*DefaultReadChunkSize {
		t.Fatalf("the echo holds %d bytes (%d queued) with 4 credits of %d", held, i.BytesToWrite, DefaultReadChunkSize)
	}
	if grew := heapInUse() - base; grew > heapBound {
		t.Fatalf("heap grew by %d bytes, bound %d", grew, heapBound)
	}

	// Now the client reads: everything comes back, in order, without a gap.
	_ = cc.SetReadDeadline(time.Now().Add(4 * connWait))
	h := sha256.New()
	if n, err := io.CopyN(h, cc, total); err != nil {
		t.Fatalf("read %d of %d echoed bytes: %v", n, total, err)
	}
	if want := <-sent; !bytes.Equal(h.Sum(nil), want) {
		t.Fatal("the echo differs from what was sent")
	}
}
