package remotenode

import (
	"testing"

	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The frames of Received and Write carry every field but data in their
// protobuf, whatever fields the two messages have: the encoder's copies
// without data, made field by field for speed, must keep up with the
// .proto. A field added to either message and not to its copy fails here.
func TestWithoutDataKeepsEveryOtherField(t *testing.T) {
	for _, c := range []struct {
		msg  proto.Message
		copy func(proto.Message) proto.Message
	}{
		{&messages.Received{}, func(m proto.Message) proto.Message { return receivedWithoutData(m.(*messages.Received)) }},
		{&messages.Write{}, func(m proto.Message) proto.Message { return writeWithoutData(m.(*messages.Write)) }},
	} {
		m := c.msg.ProtoReflect()
		fields := m.Descriptor().Fields()
		data := fields.ByName("data")
		for i := range fields.Len() {
			setSomething(t, m, fields.Get(i))
		}
		want := proto.Clone(c.msg).ProtoReflect()
		want.Clear(data)
		if got := c.copy(c.msg); !proto.Equal(got, want.Interface()) {
			t.Errorf("%s without data: got %v, want %v", m.Descriptor().FullName(), got, want.Interface())
		}
	}
}

// setSomething gives field fd of m a value that is not its default.
func setSomething(t *testing.T, m protoreflect.Message, fd protoreflect.FieldDescriptor) {
	t.Helper()
	if fd.IsList() || fd.IsMap() {
		t.Fatalf("%s: a repeated or map field; teach setSomething", fd.FullName())
	}
	var v protoreflect.Value
	switch fd.Kind() {
	case protoreflect.BoolKind:
		v = protoreflect.ValueOfBool(true)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		v = protoreflect.ValueOfInt32(7)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		v = protoreflect.ValueOfInt64(7)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		v = protoreflect.ValueOfUint32(7)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		v = protoreflect.ValueOfUint64(7)
	case protoreflect.FloatKind:
		v = protoreflect.ValueOfFloat32(7)
	case protoreflect.DoubleKind:
		v = protoreflect.ValueOfFloat64(7)
	case protoreflect.StringKind:
		v = protoreflect.ValueOfString("x")
	case protoreflect.BytesKind:
		v = protoreflect.ValueOfBytes([]byte("x"))
	case protoreflect.EnumKind:
		v = protoreflect.ValueOfEnum(1)
	case protoreflect.MessageKind:
		sub := m.NewField(fd).Message()
		sf := sub.Descriptor().Fields()
		for i := range sf.Len() {
			if f := sf.Get(i); !f.IsList() && !f.IsMap() && f.Kind() != protoreflect.MessageKind {
				setSomething(t, sub, f)
			}
		}
		v = protoreflect.ValueOfMessage(sub)
	default:
		t.Fatalf("%s: kind %v; teach setSomething", fd.FullName(), fd.Kind())
	}
	m.Set(fd, v)
}
