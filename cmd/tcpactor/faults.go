//go:build tcpactor_faults

package main

import (
	"context"
	"net"
	"os"

	"github.com/tcpactor/tcpactor/server"
)

// Fault injection for the tests of the command line, compiled only with
// -tags tcpactor_faults: the tests build a binary of their own with it.
// TCPACTOR_FAULT=server-panic gives serve an incomingConnection hook that
// hands the server a broken connection for every client, as a user's buggy
// hook could; the ServerActor panics on it.
func injectFaults(opts *server.Options) {
	if os.Getenv("TCPACTOR_FAULT") != "server-panic" {
		return
	}
	type brokenConn struct{ net.Conn } // nil inside: every method panics
	opts.IncomingConnection = func(context.Context, net.Conn) (net.Conn, error) {
		return brokenConn{}, nil // the accepted conn stays the server's to close
	}
}
