package actors

import (
	"math"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// Bad input gets a clear error and leaves the server working (README, "QTcpServer →
// tcpactor"): every malformed field of every ServerActor request, requests
// that cannot be answered, and messages the server does not know.

// errorReply is every reply that can carry an Error.
type errorReply interface{ GetError() *messages.Error }

func TestEveryMalformedRequestIsAnsweredWithAnErrorAndTheServerGoesOn(t *testing.T) {
	empty := &actor.PID{}
	cases := []struct {
		name string
		msg  any
		// notListening: sent to a server that is not listening (a listening
		// one answers Listen and SetSocketDescriptor with "already
		// listening" before it looks at the fields).
		notListening bool
		text         string // the readable text mentions it
	}{
		{"Listen: malformed address", &messages.Listen{Address: "not-an-ip"}, true, "not-an-ip"},
		{"Listen: three-part address", &messages.Listen{Address: "1.2.3"}, true, "1.2.3"},
		{"Listen: bad IPv6 address", &messages.Listen{Address: "::g"}, true, "::g"},
		{"Listen: port out of range", &messages.Listen{Address: "127.0.0.1", Port: 70000}, true, "70000"},
		{"Listen: negative max_connections", &messages.Listen{Address: "127.0.0.1", Options: &messages.ListenOptions{MaxConnections: -3}}, true, "max_connections"},
		{"SetSocketDescriptor: -1", &messages.SetSocketDescriptor{SocketDescriptor: -1}, true, "-1"},
		{"SetSocketDescriptor: 1<<40", &messages.SetSocketDescriptor{SocketDescriptor: 1 << 40}, true, "1099511627776"},
		{"SetMaxPendingConnections: 0", &messages.SetMaxPendingConnections{Max: 0}, false, "at least 1"},
		{"SetMaxPendingConnections: -5", &messages.SetMaxPendingConnections{Max: -5}, false, "-5"},
		{"WaitForNewConnection: timeout_ms -2", &messages.WaitForNewConnection{TimeoutMs: -2}, false, "timeout_ms"},
		{"WaitForNewConnection: timeout_ms MinInt32", &messages.WaitForNewConnection{TimeoutMs: math.MinInt32}, false, "timeout_ms"},
		{"NextPendingConnection: negative initial_credit", &messages.NextPendingConnection{Options: &messages.ClaimOptions{InitialCredit: -1}}, false, "initial_credit"},
		{"NextPendingConnection: empty owner PID", &messages.NextPendingConnection{Owner: empty}, false, "owner"},
		{"NextPendingConnection: owner PID with an address and no id", &messages.NextPendingConnection{Owner: &actor.PID{Address: "127.0.0.1:1"}}, false, "owner"},
		{"AddPendingConnection: no connection", &messages.AddPendingConnection{}, false, "connection"},
		{"AddPendingConnection: empty PID", &messages.AddPendingConnection{Connection: empty}, false, "connection"},
		{"SetProxy: no proxy", &messages.SetProxy{}, false, "proxy"},
		{"SetProxy: unknown type", &messages.SetProxy{Proxy: &messages.NetworkProxy{Type: 99}}, false, "99"},
		{"Subscribe: empty PID", &messages.Subscribe{Subscriber: empty}, false, "subscriber"},
		{"Unsubscribe: empty PID", &messages.Unsubscribe{Subscriber: empty}, false, "subscriber"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			if !c.notListening {
				dial(t, s.listen())
				s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
			}
			before := s.status()
			r := ask[errorReply](s, c.msg)
			e := r.GetError()
			if !e.Failed() || e.GetCode() == messages.SocketError_SOCKET_ERROR_UNKNOWN || !strings.Contains(e.GetMessage(), c.text) {
				t.Fatalf("%T answered %v; want an error code and a text mentioning %q", c.msg, r, c.text)
			}
			if pc, ok := r.(*messages.PendingConnection); ok && pc.Connection != nil {
				t.Fatalf("a malformed claim handed out %v", pc.Connection)
			}
			mustStillServe(t, s, before)
		})
	}
}

// A request sent without a sender has nobody to answer; a malformed one must
// still do nothing (no connection claimed by nobody) and the server goes on.
func TestMalformedRequestsWithoutASenderChangeNothing(t *testing.T) {
	for _, c := range []struct {
		name string
		msg  any
	}{
		{"NextPendingConnection with no owner", &messages.NextPendingConnection{}},
		{"NextPendingConnection with an empty owner", &messages.NextPendingConnection{Owner: &actor.PID{}}},
		{"Subscribe with no subscriber", &messages.Subscribe{}},
		{"Unsubscribe with no subscriber", &messages.Unsubscribe{}},
		{"WaitForNewConnection without time-out", &messages.WaitForNewConnection{TimeoutMs: -1}},
		{"SetMaxPendingConnections 0", &messages.SetMaxPendingConnections{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			dial(t, s.listen())
			before := s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
			s.sys.Root.Send(s.pid, c.msg)
			mustStillServe(t, s, before)
		})
	}
}

// Every request gets a reply (docs/ARCHITECTURE.md, invariants): a message the server does not know
// is answered with UnsupportedSocketOperation when it has a sender, dropped
// when it has none, and the server goes on either way.
func TestUnknownMessagesAreRefusedAndTheServerGoesOn(t *testing.T) {
	type notAProtoMessage struct{ N int }
	for _, c := range []struct {
		name string
		msg  any
	}{
		{"a plain Go struct", &notAProtoMessage{N: 1}},
		{"a string", "listen please"},
		{"a connection's message", &messages.Write{Data: []byte("x")}},
		{"an event", &messages.Received{}},
		{"a reply", &messages.ServerStatus{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startServer(t, ServerOptions{})
			dial(t, s.listen())
			before := s.waitStatus("one pending", func(st *messages.ServerStatus) bool { return st.Pending == 1 })
			s.sys.Root.Send(s.pid, c.msg)
			a := ask[*messages.Ack](s, c.msg)
			if a.Error.GetCode() != messages.SocketError_SOCKET_ERROR_UNSUPPORTED_SOCKET_OPERATION || !strings.Contains(a.Error.GetMessage(), "unknown request") {
				t.Fatalf("%T answered %v; want UnsupportedSocketOperation, unknown request", c.msg, a.Error)
			}
			mustStillServe(t, s, before)
		})
	}
}

// mustStillServe checks that the server answers GetStatus as before (same
// listener, nothing claimed) and accepts a new client, listening first if it
// was not.
func mustStillServe(t *testing.T, s *testServer, before *messages.ServerStatus) {
	t.Helper()
	st := s.status()
	if st.Listening != before.Listening || st.Port != before.Port || st.Pending != before.Pending || st.Active != before.Active {
		t.Fatalf("status changed from %v to %v", before, st)
	}
	addr := ""
	if st.Listening {
		addr = strings.Join([]string{st.Address, itoa(st.Port)}, ":")
	} else {
		addr = s.listen()
	}
	dial(t, addr)
	s.waitStatus("one more pending", func(now *messages.ServerStatus) bool {
		return now.Pending == st.Pending+1 && now.AcceptedTotal == st.AcceptedTotal+1
	})
}
