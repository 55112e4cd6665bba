package main

// The load: clients on loopback that hold connections open, echo through
// them at a steady rate and replace some of them all the time (churn).

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ioWait bounds every client read, write and dial: a server that stops
// answering is an error, not a hang.
const ioWait = 30 * time.Second

type loadConfig struct {
	addr     string
	conns    int           // connections held open
	churn    float64       // connections replaced per second
	rate     float64       // echoes per second, over all connections
	duration time.Duration // how long the load runs once every connection is open
	maxMsg   int           // largest echo message, bytes
}

type loadResult struct {
	Held       int           `json:"held"`        // connections open when the load began
	Ramp       time.Duration `json:"ramp_ns"`     // time to open them
	Ran        time.Duration `json:"ran_ns"`      // time the load ran after the ramp
	Opened     int64         `json:"opened"`      // connections opened by churn
	Closed     int64         `json:"closed"`      // connections closed by churn
	Echoes     int64         `json:"echoes"`      // echoes verified byte for byte
	Bytes      int64         `json:"bytes"`       // bytes echoed (each way)
	Mismatches int64         `json:"mismatches"`  // echoes that came back different
	Errors     int64         `json:"errors"`      // dials, reads or writes that failed
	FirstError string        `json:"first_error"` // the first failure, for the report
}

// load is one run of the load.
type load struct {
	cfg  loadConfig
	stop chan struct{}
	res  loadResult
	errs atomic.Int64
	mism atomic.Int64
	ech  atomic.Int64
	byt  atomic.Int64
	opn  atomic.Int64
	cls  atomic.Int64
	once sync.Once
	mu   sync.Mutex
}

// slot is one of the connections held open; its goroutine is the only one
// that touches conn.
type slot struct {
	conn  net.Conn
	rng   *rand.Rand
	buf   []byte
	back  []byte
	churn chan struct{}
}

func (l *load) fail(format string, args ...any) {
	l.errs.Add(1)
	l.once.Do(func() {
		l.mu.Lock()
		l.res.FirstError = fmt.Sprintf(format, args...)
		l.mu.Unlock()
	})
}

// runLoad opens cfg.conns connections, then echoes and churns for
// cfg.duration, then closes every connection.
func runLoad(cfg loadConfig) loadResult {
	l := &load{cfg: cfg, stop: make(chan struct{})}
	start := time.Now()
	slots := l.open()
	l.res.Ramp = time.Since(start)
	l.res.Held = len(slots)

	var wg sync.WaitGroup
	period := time.Duration(float64(cfg.conns) / cfg.rate * float64(time.Second))
	for _, s := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.serve(s, period)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.churner(slots)
	}()
	ran := time.Now()
	time.Sleep(cfg.duration)
	close(l.stop)
	wg.Wait()
	l.res.Ran = time.Since(ran)
	for _, s := range slots {
		if s.conn != nil {
			s.conn.Close()
		}
	}
	l.res.Errors, l.res.Mismatches = l.errs.Load(), l.mism.Load()
	l.res.Echoes, l.res.Bytes = l.ech.Load(), l.byt.Load()
	l.res.Opened, l.res.Closed = l.opn.Load(), l.cls.Load()
	return l.res
}

// open dials every connection, a few at a time.
func (l *load) open() []*slot {
	slots := make([]*slot, l.cfg.conns)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(slots) {
					return
				}
				s := &slot{rng: rand.New(rand.NewPCG(uint64(i), 7)), buf: make([]byte, l.cfg.maxMsg),
					back: make([]byte, l.cfg.maxMsg), churn: make(chan struct{}, 1)}
				c, err := net.DialTimeout("tcp", l.cfg.addr, ioWait)
				if err != nil {
					l.fail("dial %s: %v", l.cfg.addr, err)
				}
				s.conn = c
				slots[i] = s
			}
		}()
	}
	wg.Wait()
	open := slots[:0]
	for _, s := range slots {
		if s.conn != nil {
			open = append(open, s)
		}
	}
	return open
}

// serve echoes through one slot about once a period, and replaces its
// connection when the churner says so.
func (l *load) serve(s *slot, period time.Duration) {
	timer := time.NewTimer(jitter(s.rng, period))
	defer timer.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-timer.C:
			if s.conn != nil {
				l.echo(s)
			}
			timer.Reset(jitter(s.rng, period))
		case <-s.churn:
			if s.conn != nil {
				s.conn.Close()
				l.cls.Add(1)
			}
			c, err := net.DialTimeout("tcp", l.cfg.addr, ioWait)
			if err != nil {
				s.conn = nil
				l.fail("churn: dial %s: %v", l.cfg.addr, err)
				continue
			}
			s.conn = c
			l.opn.Add(1)
			l.echo(s) // a new connection is served at once
		}
	}
}

// echo sends one message of random length and content and checks that
// exactly it comes back. A broken connection is closed and left empty.
func (l *load) echo(s *slot) {
	n := 1 + s.rng.IntN(len(s.buf))
	for i := range s.buf[:n] {
		s.buf[i] = byte(s.rng.Uint32())
	}
	_ = s.conn.SetDeadline(time.Now().Add(ioWait))
	_, err := s.conn.Write(s.buf[:n])
	if err == nil {
		_, err = io.ReadFull(s.conn, s.back[:n])
	}
	if err != nil {
		l.fail("echo on %s: %v", s.conn.LocalAddr(), err)
		s.conn.Close()
		s.conn = nil
		return
	}
	if string(s.back[:n]) != string(s.buf[:n]) {
		l.mism.Add(1)
		l.fail("echo on %s: %d bytes came back different", s.conn.LocalAddr(), n)
		return
	}
	l.ech.Add(1)
	l.byt.Add(int64(n))
}

// churner asks random slots to replace their connection, cfg.churn times a
// second.
func (l *load) churner(slots []*slot) {
	if l.cfg.churn <= 0 || len(slots) == 0 {
		return
	}
	rng := rand.New(rand.NewPCG(1, 2))
	every := time.Duration(float64(time.Second) / l.cfg.churn)
	tick := time.NewTicker(every)
	defer tick.Stop()
	start := time.Now()
	asked := 0
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
			// A late tick asks for all the churn that was due, so the rate
			// holds even when the ticker falls behind.
			due := int(time.Since(start) / every)
			for ; asked < due; asked++ {
				select {
				case slots[rng.IntN(len(slots))].churn <- struct{}{}:
				default: // that slot is still busy with its last one
				}
			}
		}
	}
}

func jitter(rng *rand.Rand, period time.Duration) time.Duration {
	return period/2 + time.Duration(rng.Int64N(int64(period)+1))
}
