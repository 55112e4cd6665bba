package main

// gnet: the event-loop library Go users pick for speed, as a second
// reference beside raw. It reads whatever arrives and buffers what it
// cannot write without limit, which the flood load shows.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// gnetEcho is gnet v2's echo server: every chunk read is written back.
type gnetEcho struct {
	gnet.BuiltinEventEngine
	eng              gnet.Engine
	booted           chan struct{}
	ended            chan error
	bind             int
	accepted, active atomic.Int64
}

func startGnetEcho() (*gnetEcho, error) {
	g := &gnetEcho{booted: make(chan struct{}), ended: make(chan error, 1)}
	go func() {
		g.ended <- gnet.Run(g, "tcp://127.0.0.1:0", gnet.WithMulticore(true), gnet.WithLogger(quietLog{}))
	}()
	select {
	case <-g.booted:
	case err := <-g.ended:
		return nil, fmt.Errorf("gnet: %v", err)
	case <-time.After(10 * time.Second):
		return nil, errors.New("gnet did not boot within 10s")
	}
	fd, err := g.eng.Dup()
	if err != nil {
		g.stop()
		return nil, fmt.Errorf("gnet listener: %w", err)
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		g.stop()
		return nil, fmt.Errorf("gnet listener: %w", err)
	}
	in4, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		g.stop()
		return nil, fmt.Errorf("gnet listens on %T, want IPv4", sa)
	}
	g.bind = in4.Port
	return g, nil
}

func (g *gnetEcho) OnBoot(eng gnet.Engine) gnet.Action {
	g.eng = eng
	close(g.booted)
	return gnet.None
}

func (g *gnetEcho) OnOpen(gnet.Conn) ([]byte, gnet.Action) {
	g.accepted.Add(1)
	g.active.Add(1)
	return nil, gnet.None
}

func (g *gnetEcho) OnClose(gnet.Conn, error) gnet.Action {
	g.active.Add(-1)
	return gnet.None
}

func (g *gnetEcho) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Next(-1)
	if _, err := c.Write(buf); err != nil {
		return gnet.Close
	}
	return gnet.None
}

func (g *gnetEcho) port() int { return g.bind }

func (g *gnetEcho) stats() (int64, int64, int64, error) {
	return g.accepted.Load(), g.active.Load(), 0, nil
}

func (g *gnetEcho) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = g.eng.Stop(ctx)
}

// quietLog keeps gnet off stdout, which carries the child's replies.
type quietLog struct{}

func (quietLog) Debugf(string, ...any) {}
func (quietLog) Infof(string, ...any)  {}
func (quietLog) Warnf(string, ...any)  {}
func (quietLog) Errorf(string, ...any) {}
func (quietLog) Fatalf(string, ...any) {}
