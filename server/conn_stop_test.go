package server_test

import (
	"context"
	"errors"
	"net"
	"reflect"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
)

// postedTo reports each user message posted to a mailbox: it lets a test
// know that a request is queued at an actor, with no guess at timing.
type postedTo chan any

func (p postedTo) MailboxStarted() {}
func (p postedTo) MessagePosted(m any) {
	select {
	case p <- actor.UnwrapEnvelopeMessage(m):
	default:
	}
}
func (p postedTo) MessageReceived(any) {}
func (p postedTo) MailboxEmpty()       {}

// TestConnRequestsQueuedAsTheConnectionActorStopsFailFast: a request the
// Conn sends its ConnectionActor that is still queued when the actor stops
// is dropped by Proto.Actor unanswered; the call must fail at once with
// net.ErrClosed, not wait out its time-out. The connection's mailbox is
// suspended (Proto.Actor's SuspendMailbox: system messages still run, user
// messages wait), the request is seen posted, then the actor is stopped.
func TestConnRequestsQueuedAsTheConnectionActorStopsFailFast(t *testing.T) {
	for _, tc := range []struct {
		name string
		want any // the request that must be queued
		call func(ctx context.Context, sys *actor.ActorSystem, pid *actor.PID, c *server.Conn) error
	}{
		{"NewConn", &messages.SetOwner{}, func(ctx context.Context, sys *actor.ActorSystem, pid *actor.PID, _ *server.Conn) error {
			c, err := server.NewConn(ctx, sys, pid, server.ConnOptions{})
			if err == nil {
				c.Close()
			}
			return err
		}},
		{"Info", &messages.GetInfo{}, func(ctx context.Context, _ *actor.ActorSystem, _ *actor.PID, c *server.Conn) error {
			_, err := c.Info(ctx)
			return err
		}},
		{"CloseWrite", &messages.CloseWrite{}, func(_ context.Context, _ *actor.ActorSystem, _ *actor.PID, c *server.Conn) error {
			return c.CloseWrite()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := testkit.NewSystem(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			dial(t, ln.Addr().String())
			raw, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			posted := make(postedTo, 64)
			props := actors.ConnectionProps(raw, 1, nil, actors.ConnectionConfig{}).Configure(actor.WithMailbox(actor.Unbounded(posted)))
			pid := sys.Root.Spawn(props)
			ctx := testCtx(t)
			var c *server.Conn
			if tc.name != "NewConn" {
				if c, err = server.NewConn(ctx, sys, pid, server.ConnOptions{}); err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			proc, ok := sys.ProcessRegistry.GetLocal(pid.Id)
			if !ok {
				t.Fatal("the connection is not registered")
			}
			proc.SendSystemMessage(pid, &actor.SuspendMailbox{})
			done := make(chan error, 1)
			go func() { done <- tc.call(ctx, sys, pid, c) }()
			for queued := false; !queued; {
				select {
				case m := <-posted:
					queued = reflect.TypeOf(m) == reflect.TypeOf(tc.want)
				case <-ctx.Done():
					t.Fatalf("%T never reached the connection's mailbox", tc.want)
				}
			}
			sys.Root.Stop(pid)
			err = <-done
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("%s with its request queued as the connection stopped: %v; want at once an error wrapping net.ErrClosed", tc.name, err)
			}
		})
	}
}
