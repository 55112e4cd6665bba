package actors

import (
	"slices"
	"strings"
	"testing"
)

// pushAll queues one write per string, numbered from first.
func pushAll(q *writeQueue, first uint64, data ...string) {
	for i, d := range data {
		q.push(pendingWrite{data: []byte(d), ackID: first + uint64(i)})
	}
}

// pending is what the queue still holds, write by write.
func pending(q *writeQueue) []string {
	var out []string
	for _, w := range q.writes[q.head:] {
		out = append(out, string(w.data))
	}
	return out
}

func TestWriteQueueSpreadsWrittenBytesOverItsWritesAndAcknowledgesTheFinishedOnes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		writes    []string
		n         int
		wantDone  []uint64
		wantRest  []string
		wantBytes int
	}{
		{"nothing written", []string{"abc"}, 0, nil, []string{"abc"}, 3},
		{"a partial write keeps its rest at the head", []string{"abcdef", "gh"}, 4, nil, []string{"ef", "gh"}, 4},
		{"one n finishes one write exactly", []string{"ab", "cd"}, 2, []uint64{1}, []string{"cd"}, 2},
		{"one n finishes several writes and part of the next", []string{"ab", "cd", "efg", "h"}, 5, []uint64{1, 2}, []string{"fg", "h"}, 3},
		{"one n finishes every write", []string{"ab", "cd", "e"}, 5, []uint64{1, 2, 3}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q writeQueue
			pushAll(&q, 1, tc.writes...)
			var done []uint64
			q.written(tc.n, doneFunc(func(w pendingWrite) { done = append(done, w.ackID) }))
			if !slices.Equal(done, tc.wantDone) {
				t.Errorf("acknowledged %v, want %v", done, tc.wantDone)
			}
			if got := pending(&q); !slices.Equal(got, tc.wantRest) {
				t.Errorf("pending %q, want %q", got, tc.wantRest)
			}
			if q.bytes != tc.wantBytes || q.len() != len(tc.wantRest) {
				t.Errorf("bytes %d, len %d; want %d, %d", q.bytes, q.len(), tc.wantBytes, len(tc.wantRest))
			}
		})
	}
}

// A writer goroutine's job is a copy of the queue's buffers; writes queued
// while it runs go behind the job's. When the job fails, what it did not
// write is still first in line, and fails first.
func TestWriteQueueAfterAFailedJobGivesBackTheUnwrittenRestFirstInOrder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		job      []string // queued when the job starts
		during   []string // queued while it runs
		n        int      // what it wrote before failing
		wantDone []uint64
		wantRest []uint64 // failed, in order
		wantHead string   // what is left of the first failed write
	}{
		{"failed before writing", []string{"ab", "cd"}, []string{"ef"}, 0, nil, []uint64{1, 2, 3}, "ab"},
		{"failed inside the first write", []string{"abc", "de"}, []string{"f"}, 1, nil, []uint64{1, 2, 3}, "bc"},
		{"failed between two writes", []string{"ab", "cd"}, []string{"ef"}, 2, []uint64{1}, []uint64{2, 3}, "cd"},
		{"failed inside a later write", []string{"ab", "cd", "ef"}, []string{"gh", "ij"}, 5, []uint64{1, 2}, []uint64{3, 4, 5}, "f"},
		{"failed after writing all it had", []string{"ab"}, []string{"cd"}, 2, []uint64{1}, []uint64{2}, "cd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q writeQueue
			pushAll(&q, 1, tc.job...)
			bufs := q.buffers()
			if got := len(bufs); got != len(tc.job) {
				t.Fatalf("the job carries %d buffers, want %d", got, len(tc.job))
			}
			pushAll(&q, uint64(len(tc.job))+1, tc.during...)
			var done []uint64
			q.written(tc.n, doneFunc(func(w pendingWrite) { done = append(done, w.ackID) }))
			if !slices.Equal(done, tc.wantDone) {
				t.Errorf("acknowledged %v, want %v", done, tc.wantDone)
			}
			var failed []uint64
			head := ""
			q.drain(func(w pendingWrite) {
				if failed == nil {
					head = string(w.data)
				}
				failed = append(failed, w.ackID)
			})
			if !slices.Equal(failed, tc.wantRest) || head != tc.wantHead {
				t.Errorf("failed %v starting with %q, want %v starting with %q", failed, head, tc.wantRest, tc.wantHead)
			}
			if q.len() != 0 || q.bytes != 0 {
				t.Errorf("after drain: len %d, bytes %d; want an empty queue", q.len(), q.bytes)
			}
		})
	}
}

// An acknowledgement may queue a write (a Handler answering its WriteAcked):
// it goes behind what is still pending, and the rest of n still finishes the
// writes it covers.
func TestWriteQueueTakesWritesQueuedByAnAcknowledgementBehindTheRest(t *testing.T) {
	var q writeQueue
	pushAll(&q, 1, "ab", "cd", "ef")
	var done []uint64
	q.written(5, doneFunc(func(w pendingWrite) {
		done = append(done, w.ackID)
		if w.ackID == 1 {
			q.push(pendingWrite{data: []byte("gh"), ackID: 4})
		}
	}))
	if !slices.Equal(done, []uint64{1, 2}) {
		t.Errorf("acknowledged %v, want [1 2]", done)
	}
	if got := pending(&q); !slices.Equal(got, []string{"f", "gh"}) || q.bytes != 3 {
		t.Errorf("pending %q (%d bytes), want [f gh] (3 bytes)", got, q.bytes)
	}
}

// A queue that never empties (a writer that always has more) gives back the
// room of the writes already gone.
func TestWriteQueueThatNeverEmptiesDoesNotGrow(t *testing.T) {
	var q writeQueue
	pushAll(&q, 1, "a")
	for i := range 10_000 {
		q.push(pendingWrite{data: []byte("b"), ackID: uint64(i + 2)})
		q.written(1, doneFunc(func(pendingWrite) {}))
		if q.len() != 1 {
			t.Fatalf("after %d writes: %d pending, want 1", i+1, q.len())
		}
	}
	if c := cap(q.writes); c > 256 {
		t.Errorf("the queue's array holds %d writes for 1 pending", c)
	}
	if got := strings.Join(pending(&q), ""); got != "b" {
		t.Errorf("pending %q, want \"b\"", got)
	}
}

// doneFunc is a func as the queue's writeDone.
type doneFunc func(pendingWrite)

func (f doneFunc) ack(w pendingWrite) { f(w) }
