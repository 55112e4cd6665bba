package remotenode

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/protobuf/proto"
)

// FuzzRemoteGuardFilter gives the remote guard's envelope filter random
// bytes as a gRPC message of the remote's stream would bring them: whatever
// decodes as a MessageBatch goes through Guard.filter, and every
// envelope the filter keeps must then survive what the pinned endpoint
// reader does with it (endpoint_reader.go, onMessageBatch: index the
// senders, targets and type names, deserialize, unwrap a RootSerialized)
// without a panic — a panic there kills the node. Envelopes are only ever
// removed, never added or changed.
func FuzzRemoteGuardFilter(f *testing.F) {
	for _, b := range guardSeeds() {
		f.Add(b)
	}
	g := NewGuard(slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.Fuzz(func(t *testing.T, data []byte) {
		var rm remote.RemoteMessage
		if proto.Unmarshal(data, &rm) != nil {
			return
		}
		b := rm.GetMessageBatch()
		if b == nil {
			return
		}
		before := append([]*remote.MessageEnvelope(nil), b.Envelopes...)
		dropped := g.Dropped()
		g.filter(b, "127.0.0.1:1")
		if uint64(len(before)-len(b.Envelopes)) != g.Dropped()-dropped {
			t.Fatalf("filter kept %d of %d envelopes but counted %d dropped", len(b.Envelopes), len(before), g.Dropped()-dropped)
		}
		j := 0
		for _, e := range b.Envelopes {
			for j < len(before) && before[j] != e {
				j++
			}
			if j == len(before) {
				t.Fatal("filter kept an envelope that was not in the batch, or reordered them")
			}
			if err := readAsEndpointReader(b, e); err != nil {
				t.Fatalf("the filter kept an envelope the endpoint reader cannot survive: %v\nenvelope: %v\nbatch type names %q, %d targets, %d senders",
					err, e, b.TypeNames, len(b.Targets), len(b.Senders))
			}
		}
	})
}

// readAsEndpointReader repeats, for one envelope, the steps of the pinned
// endpoint reader that can panic, and reports a panic as an error.
func readAsEndpointReader(b *remote.MessageBatch, e *remote.MessageEnvelope) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	if e.Sender != 0 {
		sender := b.Senders[e.Sender-1]
		if e.SenderRequestId > 0 {
			sender = proto.Clone(sender).(*actor.PID)
			sender.RequestId = e.SenderRequestId
		}
	}
	target := b.Targets[e.Target]
	if e.TargetRequestId > 0 {
		target = proto.Clone(target).(*actor.PID)
		target.RequestId = e.TargetRequestId
	}
	msg, derr := remote.Deserialize(e.MessageData, b.TypeNames[e.TypeId], e.SerializerId)
	if derr != nil {
		return nil // the reader logs it and ends the stream: the node lives
	}
	if v, ok := msg.(remote.RootSerialized); ok {
		_, _ = v.Deserialize()
	}
	return nil
}

// guardSeeds are batches the remote really sends (a request and a reply of
// tcpactor's protocol) and the shapes that crash an unguarded reader: a type
// this binary does not link, indexes outside the batch, an unknown
// serializer, a nil envelope.
func guardSeeds() [][]byte {
	status, _ := proto.Marshal(&messages.GetStatus{})
	listen, _ := proto.Marshal(&messages.Listen{Address: "127.0.0.1", Port: 7070})
	pid := &actor.PID{Address: "127.0.0.1:8090", Id: "tcpserver"}
	from := &actor.PID{Address: "127.0.0.1:8091", Id: "future$1"}
	good := &remote.MessageBatch{
		TypeNames: []string{"tcpactor.v1.GetStatus", "tcpactor.v1.Listen"},
		Targets:   []*actor.PID{pid},
		Senders:   []*actor.PID{from},
		Envelopes: []*remote.MessageEnvelope{
			{TypeId: 0, MessageData: status, Target: 0, Sender: 1, SenderRequestId: 7},
			{TypeId: 1, MessageData: listen, Target: 0},
		},
	}
	unknownType := proto.Clone(good).(*remote.MessageBatch)
	unknownType.TypeNames[0] = "elsewhere.v1.NotLinkedHere"
	badIndexes := proto.Clone(good).(*remote.MessageBatch)
	badIndexes.Envelopes = append(badIndexes.Envelopes,
		&remote.MessageEnvelope{TypeId: 5}, &remote.MessageEnvelope{Target: -1}, &remote.MessageEnvelope{Sender: 9},
		&remote.MessageEnvelope{SerializerId: 7}, &remote.MessageEnvelope{SerializerId: 1, MessageData: []byte("{")}, nil)
	var out [][]byte
	for _, b := range []*remote.MessageBatch{good, unknownType, badIndexes} {
		data, err := proto.Marshal(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: b}})
		if err != nil {
			panic(err)
		}
		out = append(out, data)
	}
	return out
}
