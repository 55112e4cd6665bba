//go:build linux

package actors

import (
	"io"
	"testing"

	"github.com/tcpactor/tcpactor/internal/testkit"
)

// BenchmarkEchoRoundTrip is one 64-byte round trip through a connection
// served by the echo Handler, in each read mode: the server side's CPU and
// allocations per message (the client's reads and writes allocate nothing).
// Run it with -benchmem to see the allocations a read costs.
func BenchmarkEchoRoundTrip(b *testing.B) {
	for _, mode := range []ReadMode{ReadLoop, ReadGoroutine} {
		b.Run(mode.String(), func(b *testing.B) {
			sys := testkit.NewSystem(b)
			cc, sc := socketPair(b)
			startConn(b, sys, sc, 1, nil, ConnectionConfig{ReadMode: mode, Handler: EchoHandler()})
			msg, got := make([]byte, 64), make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cc.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(cc, got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
