package remotenode

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
)

// QuietPeerLoss wraps h, the slog handler of an actor system that runs
// Proto.Actor remote or cluster, so that the pinned Proto.Actor's reports of
// a peer node going away are logged at INFO instead of ERROR. A peer
// leaving (a client node that got its answer, a handler node that stopped,
// this node closing its own streams as it shuts down, a cluster member not
// up yet or gone) is ordinary for a node; whoever depends on that peer
// learns of it through Terminated, and tcpactor reports what matters itself
// (a lost server, a lost owner). Every other record passes unchanged.
func QuietPeerLoss(h slog.Handler) slog.Handler { return peerLossIsInfo{h} }

type peerLossIsInfo struct{ slog.Handler }

func (h peerLossIsInfo) Enabled(ctx context.Context, l slog.Level) bool {
	// Decided per record in Handle: an ERROR may be lowered there.
	return l >= slog.LevelError || h.Handler.Enabled(ctx, l)
}

func (h peerLossIsInfo) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && (peerLossMessages[r.Message] || healthServerClosed(r)) {
		r.Level = slog.LevelInfo
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h peerLossIsInfo) WithAttrs(as []slog.Attr) slog.Handler {
	return peerLossIsInfo{h.Handler.WithAttrs(as)}
}

func (h peerLossIsInfo) WithGroup(name string) slog.Handler {
	return peerLossIsInfo{h.Handler.WithGroup(name)}
}

// peerLossMessages are the pinned Proto.Actor's log messages about a peer's
// stream ending (its own orderly close included: the endpoint writer logs
// "lost connection" when its node shuts down), about reaching a peer that is
// gone (a last Unwatch to a node that stopped makes it retry for a while),
// and the automanaged cluster provider's about polling a member that is not
// up yet or has left.
var peerLossMessages = map[string]bool{
	"EndpointWriter lost connection":                      true,
	"EndpointReader failed to send disconnection message": true,
	"EndpointWriter failed to connect":                    true,
	"EndpointWriter failed to create receive stream":      true,
	"Bad connection to the node health status":            true,
}

// healthServerClosed is the automanaged provider's report, always at ERROR,
// that its health server ended, when it ended because the member shut down.
func healthServerClosed(r slog.Record) bool {
	if r.Message != "Automanaged server stopping..!" {
		return false
	}
	closed := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && errors.Is(err, http.ErrServerClosed) {
			closed = true
		}
		return !closed
	})
	return closed
}
