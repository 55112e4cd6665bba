package actors

import (
	"io"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/internal/testkit"
)

// TestAnEchoRoundTripAllocatesNothing: a 64-byte message echoed by a
// Handler costs the server no allocation, in either read mode — the read's
// callback and result, the write's callback and the handler's write
// outcome are reused, and the connection's mailbox runs without the
// closure Proto.Actor's dispatchers take — so a busy connection makes no
// work for the garbage collector. (Under -race, sync.Pool drops a quarter
// of what it is given: the pooled buffers and callbacks are made again now
// and then, hence a margin.)
func TestAnEchoRoundTripAllocatesNothing(t *testing.T) {
	for _, mode := range []ReadMode{ReadLoop, ReadGoroutine} {
		t.Run(mode.String(), func(t *testing.T) {
			sys := testkit.NewSystem(t)
			cc, sc := socketPair(t)
			startConn(t, sys, sc, 1, nil, ConnectionConfig{ReadMode: mode, Handler: EchoHandler()})
			_ = cc.SetDeadline(time.Now().Add(connWait))
			msg, got := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), make([]byte, 64)
			roundTrip := func() {
				if _, err := cc.Write(msg); err != nil {
					t.Fatalf("write: %v", err)
				}
				if _, err := io.ReadFull(cc, got); err != nil || string(got) != string(msg) {
					t.Fatalf("echo %q, %v; want %q", got, err, msg)
				}
			}
			roundTrip() // the first one fills the pools
			most := 0.0
			if raceOn {
				most = 4
			}
			if n := testing.AllocsPerRun(200, roundTrip); n > most {
				t.Fatalf("%.0f allocations a round trip; want at most %.0f", n, most)
			}
		})
	}
}
