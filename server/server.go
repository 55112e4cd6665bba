// Package server is the Go face of tcpactor: blocking, typed calls over a
// ServerActor's PID, wherever it runs. Each method builds one request, waits
// for its one reply and converts it; the actors own all the logic.
package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
)

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// Options are the Go-side settings of a spawned server (hook, limits,
// time-outs, local handler); see actors.ServerOptions.
type Options = actors.ServerOptions

// Server is a typed handle on a ServerActor: QTcpServer for Go code that
// lives outside actors.
type Server struct {
	sys *actor.ActorSystem
	pid *actor.PID
}

// Spawn starts a ServerActor in sys.
func Spawn(sys *actor.ActorSystem, opts Options) *Server {
	return &Server{sys: sys, pid: sys.Root.Spawn(actors.NewServer(opts))}
}

// SpawnNamed starts a ServerActor under a fixed name, so other nodes can
// address it as HOST:PORT/NAME.
func SpawnNamed(sys *actor.ActorSystem, name string, opts Options) (*Server, error) {
	pid, err := sys.Root.SpawnNamed(actors.NewServer(opts), name)
	if err != nil {
		return nil, fmt.Errorf("spawn server %q: %w", name, err)
	}
	return &Server{sys: sys, pid: pid}, nil
}

// Wrap makes a Server of an existing ServerActor PID, local or remote.
func Wrap(sys *actor.ActorSystem, pid *actor.PID) *Server { return &Server{sys: sys, pid: pid} }

// PID is the ServerActor's PID.
func (s *Server) PID() *actor.PID { return s.pid }

// Stop stops the ServerActor and waits for it to end.
func (s *Server) Stop() error { return s.sys.Root.StopFuture(s.pid).Wait() }

// Listen is QTcpServer::listen(): address is an IP literal or Any, AnyIPv4,
// AnyIPv6, LocalHost, LocalHostIPv6; port 0 picks one. It returns the address
// and port bound.
func (s *Server) Listen(ctx context.Context, address string, port uint16, opts *messages.ListenOptions) (string, uint16, error) {
	r, err := call[*messages.ListenResult](ctx, s, &messages.Listen{Address: address, Port: uint32(port), Options: opts})
	if err != nil {
		return "", 0, err
	}
	return r.Address, uint16(r.Port), r.Error.Err()
}

// Close is QTcpServer::close().
func (s *Server) Close(ctx context.Context) error {
	_, err := call[*messages.Closed](ctx, s, &messages.Close{})
	return err
}

// Status returns every QTcpServer getter at once.
func (s *Server) Status(ctx context.Context) (*messages.ServerStatus, error) {
	return call[*messages.ServerStatus](ctx, s, &messages.GetStatus{})
}

// PauseAccepting is QTcpServer::pauseAccepting().
func (s *Server) PauseAccepting(ctx context.Context) error {
	r, err := call[*messages.Ack](ctx, s, &messages.PauseAccepting{})
	if err != nil {
		return err
	}
	return r.Error.Err()
}

// call sends one request and converts its one reply.
func call[R any](ctx context.Context, s *Server, msg any) (R, error) {
	var zero R
	timeout := DefaultTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return zero, context.DeadlineExceeded
	}
	f := s.sys.Root.RequestFuture(s.pid, msg, timeout)
	res, err := f.Result()
	if err != nil {
		if errors.Is(err, actor.ErrTimeout) {
			return zero, fmt.Errorf("%T: no reply from %s: %w", msg, s.pid, context.DeadlineExceeded)
		}
		return zero, fmt.Errorf("%T to %s: %w", msg, s.pid, err)
	}
	r, ok := res.(R)
	if !ok {
		return zero, fmt.Errorf("%T to %s: unexpected reply %T", msg, s.pid, res)
	}
	return r, nil
}
