package remotenode

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/protobuf/proto"
)

// seedFrames are frames as a peer's transport writes them.
func seedFrames(t testing.TB) [][]byte {
	t.Helper()
	sender := actor.NewPID("127.0.0.1:2", "owner")
	var out [][]byte
	for _, m := range []struct {
		msg    any
		header map[string]string
	}{
		{&messages.Received{Connection: actor.NewPID("127.0.0.1:2", "conn"), Data: bytes.Repeat([]byte{'r'}, 40<<10), Donate: true}, nil},
		{&messages.Write{Data: []byte("hello"), AckId: 3, Demand: 1, Donate: true}, map[string]string{"k": "v"}},
		{&actor.Watch{Watcher: sender}, nil},
		{&actor.Terminated{Who: sender, Why: actor.TerminatedReason_Stopped}, nil},
		{&messages.GetStatus{}, nil},
	} {
		var h actor.ReadonlyMessageHeader
		if m.header != nil {
			env := &actor.MessageEnvelope{}
			for k, v := range m.header {
				env.SetHeader(k, v)
			}
			h = env.Header
		}
		f, _, err := encodeFrame(actor.NewPID("127.0.0.1:1", "target"), h, m.msg, sender)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append(append([]byte(nil), f.head...), f.payload...))
	}
	return out
}

// TestFramesReadBackAsTheyWereWritten: each message a transport frames
// reads back equal, with its target, sender, header and raw data.
func TestFramesReadBackAsTheyWereWritten(t *testing.T) {
	frames := seedFrames(t)
	fr := newFrameReader(bytes.NewReader(bytes.Join(frames, nil)), "127.0.0.1:1")
	var got []*inFrame
	for {
		f, err := fr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || f.decodeFail != nil {
			t.Fatalf("frame %d: %v %v", len(got), err, f)
		}
		got = append(got, f)
	}
	if len(got) != len(frames) {
		t.Fatalf("read %d frames of %d", len(got), len(frames))
	}
	r := got[0].msg.(*messages.Received)
	if len(r.Data) != 40<<10 || r.Data[0] != 'r' || !r.Donate || r.Connection.Id != "conn" {
		t.Fatalf("Received read back as %v (%d bytes)", r.Connection, len(r.Data))
	}
	if w := got[1].msg.(*messages.Write); string(w.Data) != "hello" || w.AckId != 3 || w.Demand != 1 || got[1].header["k"] != "v" {
		t.Fatalf("Write read back as %v, header %v", w, got[1].header)
	}
	for i, f := range got {
		if f.target.Id != "target" || f.target.Address != "127.0.0.1:1" || f.sender.Id != "owner" || f.sender.Address != "127.0.0.1:2" {
			t.Fatalf("frame %d: target %v, sender %v", i, f.target, f.sender)
		}
	}
	if !proto.Equal(got[2].msg.(proto.Message), &actor.Watch{Watcher: actor.NewPID("127.0.0.1:2", "owner")}) {
		t.Fatalf("Watch read back as %v", got[2].msg)
	}
}

// FuzzStreamFrames: whatever bytes a peer with a ticket sends, the reader
// neither panics nor takes a frame past its limit: each frame is read
// (decoded, or refused with a reason) or the stream ends with an error.
func FuzzStreamFrames(f *testing.F) {
	frames := seedFrames(f)
	for _, fr := range frames {
		f.Add(fr)
	}
	f.Add(bytes.Join(frames, nil))
	f.Add(frames[0][:20])
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := newFrameReader(bytes.NewReader(data), "127.0.0.1:1")
		fr.max = 1 << 20
		for range 1000 {
			f, err := fr.next()
			if err != nil {
				return
			}
			if f.decodeFail == nil && (f.msg == nil || f.target == nil) {
				t.Fatalf("a frame read without a message or a target: %+v", f)
			}
		}
	})
}
