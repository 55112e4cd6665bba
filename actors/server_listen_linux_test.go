//go:build linux

package actors

import (
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tcpactor/tcpactor/messages"
)

// The listen backlog as the kernel has it: Linux's somaxconn
// (/proc/sys/net/core/somaxconn) and accept-queue limit (NETLINK_INET_DIAG).

// As Qt (21): listenBacklogSize() reports the backlog as asked for, and a
// negative one gives the kernel's maximum, as listen(2) has it. Unlike Qt, 0
// is the default (50): proto3 cannot tell it from a backlog not given.
func TestListenBacklogIsReportedAndGivenToTheKernel(t *testing.T) {
	somaxconn := readSomaxconn(t)
	cases := []struct {
		name    string
		opts    ServerOptions
		listen  *messages.ListenOptions
		backlog int32
		kernel  int // the accept queue's limit; 0: backlog
	}{
		{"server default", ServerOptions{}, nil, DefaultBacklog, 0},
		{"zero in Listen means the server's", ServerOptions{}, &messages.ListenOptions{}, DefaultBacklog, 0},
		{"server option", ServerOptions{Backlog: 7}, nil, 7, 0},
		{"Listen option", ServerOptions{}, &messages.ListenOptions{Backlog: 3}, 3, 0},
		{"Listen option over server option", ServerOptions{Backlog: 7}, &messages.ListenOptions{Backlog: 120}, 120, 0},
		{"negative Listen option: the kernel's maximum", ServerOptions{}, &messages.ListenOptions{Backlog: -5}, -5, somaxconn},
		{"negative server option: the kernel's maximum", ServerOptions{Backlog: -1}, nil, -1, somaxconn},
		{"over the kernel's maximum", ServerOptions{}, &messages.ListenOptions{Backlog: int32(somaxconn) + 1}, int32(somaxconn) + 1, somaxconn},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := startServer(t, c.opts)
			r := ask[*messages.ListenResult](s, &messages.Listen{Address: "127.0.0.1", Options: c.listen})
			if !r.Ok {
				t.Fatalf("listen: %v", r.Error)
			}
			if got := s.status().Backlog; got != c.backlog {
				t.Errorf("status backlog %d, want %d", got, c.backlog)
			}
			kernel := c.kernel
			if kernel == 0 {
				kernel = int(c.backlog)
			}
			if got := kernelBacklog(t, syscall.AF_INET, r.Port); got != kernel {
				t.Errorf("the kernel's accept queue limit is %d, want %d", got, kernel)
			}
		})
	}
}

// readSomaxconn is the kernel's largest listen backlog.
func readSomaxconn(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("somaxconn %q: %v", b, err)
	}
	return n
}

// kernelBacklog asks the kernel, as `ss -l` does (NETLINK_INET_DIAG), for
// the accept-queue limit of the TCP socket listening on port.
func kernelBacklog(t testing.TB, family int, port uint32) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, syscall.NETLINK_INET_DIAG)
	if err != nil {
		t.Fatalf("netlink socket: %v", err)
	}
	defer syscall.Close(fd)
	const (
		sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
		tcpListen        = 10 // TCP_LISTEN
		hdrLen           = 16 // struct nlmsghdr
		reqLen           = 56 // struct inet_diag_req_v2
	)
	req := make([]byte, hdrLen+reqLen)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], sockDiagByFamily)
	binary.NativeEndian.PutUint16(req[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP)
	req[hdrLen] = byte(family)
	req[hdrLen+1] = syscall.IPPROTO_TCP
	binary.NativeEndian.PutUint32(req[hdrLen+4:], 1<<tcpListen)
	if err := syscall.Sendto(fd, req, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		t.Fatalf("netlink send: %v", err)
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("netlink receive: %v", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			t.Fatalf("netlink parse: %v", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case syscall.NLMSG_DONE:
				t.Fatalf("no TCP socket listens on port %d", port)
			case syscall.NLMSG_ERROR:
				t.Fatalf("netlink error")
			}
			// struct inet_diag_msg: family, state, timer, retrans (1 byte
			// each), id (sport and dport big-endian, ... 48 bytes), expires,
			// rqueue, wqueue (for a listener: its backlog), uid, inode.
			d := m.Data
			if len(d) >= 64 && uint32(binary.BigEndian.Uint16(d[4:])) == port {
				return int(binary.NativeEndian.Uint32(d[60:]))
			}
		}
	}
}
