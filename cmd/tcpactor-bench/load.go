package main

// The client side of the bench: the four loads, run in the parent
// against a child server. Every loop is bounded in count and in time.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const dialTimeout = 5 * time.Second

// acceptResult is one round of the accept load.
type acceptResult struct{ connsPerSec float64 }

// measureAccept connects and closes n connections from a few concurrent
// dialers, and times until the server has accepted every one and finished
// with it (its live count is back to zero): the whole life of a connection
// that carries nothing.
func measureAccept(c *child, n, dialers int) (acceptResult, error) {
	warm := min(n/10+1, 50)
	if err := dialAndClose(c.addr, warm, dialers); err != nil {
		return acceptResult{}, err
	}
	var base int64
	if err := c.waitFor(10*time.Second, func(a, l, _ int64) bool { base = a; return a >= int64(warm) && l == 0 }); err != nil {
		return acceptResult{}, err
	}
	start := time.Now()
	if err := dialAndClose(c.addr, n, dialers); err != nil {
		return acceptResult{}, err
	}
	timeout := 10*time.Second + time.Duration(n)*time.Millisecond
	if err := c.waitFor(timeout, func(a, l, _ int64) bool { return a >= base+int64(n) && l == 0 }); err != nil {
		return acceptResult{}, err
	}
	return acceptResult{connsPerSec: float64(n) / time.Since(start).Seconds()}, nil
}

// dialAndClose opens and at once closes n connections, dialers at a time.
func dialAndClose(addr string, n, dialers int) error {
	var next atomic.Int64
	errs := make([]error, dialers)
	var wg sync.WaitGroup
	for d := range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				conn, err := net.DialTimeout("tcp", addr, dialTimeout)
				if err != nil {
					errs[d] = err
					return
				}
				conn.Close()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pingPongResult is one round of the ping-pong load.
type pingPongResult struct {
	roundTripsPerSec float64
	p50, p99         time.Duration
	cost             opCost // per round trip
}

// measurePingPong runs conns connections that each send 64 bytes and wait
// for them to come back, over and over, for d.
func measurePingPong(c *child, conns int, d time.Duration) (pingPongResult, error) {
	const size = 64
	perSec, lat, cost, err := closedLoop(c.addr, conns, d, "ping-pong", c.cpu, func(i int, conn net.Conn) func() error {
		out, in := make([]byte, size), make([]byte, size)
		for k := range out {
			out[k] = byte(i + k)
		}
		return func() error {
			if _, err := conn.Write(out); err != nil {
				return err
			}
			_, err := io.ReadFull(conn, in)
			return err
		}
	})
	if err != nil {
		return pingPongResult{}, err
	}
	return pingPongResult{roundTripsPerSec: perSec, p50: percentile(lat, 0.50), p99: percentile(lat, 0.99), cost: cost}, nil
}

// closedLoop is the driver of the request-reply loads: conns connections to
// addr, each with one operation in flight (op, made per connection by
// newOp), a few warm-up operations each, then as many as fit in d, all
// starting together. It returns the operations per second, their
// latencies, sorted, and what an operation cost (opCost). A stuck server
// fails the round, never hangs it.
func closedLoop(addr string, conns int, d time.Duration, name string, cpu func() (time.Duration, error), newOp func(i int, conn net.Conn) func() error) (float64, []time.Duration, opCost, error) {
	const warm, maxSamples = 20, 1 << 16
	cs, err := dialMany(addr, conns, 4)
	if err != nil {
		return 0, nil, opCost{}, err
	}
	defer closeAll(cs)
	hardStop := time.Now().Add(d + 10*time.Second)
	var (
		warmed, wg sync.WaitGroup
		start      = make(chan struct{})
		t0         time.Time
		done       = make([]int64, conns)
		samples    = make([][]time.Duration, conns)
		errs       = make([]error, conns)
	)
	for i, conn := range cs {
		_ = conn.SetDeadline(hardStop)
		op := newOp(i, conn)
		warmed.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range warm {
				if errs[i] = op(); errs[i] != nil {
					break
				}
			}
			warmed.Done()
			<-start
			if errs[i] != nil {
				return
			}
			end := t0.Add(d)
			lat := make([]time.Duration, 0, 4096)
			for {
				t := time.Now()
				if !t.Before(end) {
					break
				}
				if errs[i] = op(); errs[i] != nil {
					return
				}
				if len(lat) < maxSamples {
					lat = append(lat, time.Since(t))
				}
				done[i]++
			}
			samples[i] = lat
		}()
	}
	warmed.Wait()
	var cpu0, cpu1 time.Duration
	var cpuErr error
	if cpu != nil {
		cpu0, cpuErr = cpu()
	}
	// The client's CPU and the machine's idle time are best effort: a
	// platform without them reports none.
	client0, clientErr := selfCPU()
	idle0, idleErr := machineIdle()
	t0 = time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	if cpu != nil && cpuErr == nil {
		cpu1, cpuErr = cpu()
	}
	client1, clientErr1 := selfCPU()
	idle1, idleErr1 := machineIdle()
	if err := errors.Join(append(errs, cpuErr)...); err != nil {
		return 0, nil, opCost{}, fmt.Errorf("%s: %w", name, err)
	}
	var total int64
	var all []time.Duration
	for i := range conns {
		total += done[i]
		all = append(all, samples[i]...)
	}
	if len(all) == 0 || total == 0 {
		return 0, nil, opCost{}, fmt.Errorf("%s: nothing completed", name)
	}
	slices.Sort(all)
	n := time.Duration(total)
	cost := opCost{server: (cpu1 - cpu0) / n}
	if clientErr == nil && clientErr1 == nil {
		cost.client = (client1 - client0) / n
	}
	if idleErr == nil && idleErr1 == nil {
		cost.idle = (idle1 - idle0) / n
	}
	return float64(total) / elapsed.Seconds(), all, cost, nil
}

// opCost is what one operation of a closed loop cost: the server's CPU time
// (user and system, all its processes; 0 without a cpu function), the
// client's (this process, which runs nothing else meanwhile), and the time
// the machine's CPUs spent idle. The first two are figures a busy machine
// disturbs far less than the rates; the third says whether the rate was
// bounded by CPU (next to nothing idle) or by waiting.
type opCost struct {
	server, client, idle time.Duration
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

// bulkResult is one round of the bulk load.
type bulkResult struct {
	bytesPerSec float64
	peakRSS     int64 // the server's VmHWM after the load
}

// measureBulk runs conns connections that each have a writer sending 64 KiB
// writes and a reader taking the echo back, for d after a short warm-up.
func measureBulk(c *child, conns int, d time.Duration) (bulkResult, error) {
	const chunk = 64 << 10
	cs, err := dialMany(c.addr, conns, 4)
	if err != nil {
		return bulkResult{}, err
	}
	defer closeAll(cs)
	warm := d / 5
	hardStop := time.Now().Add(warm + d + 10*time.Second)
	for _, conn := range cs {
		_ = conn.SetDeadline(hardStop)
	}
	var (
		got  atomic.Int64
		stop atomic.Bool
		wg   sync.WaitGroup
		errs = make([]error, 2*conns)
	)
	for i, conn := range cs {
		wg.Add(2)
		go func() { // writer
			defer wg.Done()
			buf := make([]byte, chunk)
			for k := range buf {
				buf[k] = byte(k)
			}
			for !stop.Load() {
				if _, err := conn.Write(buf); err != nil {
					if !stop.Load() {
						errs[2*i] = err
					}
					return
				}
			}
		}()
		go func() { // reader
			defer wg.Done()
			buf := make([]byte, chunk)
			for !stop.Load() {
				n, err := conn.Read(buf)
				got.Add(int64(n))
				if err != nil {
					if !stop.Load() {
						errs[2*i+1] = err
					}
					return
				}
			}
		}()
	}
	time.Sleep(warm)
	b0, t0 := got.Load(), time.Now()
	time.Sleep(d)
	b1, elapsed := got.Load(), time.Since(t0)
	stop.Store(true)
	for _, conn := range cs {
		_ = conn.SetDeadline(time.Now()) // unblock both goroutines
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return bulkResult{}, fmt.Errorf("bulk: %w", err)
	}
	_, hwm, err := c.memory()
	if err != nil {
		return bulkResult{}, err
	}
	if b1 == b0 {
		return bulkResult{}, errors.New("bulk: nothing echoed")
	}
	return bulkResult{bytesPerSec: float64(b1-b0) / elapsed.Seconds(), peakRSS: hwm}, nil
}

// idleResult is one round of the idle-memory load.
type idleResult struct {
	bytesPerConn float64
	before       int64
	after        int64
}

// measureIdle opens n connections that send nothing and compares the
// server's RSS before and after, divided by n. With heap, the child then
// writes its heap profile (started with --heapprofile).
func measureIdle(c *child, n int, heap bool) (idleResult, error) {
	if err := dialAndClose(c.addr, 10, 2); err != nil { // warm the accept path
		return idleResult{}, err
	}
	if err := c.waitFor(10*time.Second, func(a, l, _ int64) bool { return a >= 10 && l == 0 }); err != nil {
		return idleResult{}, err
	}
	before, err := settledRSS(c)
	if err != nil {
		return idleResult{}, err
	}
	cs, err := dialMany(c.addr, n, 8)
	if err != nil {
		return idleResult{}, err
	}
	defer closeAll(cs)
	timeout := 10*time.Second + time.Duration(n)*time.Millisecond
	if err := c.waitFor(timeout, func(a, l, p int64) bool { return l >= int64(n) && p == 0 }); err != nil {
		return idleResult{}, err
	}
	time.Sleep(200 * time.Millisecond) // let every connection reach its idle state
	after, err := settledRSS(c)
	if err != nil {
		return idleResult{}, err
	}
	if heap {
		if l, err := c.Command("heap"); err != nil || l != "ok" {
			return idleResult{}, fmt.Errorf("%s server: heap profile: %q %v", c.kind, l, err)
		}
	}
	return idleResult{bytesPerConn: float64(after-before) / float64(n), before: before, after: after}, nil
}

// settledRSS is the child's RSS right after a collection that returned
// freed memory to the OS.
func settledRSS(c *child) (int64, error) {
	if err := c.GC(); err != nil {
		return 0, err
	}
	rss, _, err := c.memory()
	return rss, err
}

// dialMany opens n connections, dialers at a time; on any failure it closes
// the ones it opened.
func dialMany(addr string, n, dialers int) ([]net.Conn, error) {
	cs := make([]net.Conn, n)
	var next atomic.Int64
	errs := make([]error, dialers)
	var wg sync.WaitGroup
	for d := range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				conn, err := net.DialTimeout("tcp", addr, dialTimeout)
				if err != nil {
					errs[d] = err
					return
				}
				cs[i] = conn
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeAll(cs)
		return nil, err
	}
	return cs, nil
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
}

// floodResult is one round of the flood load.
type floodResult struct {
	peakRSS int64 // the server's VmHWM after the load
	sent    int64
}

// measureFlood runs conns clients that send 64 KiB writes for d and never
// read: an echo server that reads only as far as it can write back stops
// reading once the clients' receive buffers are full, so its memory stays
// bounded; one that reads on buffers everything it read and could not send.
func measureFlood(c *child, conns int, d time.Duration) (floodResult, error) {
	const chunk = 64 << 10
	cs, err := dialMany(c.addr, conns, 4)
	if err != nil {
		return floodResult{}, err
	}
	defer closeAll(cs)
	var (
		sent atomic.Int64
		stop atomic.Bool
		wg   sync.WaitGroup
		errs = make([]error, conns)
	)
	hardStop := time.Now().Add(d + 10*time.Second)
	for i, conn := range cs {
		_ = conn.SetDeadline(hardStop)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, chunk)
			for !stop.Load() {
				n, err := conn.Write(buf)
				sent.Add(int64(n))
				if err != nil {
					if !stop.Load() {
						errs[i] = err
					}
					return
				}
			}
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	for _, conn := range cs {
		_ = conn.SetDeadline(time.Now()) // unblock the writers stuck on a full socket
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return floodResult{}, fmt.Errorf("flood: %w", err)
	}
	_, hwm, err := c.memory()
	if err != nil {
		return floodResult{}, err
	}
	return floodResult{peakRSS: hwm, sent: sent.Load()}, nil
}
