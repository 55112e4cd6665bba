package actors

// The write queue of a connection (Pekko's PendingWrite): the Writes not yet
// wholly in the kernel, oldest first, and the one rule for what happens when
// n bytes reach the kernel — whether a non-blocking write from the actor or
// a writer goroutine's writev put them there.

import (
	"net"

	"github.com/asynkron/protoactor-go/actor"
)

// pendingWrite is one Write waiting for (or on its way to) the wire.
type pendingWrite struct {
	data   []byte // what is left of it to write
	ackID  uint64
	demand int        // credit granted when the write is on the wire (Write.demand)
	to     *actor.PID // where WriteAck/WriteFailed go; nil: nowhere
	local  bool       // issued by the local Handler: report through its callbacks
	// donated is the Write's whole data when its sender gave the memory up
	// (Write.donate, or a Write from another node): once it is on the wire
	// it goes to the read pool.
	donated []byte
}

// writeQueue holds the pending writes in order. A writer goroutine's job is
// a copy of the queue's buffers, not a part taken out of it: the writes it
// carries stay at the head until its n is accounted with written, so that
// whatever it left unwritten is still first in line, before the writes
// queued meanwhile. Its zero value is an empty queue.
type writeQueue struct {
	writes []pendingWrite // writes[head:] are pending
	head   int
	bytes  int      // bytes pending: ConnectionInfo.bytes_to_write
	iov    [][]byte // batch's buffer, reused
}

// len is the number of pending writes.
func (q *writeQueue) len() int { return len(q.writes) - q.head }

// push queues w at the tail; w.data must not be empty.
func (q *writeQueue) push(w pendingWrite) {
	q.writes = append(q.writes, w)
	q.bytes += len(w.data)
}

// last is the write pushed last (the queue must not be empty).
func (q *writeQueue) last() *pendingWrite { return &q.writes[len(q.writes)-1] }

// batch is the pending data of at most max writes, for one writev. The
// slice is reused by the next batch: clear it after use, so that it does not
// keep written data alive.
func (q *writeQueue) batch(max int) [][]byte {
	q.iov = q.iov[:0]
	for i := q.head; i < len(q.writes) && len(q.iov) < max; i++ {
		q.iov = append(q.iov, q.writes[i].data)
	}
	return q.iov
}

// buffers is the pending data of every write, in a slice of its own: a
// writer goroutine's job, which the queue does not touch while it runs.
func (q *writeQueue) buffers() net.Buffers {
	bufs := make(net.Buffers, 0, q.len())
	for i := q.head; i < len(q.writes); i++ {
		bufs = append(bufs, q.writes[i].data)
	}
	return bufs
}

// writeDone is told of each write that is wholly written (the connection:
// its ack). An interface, not a func: the connection's method value would be
// allocated at every call.
type writeDone interface{ ack(pendingWrite) }

// written spreads n bytes that reached the kernel over the writes at the
// head: each write now wholly written leaves the queue and is given to
// done, in order; the first one not wholly written keeps its unwritten rest
// at the head. done may push writes (a handler answering its WriteAcked);
// they queue behind the rest. n never exceeds the bytes pending.
func (q *writeQueue) written(n int, done writeDone) {
	if n <= 0 {
		return
	}
	q.bytes -= n
	for n > 0 && q.len() > 0 {
		w := &q.writes[q.head]
		if n < len(w.data) {
			w.data = w.data[n:]
			break
		}
		n -= len(w.data)
		finished := *w
		*w = pendingWrite{}
		q.head++
		done.ack(finished)
	}
	q.compact()
}

// drain takes every pending write out of the queue, in order, and gives it
// to each: the end of a connection, where they fail.
func (q *writeQueue) drain(each func(pendingWrite)) {
	for q.len() > 0 {
		w := q.writes[q.head]
		q.writes[q.head] = pendingWrite{}
		q.head++
		each(w)
	}
	q.compact()
	q.bytes = 0
}

// compact gives back the room of the writes already gone: all of it when
// the queue is empty, by moving the pending ones down once the gone ones
// are the larger part, so that a queue that never empties does not grow.
func (q *writeQueue) compact() {
	switch {
	case q.head == len(q.writes):
		q.writes, q.head = q.writes[:0], 0
	case q.head >= 32 && 2*q.head >= len(q.writes):
		n := copy(q.writes, q.writes[q.head:])
		clear(q.writes[n:])
		q.writes, q.head = q.writes[:n], 0
	}
}
