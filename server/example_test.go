package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
)

// Listen and accept: a ServerActor listens, a Listener hands its
// connections to Go code as net.Conn.
func ExampleNewListener() {
	sys := actor.NewActorSystem(quiet...)
	defer sys.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	srv := server.Spawn(sys, server.Options{})
	defer srv.Stop()
	if _, _, err := srv.Listen(ctx, "LocalHost", 0, nil); err != nil {
		fmt.Println("listen:", err)
		return
	}
	l, err := server.NewListener(ctx, srv, server.ListenerOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	go func() { // a client
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			return
		}
		c.Write([]byte("hello, actors"))
		c.Close()
	}()

	conn, err := l.Accept()
	if err != nil {
		fmt.Println("accept:", err)
		return
	}
	defer conn.Close()
	b, _ := io.ReadAll(conn)
	fmt.Printf("%s\n", b)
	// Output: hello, actors
}

// Qt's "without an event loop" pattern: block in waitForNewConnection(),
// then take the connection with nextPendingConnection().
func ExampleServer_WaitForNewConnection() {
	sys := actor.NewActorSystem(quiet...)
	defer sys.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	srv := server.Spawn(sys, server.Options{})
	defer srv.Stop()
	addr, port, err := srv.Listen(ctx, "LocalHost", 0, nil)
	if err != nil {
		fmt.Println("listen:", err)
		return
	}

	go func() { // two clients, one after the other
		for _, word := range []string{"one", "two"} {
			c, err := net.Dial("tcp", net.JoinHostPort(addr, fmt.Sprint(port)))
			if err != nil {
				return
			}
			c.Write([]byte(word))
			c.Close()
		}
	}()

	for served := 0; served < 2; {
		ok, timedOut, err := srv.WaitForNewConnection(ctx, 1000)
		switch {
		case err != nil:
			fmt.Println("wait:", err)
			return
		case timedOut || !ok:
			continue // nothing yet
		}
		conn, err := srv.NextPendingConn(ctx, server.ConnOptions{})
		if err != nil {
			fmt.Println("claim:", err)
			return
		}
		if conn == nil {
			continue // another claimer was faster
		}
		b, _ := io.ReadAll(conn)
		conn.Close()
		fmt.Printf("served %s\n", b)
		served++
	}
	// Output:
	// served one
	// served two
}

// The newConnection() signal: an actor subscribes and is told of every
// connection queued.
func ExampleServer_Subscribe() {
	sys := actor.NewActorSystem(quiet...)
	defer sys.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	srv := server.Spawn(sys, server.Options{})
	defer srv.Stop()
	addr, port, err := srv.Listen(ctx, "LocalHost", 0, nil)
	if err != nil {
		fmt.Println("listen:", err)
		return
	}

	events := make(chan *messages.NewConnection, 1)
	subscriber := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if ev, ok := c.Message().(*messages.NewConnection); ok {
			events <- ev
		}
	}))
	defer sys.Root.Stop(subscriber)
	if err := srv.Subscribe(ctx, subscriber); err != nil {
		fmt.Println("subscribe:", err)
		return
	}

	client, err := net.Dial("tcp", net.JoinHostPort(addr, fmt.Sprint(port)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	ev := <-events
	fmt.Printf("newConnection: %d pending, from the client: %v\n",
		ev.Pending, ev.Info.PeerPort == uint32(client.LocalAddr().(*net.TCPAddr).Port))

	// Whoever is told may claim it; here Go code does.
	conn, err := srv.NextPendingConn(ctx, server.ConnOptions{})
	if err != nil || conn == nil {
		fmt.Println("claim:", conn, err)
		return
	}
	defer conn.Close()
	fmt.Println("claimed:", conn.PID().Equal(ev.Connection))
	// Output:
	// newConnection: 1 pending, from the client: true
	// claimed: true
}

// net/http over a ServerActor. The server could as well run on another node:
// Wrap its PID and make the Listener of that.
func Example_httpServe() {
	sys := actor.NewActorSystem(quiet...)
	defer sys.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	srv := server.Spawn(sys, server.Options{})
	defer srv.Stop()
	if _, _, err := srv.Listen(ctx, "LocalHost", 0, nil); err != nil {
		fmt.Println("listen:", err)
		return
	}
	l, err := server.NewListener(ctx, srv, server.ListenerOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}

	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over actors: %s %s", r.Method, r.URL.Path)
	})}
	go hs.Serve(l)
	defer hs.Shutdown(ctx) // closes the Listener, and so the server

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + l.Addr().String() + "/greeting")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))
	// Output: hello over actors: GET /greeting
}

// quiet are the actor-system options of the examples: Proto.Actor logs at
// Info level to stderr (start-up, dead letters), and its dead-letter
// throttle keeps a goroutine for a second after a dead letter; a program
// would choose its own logger.
var quiet = testkit.SystemOptions()
