//go:build unix

package server_test

import (
	"net"
	"syscall"
	"testing"

	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
)

// setSocketDescriptor() takes a Unix descriptor number.

func TestSetSocketDescriptorAdoptsAListeningSocketAndRefusesOthers(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Dup(int(f.Fd())) // a descriptor nobody else closes: the server owns it
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	srv := server.Spawn(testkit.NewSystem(t), server.Options{})
	t.Cleanup(func() { _ = srv.Stop() })
	ctx := testCtx(t)
	addr, got, err := srv.SetSocketDescriptor(ctx, int64(fd))
	if err != nil || got != port || addr != "127.0.0.1" {
		t.Fatalf("SetSocketDescriptor = %q, %d, %v; want 127.0.0.1, %d", addr, got, err, port)
	}
	if d, _ := srv.SocketDescriptor(ctx); d != int64(fd) {
		t.Errorf("SocketDescriptor = %d; want %d, the one given", d, fd)
	}
	dial(t, net.JoinHostPort("127.0.0.1", itoa(port)))
	if ok, _, err := srv.WaitForNewConnection(ctx, 10_000); !ok || err != nil {
		t.Errorf("no connection through the adopted socket: %v, %v", ok, err)
	}

	other := server.Spawn(testkit.NewSystem(t), server.Options{})
	t.Cleanup(func() { _ = other.Stop() })
	if _, _, err := other.SetSocketDescriptor(ctx, 0); socketCode(err) != messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION {
		t.Errorf("SetSocketDescriptor(stdin): %v; want UnsupportedSocketOperation", err)
	}
}
