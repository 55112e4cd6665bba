package actors

import (
	"bytes"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/internal/testkit"
)

// serialHandler counts what it is given and notes any call that starts
// while another is still running, and any sender's message out of order.
type serialHandler struct {
	BaseHandler
	in       atomic.Bool
	overlaps atomic.Int32
	bytes    int
	last     []int // the last seq of each sender
	disorder int
	done     chan struct{}
	want     int // bytes and messages expected in all
	got      int
	finished bool // done is closed
}

// seqMsg is the n-th message of one sender.
type seqMsg struct{ sender, n int }

func (h *serialHandler) enter() {
	if h.in.Swap(true) {
		h.overlaps.Add(1)
	}
	runtime.Gosched() // widen the window in which a second call could start
}

func (h *serialHandler) leave() {
	if h.got == h.want && !h.finished {
		h.finished = true
		close(h.done)
	}
	h.in.Store(false)
}

func (h *serialHandler) Received(s *Socket, data []byte) {
	h.enter()
	h.bytes += len(data)
	h.got += len(data)
	s.Demand(1)
	h.leave()
}

func (h *serialHandler) Message(_ *Socket, msg any) {
	h.enter()
	if m, ok := msg.(*seqMsg); ok {
		if m.n != h.last[m.sender]+1 {
			h.disorder++
		}
		h.last[m.sender] = m.n
		h.got++
	}
	h.leave()
}

// TestAConnectionRunsOneCallAtATimeWhileReadsAndMessagesRace: a message
// posted to an idle connection is handled at once by its poster, without
// a trip through the mailbox's queue (mailbox.go) — the reads of its
// event loop or reader goroutine and the sends of other goroutines alike.
// Several goroutines sending to a connection while its peer writes must
// still find it handling one message at a time, each sender's messages in
// the order sent, nothing lost.
func TestAConnectionRunsOneCallAtATimeWhileReadsAndMessagesRace(t *testing.T) {
	const senders, perSender, chunks = 4, 400, 200
	for _, mode := range []ReadMode{ReadLoop, ReadGoroutine} {
		t.Run(mode.String(), func(t *testing.T) {
			sys := testkit.NewSystem(t)
			cc, sc := socketPair(t)
			chunk := bytes.Repeat([]byte("x"), 100)
			h := &serialHandler{last: make([]int, senders), done: make(chan struct{}),
				want: senders*perSender + chunks*len(chunk)}
			for i := range h.last {
				h.last[i] = -1
			}
			pid := startConn(t, sys, sc, 1, nil, ConnectionConfig{ReadMode: mode, ReadChunkSize: 64,
				Handler: func() Handler { return h }})
			var wg sync.WaitGroup
			for s := range senders {
				wg.Go(func() {
					for n := range perSender {
						sys.Root.Send(pid, &seqMsg{sender: s, n: n})
					}
				})
			}
			wg.Go(func() {
				for range chunks {
					if _, err := cc.Write(chunk); err != nil {
						t.Errorf("write: %v", err)
						return
					}
				}
			})
			wg.Wait()
			select {
			case <-h.done:
			case <-time.After(connWait):
				t.Fatalf("the %d bytes and messages were not all handled within %v", h.want, connWait)
			}
			if n := h.overlaps.Load(); n != 0 {
				t.Fatalf("%d calls of the handler began while another ran", n)
			}
			if h.disorder != 0 || h.bytes != chunks*len(chunk) {
				t.Fatalf("%d messages out of their sender's order, %d bytes of %d", h.disorder, h.bytes, chunks*len(chunk))
			}
		})
	}
}
