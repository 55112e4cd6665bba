package server_test

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
	"google.golang.org/protobuf/proto"
)

// FuzzParseListen feeds arbitrary --listen values to server.ParseListen. It
// never panics; a value it refuses gets an error that quotes it; a value it
// takes gives a 16-bit port, and the Listen formatted back as HOST:PORT
// parses to the same Listen.
func FuzzParseListen(f *testing.F) {
	f.Fuzz(func(t *testing.T, hostPort string) {
		l, err := server.ParseListen(hostPort)
		checkParsedListen(t, "ParseListen", hostPort, hostPort, l, err)
	})
}

// FuzzListenFromIdentity feeds arbitrary cluster identities to
// server.ListenFromIdentity: "HOST:PORT" or "NAME@HOST:PORT", the address
// being what follows the last '@'. It parses exactly as ParseListen parses
// that address, and a refused identity gets an error, never a panic.
func FuzzListenFromIdentity(f *testing.F) {
	f.Fuzz(func(t *testing.T, identity string) {
		l, err := server.ListenFromIdentity(identity)
		addr := identity[strings.LastIndexByte(identity, '@')+1:]
		checkParsedListen(t, "ListenFromIdentity", identity, addr, l, err)
		want, wantErr := server.ParseListen(addr)
		if (err == nil) != (wantErr == nil) || !proto.Equal(l, want) {
			t.Fatalf("ListenFromIdentity(%q) = %v, %v; ParseListen(%q) = %v, %v", identity, l, err, addr, want, wantErr)
		}
	})
}

// checkParsedListen checks what fn made of in; its error must quote addr,
// the part of in that is an address.
func checkParsedListen(t *testing.T, fn, in, addr string, l *messages.Listen, err error) {
	t.Helper()
	if err != nil {
		if l != nil {
			t.Fatalf("%s(%q) returned %v with error %v", fn, in, l, err)
		}
		if !strings.Contains(err.Error(), strconv.Quote(addr)) {
			t.Fatalf("%s(%q): error %q does not name the input", fn, in, err)
		}
		return
	}
	if l == nil || l.Port > 65535 || l.Options != nil {
		t.Fatalf("%s(%q) = %v: want a Listen with a 16-bit port and no options", fn, in, l)
	}
	again, err := server.ParseListen(net.JoinHostPort(l.Address, strconv.Itoa(int(l.Port))))
	if err != nil || !proto.Equal(again, l) {
		t.Fatalf("%s(%q) = %v, but formatted back it parses to %v, %v", fn, in, l, again, err)
	}
}
