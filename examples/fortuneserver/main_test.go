package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/tcpactor/tcpactor/examples/internal/exampletest"
	"github.com/tcpactor/tcpactor/examples/internal/qtclient"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/protocols"
)

func TestMain(m *testing.M) { testkit.RunTests(m) }

func startFortuneServer(t *testing.T) (string, int) {
	return startFortuneServerTLS(t, nil)
}

func startFortuneServerTLS(t *testing.T, tlsCfg *tls.Config) (string, int) {
	sys := testkit.NewSystem(t)
	addr := exampletest.Start(t, func(ctx context.Context, out io.Writer) error {
		return run(ctx, sys, "127.0.0.1:0", tlsCfg, out)
	}, "listening on")[0]
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return host, port
}

// TestQtFortuneClientReadsAFortune runs Qt's own client code (PyQt6:
// QTcpSocket and a QDataStream read transaction) against the server.
func TestQtFortuneClientReadsAFortune(t *testing.T) {
	qtclient.Require(t)
	host, port := startFortuneServer(t)
	for range 3 {
		got := qtclient.Fortune(t, host, port)
		if !slices.Contains(protocols.Fortunes, got) {
			t.Fatalf("Qt client read %q, which is not one of the fortunes", got)
		}
	}
}

// TestQtSslSocketReadsAFortuneOverTLS runs Qt's own QSslSocket (PyQt6,
// connectToHostEncrypted, verifying the server's certificate against a CA
// made by the test) against the --tls variant.
func TestQtSslSocketReadsAFortuneOverTLS(t *testing.T) {
	qtclient.Require(t)
	certs := testkit.NewCerts(t)
	host, port := startFortuneServerTLS(t, certs.ServerConfig(t))
	for range 2 {
		got := qtclient.Fortune(t, host, port, "--tls", certs.CAFile)
		if !slices.Contains(protocols.Fortunes, got) {
			t.Fatalf("Qt's QSslSocket read %q, which is not one of the fortunes", got)
		}
	}
}

// TestFortuneIsOneQStringThenTheServerDisconnects checks the bytes: a
// big-endian quint32 byte length, that many bytes of UTF-16BE, then EOF.
func TestFortuneIsOneQStringThenTheServerDisconnects(t *testing.T) {
	host, port := startFortuneServer(t)
	c, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(c) // up to the server's FIN
	if err != nil {
		t.Fatalf("read until the server disconnects: %v", err)
	}
	if len(all) < 4 {
		t.Fatalf("got %d bytes, want a quint32 length and a string", len(all))
	}
	n := binary.BigEndian.Uint32(all)
	body := all[4:]
	if int(n) != len(body) || n%2 != 0 {
		t.Fatalf("length prefix %d, but %d bytes follow before EOF", n, len(body))
	}
	units := make([]uint16, n/2)
	for i := range units {
		units[i] = binary.BigEndian.Uint16(body[2*i:])
	}
	got := string(utf16.Decode(units))
	if !slices.Contains(protocols.Fortunes, got) {
		t.Fatalf("decoded %q, which is not one of the fortunes", got)
	}
}
