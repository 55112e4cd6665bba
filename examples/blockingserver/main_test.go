package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/examples/internal/exampletest"
	"github.com/tcpactor/tcpactor/internal/testkit"
)

func TestMain(m *testing.M) { testkit.RunTests(m) }

// TestBlockingLoopServesClientsConcurrently: the wait-and-claim loop hands
// each connection to its own goroutine, so clients are served side by side,
// each in order.
func TestBlockingLoopServesClientsConcurrently(t *testing.T) {
	sys := testkit.NewSystem(t)
	addr := exampletest.Start(t, func(ctx context.Context, out io.Writer) error {
		return run(ctx, sys, "127.0.0.1:0", out)
	}, "listening on")[0]

	const clients, lines = 5, 20
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(c)
			for j := range lines {
				msg := fmt.Sprintf("client %d line %d\n", i, j)
				if _, err := io.WriteString(c, msg); err != nil {
					errs <- err
					return
				}
				got, err := r.ReadString('\n')
				if err != nil || got != "> "+msg {
					errs <- fmt.Errorf("client %d: got %q (%v), want %q", i, got, err, "> "+msg)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestPeerCloseEndsTheConnection: a client that half-closes gets the rest
// of its answers and then EOF, as from any TCP server.
func TestPeerCloseEndsTheConnection(t *testing.T) {
	sys := testkit.NewSystem(t)
	addr := exampletest.Start(t, func(ctx context.Context, out io.Writer) error {
		return run(ctx, sys, "127.0.0.1:0", out)
	}, "listening on")[0]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "one\ntwo\n")
	c.(*net.TCPConn).CloseWrite()
	all, err := io.ReadAll(c)
	if err != nil || string(all) != "> one\n> two\n" {
		t.Fatalf("got %q (%v), want both lines then EOF", all, err)
	}
}
