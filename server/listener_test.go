package server_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
)

// bigBody is a deterministic pseudo-random body of n bytes.
func bigBody(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{'t', 'c', 'p', 'a', 'c', 't', 'o', 'r'})
	_, _ = r.Read(b)
	return b
}

func TestHTTPServeOverAListenerWhoseServerIsOnAnotherNode(t *testing.T) {
	node0, node1 := testkit.Remote(t, 0), testkit.Remote(t, 1)
	// The Listener closes its server from node 1: remote administration.
	srv, addr := listening(t, node0, server.Options{AllowRemoteAdmin: true})
	ctx := testCtx(t)
	l, err := server.NewListener(ctx, viewFrom(node1, srv), server.ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr().String() != addr {
		t.Errorf("Addr = %s; want %s", l.Addr(), addr)
	}

	const bigSize = 50 << 20
	big := bigBody(bigSize)
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.RemoteAddr)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		w.Write(big)
	})
	mux.HandleFunc("/sum", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		io.Copy(h, r.Body)
		fmt.Fprintf(w, "%x", h.Sum(nil))
	})
	hs := &http.Server{Handler: mux}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(l) }()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	base := "http://" + addr

	resp, err := client.Get(base + "/hello")
	if err != nil {
		t.Fatalf("GET /hello: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "hello from 127.0.0.1:"; !strings.HasPrefix(string(body), want) {
		t.Errorf("GET /hello = %q; want %q…", body, want)
	}

	resp, err = client.Get(base + "/big")
	if err != nil {
		t.Fatalf("GET /big: %v", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != bigSize {
		t.Fatalf("GET /big read %d bytes, %v; want %d", n, err, bigSize)
	}
	if got, want := h.Sum(nil), sha256.Sum256(big); string(got) != string(want[:]) {
		t.Error("GET /big: the body differs from what the handler wrote")
	}

	upload := big[:8<<20]
	resp, err = client.Post(base+"/sum", "application/octet-stream", strings.NewReader(string(upload)))
	if err != nil {
		t.Fatalf("POST /sum: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%x", sha256.Sum256(upload)); string(body) != want {
		t.Errorf("POST /sum = %s; want %s", body, want)
	}

	// Several clients at once, each on its own connection.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
			resp, err := c.Get(fmt.Sprintf("%s/hello?i=%d", base, i))
			if err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()

	tr.CloseIdleConnections()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v; want http.ErrServerClosed", err)
	}
	if ok, _ := srv.IsListening(ctx); ok {
		t.Error("the server still listens after its Listener was closed")
	}
	noConnectionsLeft(t, srv)
}

func TestListenerAcceptReturnsErrClosedAfterClose(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("KeepServerOpen=%v", keep), func(t *testing.T) {
			srv, _ := listening(t, testkit.NewSystem(t), server.Options{})
			ctx := testCtx(t)
			l, err := server.NewListener(ctx, srv, server.ListenerOptions{KeepServerOpen: keep})
			if err != nil {
				t.Fatal(err)
			}
			accepted := make(chan error, 1)
			go func() {
				c, err := l.Accept()
				if c != nil {
					c.Close()
				}
				accepted <- err
			}()
			select {
			case err := <-accepted:
				t.Fatalf("Accept returned with nothing to accept: %v", err)
			case <-time.After(50 * time.Millisecond):
			}
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := <-accepted; !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept after Close: %v; want net.ErrClosed", err)
			}
			if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("a later Accept: %v; want net.ErrClosed", err)
			}
			if err := l.Close(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("a second Close: %v; want net.ErrClosed", err)
			}
			if ok, _ := srv.IsListening(ctx); ok != keep {
				t.Errorf("IsListening after the Listener's Close = %v; want %v", ok, keep)
			}
		})
	}
}

func TestListenerAcceptFailsWhenTheServerStopsListening(t *testing.T) {
	srv, _ := listening(t, testkit.NewSystem(t), server.Options{})
	ctx := testCtx(t)
	l, err := server.NewListener(ctx, srv, server.ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		accepted <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	err = <-accepted
	if err == nil || errors.Is(err, net.ErrClosed) || socketCode(err) != messages.SocketError_SOCKET_ERROR_OPERATION {
		t.Errorf("Accept when the server closed: %v; want the server's OperationError (not listening)", err)
	}
}

func TestNewListenerRefusesAServerThatIsNotListening(t *testing.T) {
	srv := server.Spawn(testkit.NewSystem(t), server.Options{})
	t.Cleanup(func() { _ = srv.Stop() })
	if l, err := server.NewListener(testCtx(t), srv, server.ListenerOptions{}); err == nil {
		l.Close()
		t.Fatal("NewListener over a server that is not listening succeeded")
	}
}

func TestListenersSharingAServerEachGetDifferentConnections(t *testing.T) {
	sys := testkit.NewSystem(t)
	srv, addr := listening(t, sys, server.Options{})
	ctx := testCtx(t)
	const listeners, conns = 3, 30
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
		wg   sync.WaitGroup
	)
	got := make(chan struct{}, conns)
	var ls []*server.Listener
	for range listeners {
		l, err := server.NewListener(ctx, srv, server.ListenerOptions{KeepServerOpen: true})
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				if seen[c.RemoteAddr().String()] {
					t.Errorf("connection from %s accepted twice", c.RemoteAddr())
				}
				seen[c.RemoteAddr().String()] = true
				mu.Unlock()
				c.Close()
				got <- struct{}{}
			}
		}()
	}
	for range conns {
		dial(t, addr)
	}
	for i := range conns {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d connections accepted", i, conns)
		}
	}
	for _, l := range ls {
		l.Close()
	}
	wg.Wait()
	noConnectionsLeft(t, srv)
}
