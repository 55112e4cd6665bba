package remotenode_test

import (
	"net"
	"reflect"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/internal/remotecfg"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/remotenode"
)

// TestShutdownSurvivesAnEndpointReaderThatClosedItsChannel: the pinned
// remote's graceful shutdown sends on the channel of every endpoint reader
// still in its map; a reader whose stream ended closes its channel before it
// leaves the map, and the send then panics (seen in CI: the remotehandler
// example died at exit). The test puts such a reader's closed channel in the
// map, as that moment leaves it, and shuts down: no panic, and the remote's
// port is free afterwards (goleak checks its goroutines).
func TestShutdownSurvivesAnEndpointReaderThatClosedItsChannel(t *testing.T) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(testkit.QuietLogger))
	r := remote.NewRemote(sys, remote.Configure("127.0.0.1", 0, remote.WithDialOptions(remotecfg.DialOptions()...)))
	r.Start()
	addr := sys.Address()
	closed := make(chan bool, 1)
	close(closed)
	readers := endpointReaders(t, r)
	readers.Store("a stream that just ended", closed)

	remotenode.Shutdown(r, true)
	sys.Shutdown()
	// remote.Start serves on a goroutine of its own; a gRPC server stopped
	// before that goroutine got to Serve closes the listener there, when it
	// does. So the port is free soon after Shutdown, not necessarily at once:
	// wait for it, within a bound.
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			l.Close()
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	t.Fatalf("the remote's port %s is still taken 5 s after Shutdown: %v", addr, err)
}

// endpointReaders is the remote's map of endpoint reader channels
// (remote.endpointManager.endpointReaderConnections), which the pinned
// version does not export.
func endpointReaders(t *testing.T, r *remote.Remote) *sync.Map {
	t.Helper()
	em := reflect.ValueOf(r).Elem().FieldByName("edpManager")
	if !em.IsValid() || em.IsNil() {
		t.Fatal("remote.Remote has no edpManager: the pinned version changed")
	}
	f := em.Elem().FieldByName("endpointReaderConnections")
	if !f.IsValid() || f.Type() != reflect.TypeOf(&sync.Map{}) {
		t.Fatal("endpointManager has no *sync.Map endpointReaderConnections: the pinned version changed")
	}
	return *(**sync.Map)(unsafe.Pointer(f.UnsafeAddr()))
}
