package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tcpactor/tcpactor/server"
)

// serverInfo is what status prints: a running server's state, as Ranch's
// info() gives it, under stable names.
type serverInfo struct {
	Server                string `json:"server"`
	Listening             bool   `json:"listening"`
	Address               string `json:"address"`
	Port                  uint32 `json:"port"`
	Pending               int32  `json:"pending"`
	Active                int32  `json:"active"`
	AcceptedTotal         uint64 `json:"accepted_total"`
	AcceptErrors          uint64 `json:"accept_errors"`
	Paused                bool   `json:"paused"`
	MaxPendingConnections int32  `json:"max_pending_connections"`
	MaxConnections        int32  `json:"max_connections"`
	Backlog               int32  `json:"backlog"`
	ErrorCode             string `json:"error_code,omitempty"`
	Error                 string `json:"error,omitempty"`
}

// status asks a running server for GetStatus over remote and prints it.
func status(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stdout)
	target := fs.String("server", "", "the server to ask, as `HOST:PORT/NAME` (see 'tcpactor serve --remote')")
	asJSON := fs.Bool("json", false, "print one JSON object")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	remoteAddr := fs.String("remote", "127.0.0.1:0", "this node's remote `HOST:PORT`, where the answer comes back; the server's node must reach it")
	level := fs.String("log-level", "error", "log level of stderr: debug, info, warn, error")
	var rf remoteFlags
	rf.add(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *timeout <= 0 {
		return badUsage("--timeout %v: want more than 0", *timeout)
	}
	pid, sys, stop, err := startPeer(*target, *remoteAddr, &rf, *level, stderr)
	if err != nil {
		return err
	}
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	st, err := server.Wrap(sys, pid).StatusWithConnections(ctx)
	switch {
	case errors.Is(err, server.ErrNoServer):
		return fmt.Errorf("no server named %q at %s", pid.Id, pid.Address)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer from %s within %v", *target, *timeout)
	case err != nil:
		return fmt.Errorf("server %s: %w", *target, err)
	}
	info := serverInfo{
		Server: *target, Listening: st.Listening, Address: st.Address, Port: st.Port,
		Pending: st.Pending, Active: st.Active, AcceptedTotal: st.AcceptedTotal, AcceptErrors: st.AcceptErrors,
		Paused: st.Paused, MaxPendingConnections: st.MaxPendingConnections, MaxConnections: st.MaxConnections,
		Backlog: st.Backlog,
	}
	if st.Error.Failed() {
		info.ErrorCode, info.Error = st.Error.Code.String(), st.Error.Message
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		return enc.Encode(statusJSON{serverInfo: info, Connections: connInfos(st.Connections)})
	}
	printInfo(stdout, &info)
	return nil
}

func printInfo(w io.Writer, i *serverInfo) {
	errText := "none"
	if i.ErrorCode != "" {
		errText = fmt.Sprintf("%s: %s", i.ErrorCode, i.Error)
	}
	fmt.Fprintf(w, `server:                  %s
listening:               %t
address:                 %s
port:                    %d
pending:                 %d
active:                  %d
accepted total:          %d
accept errors:           %d
paused:                  %t
max pending connections: %d
max connections:         %d
backlog:                 %d
last error:              %s
`, i.Server, i.Listening, i.Address, i.Port, i.Pending, i.Active, i.AcceptedTotal, i.AcceptErrors,
		i.Paused, i.MaxPendingConnections, i.MaxConnections, i.Backlog, errText)
}
