package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/examples/internal/exampletest"
	"github.com/tcpactor/tcpactor/internal/testkit"
)

func TestMain(m *testing.M) { testkit.RunTests(m) }

func startHTTP(t *testing.T) (string, *http.Client) {
	sys := testkit.NewSystem(t)
	addr := exampletest.Start(t, func(ctx context.Context, out io.Writer) error {
		return run(ctx, sys, "127.0.0.1:0", out)
	}, "listening on")[0]
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return "http://" + addr, &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestHTTPServeAnswersOverActorConnections: net/http's own server, on a
// server.Listener, answers requests; keep-alive reuses the connection.
func TestHTTPServeAnswersOverActorConnections(t *testing.T) {
	base, client := startHTTP(t)
	for range 3 {
		resp, err := client.Get(base + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(body), "hello from an actor-owned connection") {
			t.Fatalf("GET /hello: %d %q (%v)", resp.StatusCode, body, err)
		}
	}
}

// TestLargeBodiesCrossTheActorsIntact: a 3 MiB upload and its echo pass
// through the credit-bounded reads and acknowledged writes unchanged.
func TestLargeBodiesCrossTheActorsIntact(t *testing.T) {
	base, client := startHTTP(t)
	body := make([]byte, 3<<20)
	rand.Read(body)
	resp, err := client.Post(base+"/echo", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("echo of %d bytes: got %d bytes, equal %v (%v)", len(body), len(got), bytes.Equal(got, body), err)
	}
}
