package actors

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// errWouldBlock is a non-blocking read or write that found the socket not
// ready.
var errWouldBlock = errors.New("tcpactor: operation would block")

// reader is the goroutine that reads a connection: one read per permit the
// actor gives it (one permit per credit, one at a time), so it never reads
// ahead of the owner's demand. While it waits for the peer it holds no
// buffer: a read that finds nothing returns its pooled buffer, then waits
// for readability.
type reader struct {
	conn    net.Conn
	raw     syscall.RawConn // nil: plain blocking reads (wrapped connections)
	size    int
	timeout time.Duration
	permit  <-chan struct{}
	done    <-chan struct{}
	send    func(any)
	poll    rawIO
	// res is every read's result: one is with the actor at a time (the
	// next read waits for the permit its handling gives), so it is reused.
	res readResult
}

func (r *reader) run() {
	for {
		select {
		case <-r.permit:
		case <-r.done:
			return
		}
		res := r.read()
		r.send(res)
		if res.err != nil {
			return // EOF, error or closed: the actor ends the connection
		}
	}
}

// read returns n > 0 bytes, or an error (io.EOF when the peer sent FIN).
func (r *reader) read() *readResult {
	if r.timeout > 0 {
		_ = r.conn.SetReadDeadline(time.Now().Add(r.timeout))
	}
	if r.raw == nil {
		buf := getBuf(r.size)
		n, err := r.conn.Read(*buf)
		return r.res.set(buf, n, err)
	}
	buf, n, err := r.poll.read(r.raw, r.size)
	return r.res.set(buf, n, err)
}

// set makes res the result of one read: n > 0 bytes in buf, or an error
// (io.EOF for a read of nothing), the buffer then back to the pool.
func (res *readResult) set(buf *[]byte, n int, err error) *readResult {
	if n <= 0 {
		putBuf(buf)
		if err == nil {
			err = io.EOF
		}
		*res = readResult{err: err}
		return res
	}
	*res = readResult{buf: buf, n: n, err: err}
	return res
}

// Read buffers come from one pool per chunk size. The default size's pool
// is a variable of its own: a look-up in the sync.Map hashes its key, and
// did so twice a read for the size almost every connection reads with (2 %
// of an event loop's CPU under 64-byte ping-pong).
var (
	bufPools    sync.Map // int → *sync.Pool, for the other sizes
	defaultBufs = newBufPool(DefaultReadChunkSize)
)

func newBufPool(size int) *sync.Pool {
	return &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}}
}

// bufPool is the pool of the buffers of a size: nil when there is none yet
// and add is false.
func bufPool(size int, add bool) *sync.Pool {
	if size == DefaultReadChunkSize {
		return defaultBufs
	}
	p, ok := bufPools.Load(size)
	if !ok {
		if !add {
			return nil
		}
		p, _ = bufPools.LoadOrStore(size, newBufPool(size))
	}
	return p.(*sync.Pool)
}

func getBuf(size int) *[]byte {
	return bufPool(size, true).Get().(*[]byte)
}

func putBuf(b *[]byte) {
	if b == nil {
		return
	}
	if p := bufPool(cap(*b), false); p != nil {
		*b = (*b)[:cap(*b)]
		p.Put(b)
	}
}

// recycleBuf puts memory a Write's sender gave up (Write.donate) into the
// read pool of its capacity, when there is one: an echo-like owner's
// Received buffers come back for the next reads instead of the pool making
// a new 32 KiB chunk (zeroed, and later collected) for every read.
func recycleBuf(b []byte) {
	if cap(b) != 0 {
		if p := bufPool(cap(b), false); p != nil {
			recycleInto(p, b)
		}
	}
}

// recycleInto is recycleBuf's work, apart so that the header it puts on
// the heap is made only for memory a pool takes (an ack of a write without
// donated memory, or of a small echo's copy, allocates nothing).
func recycleInto(p *sync.Pool, b []byte) {
	b = b[:cap(b)]
	p.Put(&b)
}

// ReuseBuffer gives the memory of a Received's data back to the read
// buffers of this process's connections, for a later read. Call it only
// when nothing will touch data again (server.Conn does once Read has copied
// a chunk out); memory of another size is left to the garbage collector.
func ReuseBuffer(data []byte) { recycleBuf(data) }

// BorrowBuffer returns n bytes for data that arrives off a node's own
// stream (remotenode.Stream): taken from the read buffers of this
// process's connections when n fits their default chunk, so that a Write
// from another node, which the connection gives back once written, and a
// Received that server.Conn hands back with ReuseBuffer, cycle through one
// pool instead of being allocated, zeroed and collected per chunk. Less
// than half a chunk is allocated to size, as a read of that size is
// (takeBuf): a small message must not pin a whole chunk.
func BorrowBuffer(n int) []byte {
	if n < DefaultReadChunkSize/2 || n > DefaultReadChunkSize {
		return make([]byte, n)
	}
	return (*getBuf(DefaultReadChunkSize))[:n]
}

// fromAnotherNode tells whether the message being handled was read off
// another node's stream: the guard (server.RemoteGuard) stamped it with
// RemotePeerHeader. Such a message's byte fields were unmarshalled for this
// actor alone. A remote sender is not proof: local code may name one.
func fromAnotherNode(ctx actor.Context) bool {
	h := ctx.MessageHeader()
	return h != nil && h.Get(RemotePeerHeader) != ""
}

// takeBuf turns n read bytes into a slice an owner may keep. A mostly full
// buffer is handed over as it is (the pool makes another); a mostly empty
// one is copied to the exact size and goes back to the pool.
func takeBuf(b *[]byte, n int) []byte {
	if n >= cap(*b)/2 {
		return (*b)[:n:n]
	}
	out := make([]byte, n)
	copy(out, *b)
	putBuf(b)
	return out
}

// socketError maps a read or write error to Qt's SocketError, with the one
// table messages.FromError keeps. It returns nil for io.EOF: the peer's FIN
// is not an error of the read (onPeerClosed reports RemoteHostClosedError
// for it, as Qt).
func socketError(err error) *messages.Error {
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	return messages.FromError(err)
}
