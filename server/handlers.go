package server

import (
	"fmt"

	"github.com/tcpactor/tcpactor/actors"
)

// Echo is the handler factory of an echo server: every byte received is
// written back (see actors.EchoHandler).
func Echo() actors.HandlerFactory { return actors.EchoHandler() }

// Discard is the handler factory of a sink: bytes are read and dropped, one
// more chunk granted per chunk received.
func Discard() actors.HandlerFactory {
	return func() actors.Handler { return discardHandler{} }
}

type discardHandler struct{ actors.BaseHandler }

func (discardHandler) Received(s *actors.Socket, _ []byte) { s.Demand(1) }

// HandlerByName maps a handler's command-line name to its factory: "echo",
// "discard", or "none" (nil: connections wait in the pending queue for an
// owner actor).
func HandlerByName(name string) (actors.HandlerFactory, error) {
	switch name {
	case "echo":
		return Echo(), nil
	case "discard":
		return Discard(), nil
	case "none":
		return nil, nil
	default:
		return nil, fmt.Errorf("unknown handler %q: want echo, discard or none", name)
	}
}
