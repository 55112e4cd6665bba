//go:build ignore

// Command rss measures a `tcpactor serve` process (its binary is the
// argument) while an unauthenticated node sends it 1.2 M
// WaitForNewConnection{-1} with a made-up sender, then 2000 Subscribe for
// actors at unreachable addresses (issue 10): the server's VmRSS before and
// after, and its refusal counters. Run: go run scripts/attack/rss.go .bin/tcpactor
package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/messages"
)

func rss(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "?"
}

func main() {
	bin := os.Args[1]
	cmd := exec.Command(bin, "serve", "--handler", "echo", "--listen", "127.0.0.1:0", "--remote", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--log-level", "error")
	out, err := cmd.StdoutPipe()
	if err != nil {
		panic(err)
	}
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	var raddr, maddr string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "remote on "); ok {
			raddr = a
		}
		if a, ok := strings.CutPrefix(sc.Text(), "metrics on "); ok {
			maddr = a
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	sys := actors.CompactRegistry(actor.NewActorSystem(testkit.SystemOptions()...))
	r := remote.NewRemote(sys, remote.Configure("127.0.0.1", 0))
	r.Start()
	srv := actor.NewPID(raddr, "tcpserver")
	fake := actor.NewPID(sys.Address(), "fake")
	if _, err := sys.Root.RequestFuture(srv, &messages.GetStatus{}, 5*time.Second).Result(); err != nil {
		panic(err)
	}
	fmt.Println("server RSS before:", rss(cmd.Process.Pid))
	const n = 1200000
	for i := range n {
		sys.Root.RequestWithCustomSender(srv, &messages.WaitForNewConnection{TimeoutMs: -1}, fake)
		if i%100000 == 0 { // a request answered after the ones before it: the writer drains
			_, _ = sys.Root.RequestFuture(srv, &messages.GetStatus{}, time.Minute).Result()
		}
	}
	_, _ = sys.Root.RequestFuture(srv, &messages.GetStatus{}, time.Minute).Result()
	time.Sleep(2 * time.Second)
	fmt.Println("server RSS after", n, "waits:", rss(cmd.Process.Pid))
	subs := 0
	for i := range 2000 {
		res, err := sys.Root.RequestFuture(srv, &messages.Subscribe{Subscriber: actor.NewPID(fmt.Sprintf("10.255.%d.%d:1", i/250, i%250+1), "x")}, 5*time.Second).Result()
		if err == nil && !res.(*messages.Ack).Error.Failed() {
			subs++
		}
	}
	time.Sleep(2 * time.Second)
	fmt.Println("subscribers at unreachable addresses accepted:", subs, "server RSS:", rss(cmd.Process.Pid))
	res, err := http.Get("http://" + maddr + "/metrics") // the refusal counters, when the binary has them
	if err == nil {
		b, _ := io.ReadAll(res.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "tcpactor_remote_refused_total") {
				fmt.Println(l)
			}
		}
	}
	r.Shutdown(false)
}
