//go:build !linux

package actors

import (
	"syscall"
	"time"
)

// loopReader: no event loops outside Linux; the goroutine reader serves.
type loopReader struct{}

func newLoopReader(syscall.RawConn, int, time.Duration, func(any)) *loopReader { return nil }

func (*loopReader) arm()                     {}
func (*loopReader) setTimeout(time.Duration) {}
func (*loopReader) stop()                    {}
