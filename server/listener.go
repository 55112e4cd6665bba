package server

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// ListenerOptions tune a Listener. The zero value closes the server with the
// Listener and uses the default ConnOptions.
type ListenerOptions struct {
	// Conn tunes every Conn that Accept returns.
	Conn ConnOptions
	// KeepServerOpen makes Close only end Accept, leaving the server
	// listening: for a Listener that shares its server with other
	// claimers. By default Close also closes the server (QTcpServer::close()),
	// which a server on another node allows only with
	// Options.AllowRemoteAdmin.
	KeepServerOpen bool
}

// Listener is a net.Listener over a ServerActor, on this node or another:
// http.Serve, or any code written for net.Listener, serves the connections
// the ServerActor accepts. Accept waits for a pending connection
// (WaitForNewConnection without a time-out) and claims it for a new Conn
// (NextPendingConnection with the Conn's owner actor); when another
// claimer takes the connection first, it waits again.
type Listener struct {
	srv    *Server
	opts   ListenerOptions
	addr   net.Addr
	ctx    context.Context // cancelled by Close: ends every Accept
	cancel context.CancelFunc
	once   sync.Once
}

// NewListener makes a Listener of a listening server. Its Addr is the
// server's address at this moment.
func NewListener(ctx context.Context, srv *Server, opts ListenerOptions) (*Listener, error) {
	st, err := srv.Status(ctx)
	if err != nil {
		return nil, err
	}
	if !st.Listening {
		return nil, fmt.Errorf("listener over %s: the server is not listening", srv.PID())
	}
	lctx, cancel := context.WithCancel(context.Background())
	return &Listener{srv: srv, opts: opts, addr: tcpAddr(st.Address, st.Port), ctx: lctx, cancel: cancel}, nil
}

// Accept waits for the next connection and returns it as a *Conn. After
// Close it returns an error that wraps net.ErrClosed; when the server stops
// listening or ends, the error says so.
func (l *Listener) Accept() (net.Conn, error) {
	c := newConn(l.srv.sys, l.opts.Conn)
	for {
		ok, err := c.claimNext(l.ctx, l.srv)
		if ok {
			return c, nil
		}
		if err == nil {
			// Nothing pending: wait for the next one. Its ok is no
			// promise (another claimer may be faster), so claim again.
			_, _, err = l.srv.WaitForNewConnection(l.ctx, -1)
		}
		if err != nil {
			c.release()
			if l.ctx.Err() != nil {
				err = net.ErrClosed
			}
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: err}
		}
	}
}

// Close ends every pending and future Accept and, unless KeepServerOpen,
// closes the server (its listener and unclaimed connections). Connections
// already accepted live on. A second Close returns net.ErrClosed.
func (l *Listener) Close() error {
	first := false
	l.once.Do(func() { first = true })
	if !first {
		return &net.OpError{Op: "close", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
	l.cancel()
	if l.opts.KeepServerOpen {
		return nil
	}
	return l.srv.Close(context.Background())
}

// Addr is the server's address when the Listener was made.
func (l *Listener) Addr() net.Addr { return l.addr }

// Server is the Server the Listener accepts from.
func (l *Listener) Server() *Server { return l.srv }
