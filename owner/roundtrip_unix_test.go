//go:build unix

package owner_test

import (
	"syscall"
	"testing"
	"time"
)

// BenchmarkOwnerEchoRoundTrip is one 64-byte round trip through owner.New
// and owner.Echo on the connection's node, with the process's CPU time per
// round trip (client and server: compare builds A/B, not with other runs).
func BenchmarkOwnerEchoRoundTrip(b *testing.B) {
	roundTrip := echoClient(b)
	for range 100 {
		roundTrip()
	}
	b.ReportAllocs()
	before := cpuTime()
	for b.Loop() {
		roundTrip()
	}
	b.ReportMetric(float64((cpuTime()-before).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
