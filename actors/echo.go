package actors

import "github.com/tcpactor/tcpactor/messages"

// EchoHandler serves each connection with an echo: every byte received is
// written back, in order, and nothing else.
//
// Back-pressure runs end to end: the handler grants one more read credit
// only when the write of a chunk it echoed has reached the kernel. A client
// that sends without reading fills its own receive buffer, then the
// server's send buffer; the echo's writes stop being acknowledged, so the
// connection stops reading and TCP slows the client down. Server memory per
// connection stays at credit × chunk, and the echo never skips bytes: a write
// that fails aborts the connection instead of leaving a gap.
func EchoHandler() HandlerFactory {
	return func() Handler { return &echoHandler{} }
}

type echoHandler struct {
	BaseHandler
	sent uint64 // ack id of the last echoed chunk
}

func (h *echoHandler) Received(s *Socket, data []byte) {
	h.sent++
	s.Write(data, h.sent)
}

func (h *echoHandler) WriteAcked(s *Socket, _ uint64) { s.Demand(1) }

func (h *echoHandler) WriteFailed(s *Socket, _ uint64, _ *messages.Error) { s.Abort() }
