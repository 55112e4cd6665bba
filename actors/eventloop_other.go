//go:build !linux

package actors

import (
	"syscall"
	"time"
)

// loopReader: no event loops outside Linux; the goroutine reader serves.
type loopReader struct{}

// holdEventLoops has no loops to start: see the Linux version.
func holdEventLoops() error { return nil }

// releaseEventLoops: see holdEventLoops.
func releaseEventLoops() {}

func newLoopReader(syscall.RawConn, time.Duration, *connection) *loopReader { return nil }

func (*loopReader) arm()                     {}
func (*loopReader) setTimeout(time.Duration) {}
func (*loopReader) stop()                    {}
func (*loopReader) waitWritable() error      { return nil }
