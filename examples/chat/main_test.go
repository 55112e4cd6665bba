package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/examples/internal/exampletest"
	"github.com/tcpactor/tcpactor/internal/testkit"
)

func TestMain(m *testing.M) { testkit.RunTests(m) }

type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

func (c *client) expect(want string) {
	c.t.Helper()
	got, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("waiting for %q: %v", want, err)
	}
	if got != want+"\n" {
		c.t.Fatalf("got line %q, want %q", got, want)
	}
}

func (c *client) say(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, line); err != nil {
		c.t.Fatal(err)
	}
}

// TestLinesGoToEveryOtherMemberAndJoinsAndLeavesAreAnnounced is a whole
// chat: three members join, one speaks (in two TCP segments), one leaves.
func TestLinesGoToEveryOtherMemberAndJoinsAndLeavesAreAnnounced(t *testing.T) {
	sys := testkit.NewSystem(t)
	addr := exampletest.Start(t, func(ctx context.Context, out io.Writer) error {
		return run(ctx, sys, "127.0.0.1:0", out)
	}, "listening on")[0]

	a := dial(t, addr)
	a.expect("welcome, guest1: 1 in the room")
	b := dial(t, addr)
	b.expect("welcome, guest2: 2 in the room")
	a.expect("* guest2 joined")
	c := dial(t, addr)
	c.expect("welcome, guest3: 3 in the room")
	a.expect("* guest3 joined")
	b.expect("* guest3 joined")

	a.say("hel")
	time.Sleep(20 * time.Millisecond) // a line split across reads is still one line
	a.say("lo\r\n")
	b.expect("guest1: hello")
	c.expect("guest1: hello")

	c.c.Close()
	// a never hears its own line: the next thing it reads is the leave.
	a.expect("* guest3 left")
	b.expect("* guest3 left")
}
