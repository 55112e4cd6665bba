package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These build the binary themselves (TestCommandLine's subtests share one
// build; these run as tests of their own).

func withBinary(t *testing.T) {
	t.Helper()
	if binPath != "" {
		return
	}
	binPath = buildTCPActor(t, t.TempDir())
	t.Cleanup(func() { binPath = "" })
}

// pattern is the byte at offset i of what the clients below send.
func pattern(i int) byte { return byte(i*7 + i>>13) }

// At SIGTERM with --drain-timeout 1s, slow readers whose echo is still on
// its way get every byte the server handed to the kernel, then EOF: the
// drain's Close flushes, sends FIN and lingers (reads and throws away what
// they still send) instead of resetting them.
func TestShutdownDeliversEverythingWrittenToSlowReadersThenEOF(t *testing.T) {
	withBinary(t)
	s := start(t, "serve", "--listen", "127.0.0.1:0", "--drain-timeout", "1s")
	addr := s.line("listening on")

	const clients, each = 4, 8 << 20
	type result struct {
		got int
		err error
	}
	results := make([]result, clients)
	started := make(chan struct{}, clients)
	var wg sync.WaitGroup
	for i := range clients {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			go func() { // the sender: all 8 MiB, as fast as TCP lets it
				buf := make([]byte, 64<<10)
				for off := 0; off < each; off += len(buf) {
					for j := range buf {
						buf[j] = pattern(off + j)
					}
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
			// The reader: 64 KiB every 16 ms (4 MiB/s), checking the echo.
			buf := make([]byte, 64<<10)
			r := &results[i]
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			for n := 0; n < 1000; n++ {
				k, err := io.ReadFull(c, buf)
				for j := range k {
					if buf[j] != pattern(r.got+j) {
						r.err = fmt.Errorf("byte %d is %d, want %d", r.got+j, buf[j], pattern(r.got+j))
						return
					}
				}
				r.got += k
				if r.got >= 1<<20 && r.got-k < 1<<20 {
					started <- struct{}{}
				}
				if err != nil {
					r.err = err
					return
				}
				time.Sleep(16 * time.Millisecond)
			}
		}()
	}
	for range clients {
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			t.Fatal("the clients did not get their first MiB within 30 s")
		}
	}
	if code := s.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d; stderr:\n%s", code, s.stderr)
	}
	wg.Wait()
	for i, r := range results {
		if !errors.Is(r.err, io.EOF) && !errors.Is(r.err, io.ErrUnexpectedEOF) {
			t.Errorf("client %d: read %d bytes, then %v; want EOF (a reset throws away what the server had written)", i, r.got, r.err)
		}
		t.Logf("client %d: %d of %d bytes echoed before the end", i, r.got, each)
	}
}
