package clusterkind_test

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/tcpactor/tcpactor/clusterkind"
	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/protobuf/proto"
)

// FuzzListenFromIdentity feeds arbitrary cluster identities to
// clusterkind.ListenFromIdentity: "HOST:PORT" or "NAME@HOST:PORT", the address
// being what follows the last '@'. It parses exactly as messages.ParseListen parses
// that address, and a refused identity gets an error, never a panic.
func FuzzListenFromIdentity(f *testing.F) {
	f.Fuzz(func(t *testing.T, identity string) {
		l, err := clusterkind.ListenFromIdentity(identity)
		addr := identity[strings.LastIndexByte(identity, '@')+1:]
		checkParsedListen(t, "ListenFromIdentity", identity, addr, l, err)
		want, wantErr := messages.ParseListen(addr)
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
	again, err := messages.ParseListen(net.JoinHostPort(l.Address, strconv.Itoa(int(l.Port))))
	if err != nil || !proto.Equal(again, l) {
		t.Fatalf("%s(%q) = %v, but formatted back it parses to %v, %v", fn, in, l, again, err)
	}
}
