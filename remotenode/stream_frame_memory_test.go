package remotenode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// TestAFrameHoldsOnlyTheMemoryOfTheBytesThatArrived: a peer (a ticket
// holder, or a broken node) that declares a frame of the largest size and
// sends a few bytes of it does not make the reader hold that size, whether
// the frame's header or its raw payload is the large part. The reader is
// caught inside the frame: io.Pipe's second Write returns only once the
// reader has taken it, so by then it has sized its memory for the frame.
func TestAFrameHoldsOnlyTheMemoryOfTheBytesThatArrived(t *testing.T) {
	const (
		declared = maxFrame
		sent     = 4 << 10 // of the frame, in two writes
		bound    = 4 << 20 // what the reader may hold meanwhile: far below declared
	)
	for _, c := range []struct {
		name    string
		payload int // the declared raw payload
	}{
		{"a large header", 0},
		{"a large payload", declared - 4 - 64},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, w := io.Pipe()
			fr := newFrameReader(r, "127.0.0.1:1")
			done := make(chan error, 1)
			go func() {
				_, err := fr.next()
				done <- err
			}()
			head := binary.BigEndian.AppendUint32(nil, declared)
			head = binary.BigEndian.AppendUint32(head, uint32(c.payload))
			runtime.GC()
			var before, during runtime.MemStats
			runtime.ReadMemStats(&before)
			if _, err := w.Write(append(head, make([]byte, sent/2)...)); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(make([]byte, sent/2)); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&during)
			_ = w.Close() // the reader ends with the frame cut short
			if err := <-done; !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("the cut frame ended with %v, want io.ErrUnexpectedEOF", err)
			}
			if grown := int64(during.HeapAlloc) - int64(before.HeapAlloc); grown > bound {
				t.Fatalf("the heap grew by %d bytes for a frame declared %d bytes long of which %d arrived; want at most %d",
					grown, declared, sent, bound)
			}
		})
	}
}

// TestLargeFramesReadBackWhole: frames larger than the reader's first step
// (a header of 300 KiB, a payload of 1 MiB and a bit) are read back byte
// for byte through the memory that grows as they arrive.
func TestLargeFramesReadBackWhole(t *testing.T) {
	data := make([]byte, 1<<20+3)
	for i := range data {
		data[i] = byte(i * 7)
	}
	env := &actor.MessageEnvelope{}
	env.SetHeader("big", strings.Repeat("h", 300<<10))
	var wire bytes.Buffer
	for _, m := range []struct {
		msg    any
		header actor.ReadonlyMessageHeader
	}{
		{&messages.Received{Data: data}, nil},
		{&messages.GetStatus{}, env.Header},
		{&messages.Write{Data: data, AckId: 9}, env.Header},
	} {
		f, _, err := encodeFrame(actor.NewPID("127.0.0.1:1", "target"), m.header, m.msg, nil)
		if err != nil {
			t.Fatal(err)
		}
		wire.Write(f.head)
		wire.Write(f.payload)
	}
	fr := newFrameReader(&wire, "127.0.0.1:1")
	for i := range 3 {
		f, err := fr.next()
		if err != nil || f.decodeFail != nil {
			t.Fatalf("frame %d: %v %v", i, err, f)
		}
		switch m := f.msg.(type) {
		case *messages.Received:
			if !bytes.Equal(m.Data, data) {
				t.Fatalf("frame %d: Received's data read back wrong (%d bytes)", i, len(m.Data))
			}
		case *messages.Write:
			if !bytes.Equal(m.Data, data) || m.AckId != 9 {
				t.Fatalf("frame %d: Write read back wrong (%d bytes, ack %d)", i, len(m.Data), m.AckId)
			}
		}
		if i > 0 && len(f.header["big"]) != 300<<10 {
			t.Fatalf("frame %d: its header read back with %d bytes", i, len(f.header["big"]))
		}
	}
	if _, err := fr.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the frames: %v, want io.EOF", err)
	}
}
