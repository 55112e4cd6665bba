package actors

import (
	"io"
	"sync"
)

// handover holds what a goroutine hands to an actor (an accepted connection,
// a hook's result, a proxy's BIND) until the actor takes it. The goroutine
// cannot hand the thing itself in a message: Proto.Actor drops a user
// message that is still queued when the actor stops (Stop overtakes it) or
// that is sent after, and nobody would close it. So the goroutine puts it
// here and sends only its id; the actor takes it by id; close, run when the
// actor stops (or no longer wants it), closes whatever is still held and
// whatever is put afterwards.
type handover[T io.Closer] struct {
	mu     sync.Mutex
	closed bool
	next   uint64
	held   map[uint64]T
}

// put holds v and returns its id. false: the handover is closed and v has
// been closed, there is nobody to take it.
func (h *handover[T]) put(v T) (uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		closeHeld(v)
		return 0, false
	}
	if h.held == nil {
		h.held = map[uint64]T{}
	}
	h.next++
	h.held[h.next] = v
	return h.next, true
}

// take hands over what put held under id; false: nothing is held under id
// (taken already, or closed with the handover).
func (h *handover[T]) take(id uint64) (T, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.held[id]
	delete(h.held, id)
	return v, ok
}

// close closes what is still held; what is put from now on is closed at once.
func (h *handover[T]) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for id, v := range h.held {
		closeHeld(v)
		delete(h.held, id)
	}
}

func closeHeld[T io.Closer](v T) {
	if any(v) != nil {
		v.Close()
	}
}
