package main

import (
	"context"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/examples/internal/exampletest"
	"github.com/tcpactor/tcpactor/examples/internal/qtclient"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/protocols"
)

func TestMain(m *testing.M) { testkit.RunTests(m) }

func startServer(t *testing.T) (string, int) {
	sys := testkit.NewSystem(t)
	addr := exampletest.Start(t, func(ctx context.Context, out io.Writer) error {
		return run(ctx, sys, "127.0.0.1:0", out)
	}, "listening on")[0]
	host, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	return host, port
}

// TestQtFortuneClientReadsAFortuneServedByTheHook runs Qt's client code
// (PyQt6) against fortunes written by the incomingConnection hook.
func TestQtFortuneClientReadsAFortuneServedByTheHook(t *testing.T) {
	qtclient.Require(t)
	host, port := startServer(t)
	for range 3 {
		if got := qtclient.Fortune(t, host, port); !slices.Contains(protocols.Fortunes, got) {
			t.Fatalf("Qt client read %q, which is not one of the fortunes", got)
		}
	}
}

// TestConcurrentClientsEachGetAWholeFortune opens many connections at once:
// each hook runs in its own goroutine, and each client gets exactly one
// QString followed by EOF.
func TestConcurrentClientsEachGetAWholeFortune(t *testing.T) {
	host, port := startServer(t)
	const clients = 20
	var wg sync.WaitGroup
	errs := make(chan string, clients)
	for range clients {
		wg.Go(func() {
			c, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				errs <- err.Error()
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			b, err := io.ReadAll(c)
			if err != nil {
				errs <- err.Error()
				return
			}
			want := false
			for _, f := range protocols.Fortunes {
				want = want || string(protocols.QString(f)) == string(b)
			}
			if !want {
				errs <- "not one whole QString fortune: " + strconv.Quote(string(b))
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
