package actors

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// A pause interrupts the wait for the BIND's second reply through the
// listener's deadline, and that can happen between two reads of the reply
// (its first bytes had come): the next Accept goes on from there and returns
// the client, with the peer the proxy named and the client's first bytes
// intact. Before, those first bytes were lost, the next Accept read the
// reply from its middle ("reply version 127") and dropped the client: the
// flake of TestListenThroughASocks5ProxyServesEachClientTheProxyRelays.
// The proxy is scripted on a real loopback socket, to split the reply.
func TestSocksAcceptInterruptedInTheMiddleOfTheReplyResumesIt(t *testing.T) {
	proxy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	ctrl := make(chan net.Conn, 1)
	go func() {
		defer close(ctrl)
		c, err := proxy.Accept()
		if err != nil {
			return
		}
		// No authentication, then the BIND and its first reply.
		req := make([]byte, 3)
		bind := make([]byte, 10)
		if _, err := io.ReadFull(c, req); err != nil {
			c.Close()
			return
		}
		if _, err := c.Write([]byte{5, 0}); err != nil {
			c.Close()
			return
		}
		if _, err := io.ReadFull(c, bind); err != nil || bind[1] != 2 {
			c.Close()
			return
		}
		if _, err := c.Write([]byte{5, 0, 0, 1, 127, 0, 0, 1, 0x30, 0x39}); err != nil {
			c.Close()
			return
		}
		ctrl <- c
	}()
	l, err := bindThroughSocks(context.Background(), socks5(uint32(proxy.Addr().(*net.TCPAddr).Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, ok := <-ctrl
	if !ok {
		t.Fatal("the scripted proxy saw no BIND")
	}
	defer c.Close()

	// The second reply's first four bytes only; the deadline then comes
	// while Accept waits for the rest. (Should the machine be so slow that
	// the deadline passes before Accept's first read, nothing is read and
	// the test shows nothing: it cannot fail wrongly.)
	if _, err := c.Write([]byte{5, 0, 0, 1}); err != nil {
		t.Fatal(err)
	}
	_ = l.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if conn, err := l.Accept(); !errors.Is(err, os.ErrDeadlineExceeded) {
		if conn != nil {
			conn.Close()
		}
		t.Fatalf("Accept with half the reply and a deadline: %v, want the deadline", err)
	}
	// The resume: the rest of the reply, and the client's first bytes.
	_ = l.SetDeadline(time.Time{})
	if _, err := c.Write([]byte{10, 0, 0, 9, 0xd4, 0x31, 'h', 'e', 'l', 'l', 'o'}); err != nil {
		t.Fatal(err)
	}
	conn, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept after the resume: %v, want the client", err)
	}
	defer conn.Close()
	if got := conn.RemoteAddr().String(); got != "10.0.0.9:54321" {
		t.Errorf("peer %s, want 10.0.0.9:54321 (as the proxy named it)", got)
	}
	_ = conn.SetReadDeadline(time.Now().Add(replyTimeout))
	got := make([]byte, 5)
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "hello" {
		t.Fatalf("the client's first bytes: %q (%v), want \"hello\"", got, err)
	}
}
