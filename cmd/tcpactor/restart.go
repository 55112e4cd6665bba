package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/cloudflare/tableflip"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/internal/sockopt"
	"github.com/tcpactor/tcpactor/messages"
	"github.com/tcpactor/tcpactor/server"
)

// restarter hands serve's listening socket to its successor on SIGHUP
// (Cloudflare's tableflip): the successor, the same binary started with the
// same arguments, inherits the socket, listens on it and says it is ready;
// only then does this process stop accepting and drain. The socket is never
// closed between the two, so no client is refused or reset: connections that
// queue meanwhile wait in the kernel for whichever process accepts next.
type restarter struct {
	upg *tableflip.Upgrader
	hup chan os.Signal
	ln  net.Listener // tableflip's listener, kept for the successor
}

func newRestarter(pidFile string) (*restarter, error) {
	upg, err := tableflip.New(tableflip.Options{PIDFile: pidFile})
	if err != nil {
		return nil, fmt.Errorf("zero-downtime restart: %w", err)
	}
	return &restarter{upg: upg}, nil
}

// listen opens the listening socket, or takes the one the predecessor handed
// over (keyed by the --listen value, so port 0 is kept across restarts), and
// gives the ServerActor its own duplicate of it through SetSocketDescriptor.
// tableflip keeps the original, to hand to the next successor.
func (r *restarter) listen(ctx context.Context, srv *server.Server, listenFlag, host string, port int, reusePort bool) (string, uint16, error) {
	addr, e := messages.ParseListenAddress(host)
	if e != nil {
		return "", 0, fmt.Errorf("listen on %s: %w", listenFlag, e.Err())
	}
	ln, err := r.upg.ListenWithCallback(addr.Network, listenFlag, func(network, _ string) (net.Listener, error) {
		lc := net.ListenConfig{Control: reusePortControl(reusePort)}
		ln, err := lc.Listen(ctx, network, net.JoinHostPort(addr.Host, strconv.Itoa(port)))
		if err != nil {
			return nil, err
		}
		// Qt's default backlog, as a plain Listen gives it (Go asks for
		// the kernel's maximum).
		if err := sockopt.Relisten(ln.(syscall.Conn), actors.DefaultBacklog); err != nil {
			ln.Close()
			return nil, err
		}
		return ln, nil
	})
	if err != nil {
		return "", 0, fmt.Errorf("listen on %s: %w", listenFlag, err)
	}
	fd, err := dupListener(ln)
	if err != nil {
		return "", 0, fmt.Errorf("listen on %s: %w", listenFlag, err)
	}
	a, p, err := srv.SetSocketDescriptor(ctx, int64(fd))
	// The server adopts a duplicate of its own: this one is not needed.
	syscall.Close(fd)
	if err != nil {
		ln.Close()
		return "", 0, fmt.Errorf("listen on %s: %w", listenFlag, err)
	}
	r.ln = ln
	return a, p, nil
}

// ready tells the predecessor, if any, that this process serves now.
func (r *restarter) ready() error {
	if r == nil {
		return nil
	}
	return r.upg.Ready()
}

// upgrade starts the successor and waits until it is ready.
func (r *restarter) upgrade() error { return r.upg.Upgrade() }

// stop gives up restarting (the process is ending for good).
func (r *restarter) stop() {
	if r != nil {
		signal.Stop(r.hup)
		r.upg.Stop()
	}
}

// release closes this process's copies of the listening socket when the
// drain starts, so that once the server has closed its own, the socket is
// closed (after a restart, the successor's copy keeps it open) and a client
// arriving during the drain is refused instead of left in the backlog. It
// waits for tableflip to close the copies it keeps.
func (r *restarter) release() {
	if r == nil {
		return
	}
	r.stop()
	<-r.upg.Exit()
	if r.ln != nil {
		r.ln.Close()
	}
}

// dupListener duplicates a listener's descriptor (close-on-exec), without
// os.File.Fd, which would make the shared socket blocking.
func dupListener(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no descriptor", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(u uintptr) {
		syscall.ForkLock.RLock()
		defer syscall.ForkLock.RUnlock()
		if fd, derr = syscall.Dup(int(u)); derr == nil {
			syscall.CloseOnExec(fd)
		}
	}); err != nil {
		return -1, err
	}
	return fd, derr
}

// reusePortControl sets SO_REUSEPORT when on: several processes may then
// listen on one port and the kernel spreads the connections among them.
func reusePortControl(on bool) func(network, address string, c syscall.RawConn) error {
	if !on {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
		}); err != nil {
			return err
		}
		return serr
	}
}

// soReusePort is SO_REUSEPORT on Linux, missing from package syscall.
const soReusePort = 0xf

// restartFlags are serve's flags for restarts and shared ports.
type restartFlags struct {
	pidFile   *string
	reusePort *bool
}

func addRestartFlags(fs *flag.FlagSet) *restartFlags {
	return &restartFlags{
		pidFile:   fs.String("pid-file", "", "write the serving process's PID to `FILE` (rewritten by the successor after a SIGHUP restart)"),
		reusePort: fs.Bool("reuseport", false, "listen with SO_REUSEPORT, so several serve processes share the port"),
	}
}

// startRestarter makes serve restartable on SIGHUP; nil (restarts left to
// systemd) with --listen systemd, or where tableflip does not run.
func startRestarter(cfg *serveConfig) (*restarter, error) {
	if cfg.listenFlag == listenSystemd {
		if cfg.socks != nil {
			return nil, badUsage("--proxy: --listen systemd adopts a socket; nothing listens through a proxy")
		}
		if *cfg.restart.reusePort {
			return nil, badUsage("--reuseport: the socket of --listen systemd is systemd's (ReusePort= in the .socket unit)")
		}
		return nil, nil
	}
	r, err := newRestarter(*cfg.restart.pidFile)
	if errors.Is(err, tableflip.ErrNotSupported) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r.hup = make(chan os.Signal, 1)
	signal.Notify(r.hup, syscall.SIGHUP)
	return r, nil
}

// listenAs listens as the flags say: the socket of systemd socket
// activation, the restarter's (inherited or new), or a plain Listen.
func listenAs(ctx context.Context, srv *server.Server, cfg *serveConfig, r *restarter) (string, uint16, error) {
	switch {
	case cfg.listenFlag == listenSystemd:
		return adoptActivated(ctx, srv)
	case cfg.socks != nil:
		// Through the proxy: nothing of ours listens, so there is no
		// socket to hand over; a successor binds anew.
		if err := srv.SetProxy(ctx, cfg.socks); err != nil {
			return "", 0, fmt.Errorf("--proxy: %w", err)
		}
		addr, port, err := srv.Listen(ctx, cfg.host, uint16(cfg.port), nil)
		if err != nil {
			return "", 0, fmt.Errorf("listen through the proxy %s:%d: %w", cfg.socks.Host, cfg.socks.Port, err)
		}
		return addr, port, nil
	case r != nil:
		return r.listen(ctx, srv, cfg.listenFlag, cfg.host, cfg.port, *cfg.restart.reusePort)
	case *cfg.restart.reusePort:
		return "", 0, errors.New("--reuseport is not supported on this system")
	}
	addr, port, err := srv.Listen(ctx, cfg.host, uint16(cfg.port), nil)
	if err != nil {
		return "", 0, fmt.Errorf("listen on %s: %w", cfg.listenFlag, err)
	}
	return addr, port, nil
}

// waitForEnd returns when serve should drain and exit: SIGINT or SIGTERM,
// a SIGHUP whose successor is ready, or the server actor stopping under serve
// (serverLost). A successor that fails to start (it exits, or is not ready
// within tableflip's minute) leaves this process serving, with one line on
// stderr.
func (r *restarter) waitForEnd(sigs <-chan os.Signal, lost <-chan struct{}, stderr io.Writer) (serverLost bool) {
	var hup <-chan os.Signal
	if r != nil {
		hup = r.hup
	}
	for {
		select {
		case <-sigs:
			return false
		case <-lost:
			return true
		case <-hup:
			if err := r.upgrade(); err != nil {
				fmt.Fprintf(stderr, "tcpactor serve: restart on SIGHUP failed, still serving: %s\n", oneLine(err.Error()))
				continue
			}
			return false
		}
	}
}
