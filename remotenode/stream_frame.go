package remotenode

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/actors"
	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The frames of a node-to-node stream. Each message is one frame:
//
//	u32 length       bytes after this field, payload included (big endian)
//	u32 payload      raw bytes at the end of the frame (Received/Write data)
//	str target id    (uvarint length + bytes; strings below alike)
//	uvarint target request id
//	str sender address ("": no sender), str sender id, uvarint sender request id
//	uvarint header count, then str key, str value for each
//	str type         the protobuf full name ("tcpactor.v1.Received", "actor.Watch")
//	...              the protobuf message (without its data for Received/Write)
//	...              the payload
//
// The target's address is the stream's peer itself and is not sent. A
// Received's or Write's data travels raw after the protobuf: written with
// one writev straight from the sender's slice, read into a pooled chunk.

// maxFrame bounds a frame, as MaxRemoteMessage bounds a remote batch.
const maxFrame = MaxRemoteMessage

// frame is one encoded message waiting for its stream's writer.
type frame struct {
	head    []byte // the length fields, the header and the protobuf
	payload []byte // raw data, sent after head; nil for most messages
	recycle []byte // the data's whole memory when its sender gave it up (Write.donate, Received.donate)
}

// written gives the frame's memory back once it is on the wire.
func (f *frame) written() {
	if f.recycle != nil {
		actors.ReuseBuffer(f.recycle)
	}
}

// rest is what is left of f after its first n bytes were written.
func (f *frame) rest(n int) *frame {
	r := &frame{recycle: f.recycle}
	if n < len(f.head) {
		r.head, r.payload = f.head[n:], f.payload
	} else {
		r.payload = f.payload[n-len(f.head):]
	}
	return r
}

// errNotProto is the refusal of a message the stream cannot carry.
var errNotProto = errors.New("not a protobuf message")

// encodeFrame makes the frame of msg to target with header and sender.
func encodeFrame(target *actor.PID, header actor.ReadonlyMessageHeader, msg any, sender *actor.PID) (*frame, string, error) {
	if v, ok := msg.(remote.RootSerializable); ok { // cluster pub-sub batches: as the remote does
		s, err := v.Serialize()
		if err != nil {
			return nil, fmt.Sprintf("%T", msg), err
		}
		msg = s
	}
	pm, ok := msg.(proto.Message)
	if !ok {
		return nil, fmt.Sprintf("%T", msg), errNotProto
	}
	f := &frame{}
	switch m := pm.(type) {
	case *messages.Received:
		if len(m.Data) > 0 {
			f.payload, pm = m.Data, receivedWithoutData(m)
			if m.Donate {
				f.recycle = m.Data
			}
		}
	case *messages.Write:
		if len(m.Data) > 0 {
			f.payload, pm = m.Data, writeWithoutData(m)
			if m.Donate {
				f.recycle = m.Data
			}
		}
	}
	name := string(proto.MessageName(pm))
	b := make([]byte, 8, 64+len(name)+len(target.Id)+proto.Size(pm))
	b = appendString(b, target.Id)
	b = binary.AppendUvarint(b, uint64(target.RequestId))
	if sender != nil {
		b = appendString(b, sender.Address)
		b = appendString(b, sender.Id)
		b = binary.AppendUvarint(b, uint64(sender.RequestId))
	} else {
		b = appendString(b, "")
	}
	if header == nil || header.Length() == 0 {
		b = binary.AppendUvarint(b, 0)
	} else {
		keys := header.Keys()
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			b = appendString(b, k)
			b = appendString(b, header.Get(k))
		}
	}
	b = appendString(b, name)
	// The size proto.Size just cached: marshalling need not walk the
	// message a second time to find it.
	b, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, pm)
	if err != nil {
		return nil, name, err
	}
	n := len(b) - 4 + len(f.payload)
	if n > maxFrame {
		return nil, name, fmt.Errorf("%d bytes: more than a frame's %d", n, maxFrame)
	}
	binary.BigEndian.PutUint32(b[0:], uint32(n))
	binary.BigEndian.PutUint32(b[4:], uint32(len(f.payload)))
	f.head = b
	return f, name, nil
}

// receivedWithoutData and writeWithoutData are m without its data, which
// the frame carries raw: shallow copies made field by field (no
// reflection: they are on every round trip's path), so a field added to
// either message must be added here too (TestWithoutDataKeepsEveryOtherField).
func receivedWithoutData(m *messages.Received) proto.Message {
	return &messages.Received{Connection: m.Connection, Donate: m.Donate}
}

func writeWithoutData(m *messages.Write) proto.Message {
	return &messages.Write{AckId: m.AckId, Demand: m.Demand, Donate: m.Donate}
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// inFrame is a decoded frame.
type inFrame struct {
	target     *actor.PID
	sender     *actor.PID
	header     map[string]string // nil: none
	name       string
	msg        any
	decodeFail error // the protobuf did not decode: refused with a reason
}

// frameReader reads the frames of one incoming stream. It keeps what repeats
// from frame to frame (the last target and sender PIDs, the message types)
// so that a run of frames between the same two actors allocates little.
type frameReader struct {
	r      *bufio.Reader
	max    int    // the largest frame taken (maxFrame)
	local  string // this node's address, for target PIDs
	buf    []byte
	types  map[string]protoreflect.MessageType
	target *actor.PID
	sender *actor.PID
}

func newFrameReader(r io.Reader, local string) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 64<<10), max: maxFrame, local: local, types: map[string]protoreflect.MessageType{}}
}

// errBadFrame ends a stream whose bytes are not frames.
var errBadFrame = errors.New("malformed frame")

// next reads one frame. An error ends the stream; a frame whose message
// cannot be decoded comes back with decodeFail set.
func (fr *frameReader) next() (*inFrame, error) {
	var lens [8]byte
	if _, err := io.ReadFull(fr.r, lens[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(lens[0:]))
	p := int(binary.BigEndian.Uint32(lens[4:]))
	if n > fr.max || p > n-4 {
		return nil, fmt.Errorf("%w: length %d, payload %d", errBadFrame, n, p)
	}
	b, err := readFull(fr.r, fr.buf, n-4-p)
	fr.buf = b
	if err != nil {
		return nil, err
	}
	var payload []byte
	if p > 0 {
		if p <= actors.DefaultReadChunkSize { // a pooled chunk, or a small one
			payload = actors.BorrowBuffer(p)
		}
		if payload, err = readFull(fr.r, payload, p); err != nil {
			return nil, err
		}
	}
	d := decoder{b: b}
	f := &inFrame{}
	targetID, targetReq := d.str(), d.uvarint()
	senderAddr := d.str()
	var senderID string
	var senderReq uint64
	if senderAddr != "" {
		senderID, senderReq = d.str(), d.uvarint()
	}
	nh := d.uvarint()
	if nh > uint64(len(b)) {
		return nil, fmt.Errorf("%w: %d headers", errBadFrame, nh)
	}
	for i := uint64(0); i < nh; i++ {
		if f.header == nil {
			f.header = make(map[string]string, nh)
		}
		k := d.str()
		f.header[k] = d.str()
	}
	f.name = d.str()
	if d.err != nil {
		return nil, d.err
	}
	if t := fr.target; t != nil && t.Id == targetID && uint64(t.RequestId) == targetReq {
		f.target = t
	} else {
		f.target = &actor.PID{Address: fr.local, Id: targetID, RequestId: uint32(targetReq)}
		fr.target = f.target
	}
	if senderAddr != "" {
		if s := fr.sender; s != nil && s.Address == senderAddr && s.Id == senderID && uint64(s.RequestId) == senderReq {
			f.sender = s
		} else {
			f.sender = &actor.PID{Address: senderAddr, Id: senderID, RequestId: uint32(senderReq)}
			fr.sender = f.sender
		}
	}
	f.msg, f.decodeFail = fr.decode(f.name, d.b, payload)
	return f, nil
}

// readStep is the most memory a frame reader reserves ahead of the bytes
// that have arrived.
const readStep = 64 << 10

// readFull reads n bytes into buf's memory when it has room for them, and
// otherwise into memory that grows as the bytes arrive (doubling, from
// readStep): a frame's lengths are the peer's word, and a peer that declares
// 64 MiB and sends a few bytes must not make the node hold 64 MiB. So what
// a frame holds is at most twice what has arrived, or readStep.
func readFull(r io.Reader, buf []byte, n int) ([]byte, error) {
	if cap(buf) >= n {
		buf = buf[:n]
		_, err := io.ReadFull(r, buf)
		return buf, err
	}
	buf = buf[:0]
	for len(buf) < n {
		want := min(n, len(buf)+max(len(buf), readStep))
		buf = slices.Grow(buf, want-len(buf))
		m, err := io.ReadFull(r, buf[len(buf):want])
		buf = buf[:len(buf)+m]
		if errors.Is(err, io.EOF) && len(buf) > 0 {
			err = io.ErrUnexpectedEOF // as io.ReadFull of the n bytes would say
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// decode unmarshals a message of type name and puts payload back in it.
func (fr *frameReader) decode(name string, b, payload []byte) (any, error) {
	mt, ok := fr.types[name]
	if !ok {
		var err error
		if mt, err = protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name)); err != nil {
			return nil, fmt.Errorf("protobuf type %q is not linked into this binary", name)
		}
		if len(fr.types) < 1024 { // a peer cannot grow it without bound: names must be linked types
			fr.types[name] = mt
		}
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%s that does not decode: %w", name, err)
	}
	if len(payload) > 0 {
		switch m := m.(type) {
		case *messages.Received:
			m.Data = payload
		case *messages.Write:
			m.Data = payload
		default:
			return nil, fmt.Errorf("%s with raw data: only Received and Write carry any", name)
		}
	}
	if v, ok := m.(remote.RootSerialized); ok {
		r, err := v.Deserialize()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return r, nil
	}
	return m, nil
}

// decoder reads the fields of a frame's header; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad varint", errBadFrame)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: string of %d bytes in %d", errBadFrame, n, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
