package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/tcpactor/tcpactor/server"
)

// listenSystemd is the --listen value that adopts a socket passed by systemd
// socket activation instead of opening one.
const listenSystemd = "systemd"

// sdListenFDsStart is SD_LISTEN_FDS_START: the first descriptor systemd
// passes; the others follow it.
const sdListenFDsStart = 3

// activatedFD is sd_listen_fds(3) for serve: the one listening socket
// systemd passed this process. LISTEN_PID must name this process (the
// variables may have been inherited from a parent they were meant for) and
// LISTEN_FDS must count exactly one descriptor, since serve runs one
// server. As sd_listen_fds(unset_environment=1) does, the variables are
// removed, so processes this one starts do not take the socket for theirs,
// and the descriptor is marked close-on-exec for the same reason.
func activatedFD() (int64, error) {
	pidVar, fdsVar := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS")
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(v)
	}
	if pidVar == "" || fdsVar == "" {
		return 0, fmt.Errorf("--listen systemd: no socket passed (LISTEN_PID and LISTEN_FDS unset; run under a systemd .socket unit or systemd-socket-activate)")
	}
	pid, err := strconv.Atoi(pidVar)
	if err != nil || pid != os.Getpid() {
		return 0, fmt.Errorf("--listen systemd: LISTEN_PID=%s is not this process (%d): the sockets were passed to another", pidVar, os.Getpid())
	}
	n, err := strconv.Atoi(fdsVar)
	if err != nil || n != 1 {
		return 0, fmt.Errorf("--listen systemd: LISTEN_FDS=%s: want exactly one socket (one ListenStream= in the .socket unit)", fdsVar)
	}
	syscall.CloseOnExec(sdListenFDsStart)
	return sdListenFDsStart, nil
}

// adoptActivated hands the socket systemd passed to the ServerActor through
// SetSocketDescriptor, so the server's own checks (an open, listening TCP
// stream socket) apply to it, and returns the address it is bound to.
func adoptActivated(ctx context.Context, srv *server.Server) (string, uint16, error) {
	fd, err := activatedFD()
	if err != nil {
		return "", 0, err
	}
	addr, port, err := srv.SetSocketDescriptor(ctx, fd)
	// The server adopts a duplicate of its own: fd 3 is not needed any more.
	syscall.Close(int(fd))
	if err != nil {
		return "", 0, fmt.Errorf("--listen systemd: %w", err)
	}
	return addr, port, nil
}
