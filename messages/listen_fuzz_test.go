package messages_test

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/protobuf/proto"
)

// FuzzParseListen feeds arbitrary --listen values to messages.ParseListen. It
// never panics; a value it refuses gets an error that quotes it; a value it
// takes gives a 16-bit port, and the Listen formatted back as HOST:PORT
// parses to the same Listen.
func FuzzParseListen(f *testing.F) {
	f.Fuzz(func(t *testing.T, hostPort string) {
		l, err := messages.ParseListen(hostPort)
		checkParsedListen(t, "ParseListen", hostPort, hostPort, l, err)
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
