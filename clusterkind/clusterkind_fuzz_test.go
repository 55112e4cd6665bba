package clusterkind_test

import (
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
		if err != nil && !strings.Contains(err.Error(), strconv.Quote(addr)) {
			t.Fatalf("ListenFromIdentity(%q): error %q does not name the address", identity, err)
		}
		// messages.FuzzParseListen checks what ParseListen makes of addr.
		want, wantErr := messages.ParseListen(addr)
		if (err == nil) != (wantErr == nil) || !proto.Equal(l, want) {
			t.Fatalf("ListenFromIdentity(%q) = %v, %v; ParseListen(%q) = %v, %v", identity, l, err, addr, want, wantErr)
		}
	})
}
