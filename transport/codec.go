package transport

import (
	"fmt"
	"reflect"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/troupe-dev/troupe/messages"
)

// maxNameLen bounds node and protocol names (a DNS name's length).
const maxNameLen = 253

// ValidateName checks a node or protocol name: 1 to 253 characters of
// letters, digits, '.', '_' and '-'. what names the thing in the error.
// It takes any string type, so actors.NodeName and actors.ProtocolName
// need no conversion.
func ValidateName[S ~string](what string, name S) error {
	if name == "" {
		return fmt.Errorf("%s name is empty; use 1 to %d letters, digits, '.', '_' or '-'", what, maxNameLen)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("%s name is %d characters long; at most %d are allowed", what, len(name), maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%s name %q has %q at byte %d; use letters, digits, '.', '_' or '-'", what, name, c, i)
		}
	}
	return nil
}

// Validate checks the fields of an envelope that arrived from the network.
func Validate(env *messages.Envelope) error {
	if err := ValidateName("sender node", env.GetFrom()); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := ValidateName("receiver node", env.GetTo()); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := ValidateName("protocol", env.GetProtocol()); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch env.GetKind() {
	case messages.Envelope_KIND_DATA:
		if !protoreflect.FullName(env.GetType()).IsValid() {
			return fmt.Errorf("%w: payload type %q is not a valid protobuf message name", ErrMalformed, env.GetType())
		}
		if env.GetSeq() != 0 && env.GetSession() == 0 {
			return fmt.Errorf("%w: reliable data (seq %d) without a session", ErrMalformed, env.GetSeq())
		}
	case messages.Envelope_KIND_ACK:
		if env.GetSession() == 0 {
			return fmt.Errorf("%w: acknowledgement without a session", ErrMalformed)
		}
	default:
		return fmt.Errorf("%w: unknown envelope kind %d; valid kinds are DATA (0) and ACK (1)", ErrMalformed, env.GetKind())
	}
	return nil
}

// Encode marshals an envelope for the wire, refusing one over MaxEnvelopeSize.
func Encode(env *messages.Envelope) ([]byte, error) {
	if n := proto.Size(env); n > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: envelope of %d bytes for %s/%s; the limit is %d", ErrTooLarge, n, env.GetTo(), env.GetProtocol(), MaxEnvelopeSize)
	}
	return proto.Marshal(env)
}

// Decode parses and validates an envelope from untrusted bytes.
func Decode(b []byte) (*messages.Envelope, error) {
	env, err := Unmarshal(b)
	if err != nil {
		return nil, err
	}
	if err := Validate(env); err != nil {
		return nil, err
	}
	return env, nil
}

// Unmarshal parses an envelope from untrusted bytes, refusing one over
// MaxEnvelopeSize, without validating its fields: for a caller that
// completes them first (a broadcast names no receiver on the wire), then
// calls Validate. Everyone else wants Decode.
func Unmarshal(b []byte) (*messages.Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: %d bytes; the limit is %d", ErrTooLarge, len(b), MaxEnvelopeSize)
	}
	env := &messages.Envelope{}
	if err := proto.Unmarshal(b, env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return env, nil
}

// MarshalPayload encodes a protocol message into the payload fields of env:
// a protobuf message, or a pointer to a struct registered with
// messages.Register. Anything else fails with messages.ErrNotRegistered.
func MarshalPayload(env *messages.Envelope, m any) error {
	name, b, err := Marshal(m)
	if err != nil {
		return err
	}
	env.Type = name
	env.Payload = b
	return nil
}

// Marshal encodes a protocol message (as [MarshalPayload]) and returns its
// wire name with its encoding.
func Marshal(m any) (name string, b []byte, err error) {
	if pm, ok := m.(proto.Message); ok {
		b, err := proto.Marshal(pm)
		if err != nil {
			return "", nil, fmt.Errorf("transport: encoding %s: %w", proto.MessageName(pm), err)
		}
		return string(proto.MessageName(pm)), b, nil
	}
	st, ok := messages.StructTypeOf(m)
	if !ok {
		return "", nil, messages.NotRegistered(reflect.TypeOf(m))
	}
	b, err = st.Marshal(m)
	if err != nil {
		return "", nil, fmt.Errorf("transport: %w", err)
	}
	return st.Name(), b, nil
}

// PayloadType decodes the payloads of one message type: a protobuf message
// linked into this binary, or a struct registered with messages.Register.
// The zero PayloadType decodes nothing.
type PayloadType struct {
	proto protoreflect.MessageType
	plain *messages.StructType
}

// FindType finds the message type a data envelope names, or fails with
// ErrUnknownType. Registered structs are looked up first; Register refuses
// a name that protobuf's registry holds.
func FindType(name string) (PayloadType, error) {
	if st, ok := messages.LookupStruct(name); ok {
		return PayloadType{plain: st}, nil
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
	if err != nil {
		return PayloadType{}, fmt.Errorf("%w: %q is neither a protobuf message linked into this binary nor a struct registered with messages.Register", ErrUnknownType, name)
	}
	return PayloadType{proto: mt}, nil
}

// Name is the type's wire name.
func (t PayloadType) Name() string {
	if t.plain != nil {
		return t.plain.Name()
	}
	if t.proto != nil {
		return string(t.proto.Descriptor().FullName())
	}
	return ""
}

// Decode decodes a payload from the network into a new message: a
// protobuf message, or a pointer to the registered struct. Bytes that do
// not decode give an ErrMalformed error naming the type.
func (t PayloadType) Decode(b []byte) (any, error) {
	switch {
	case t.plain != nil:
		m, err := t.plain.Unmarshal(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return m, nil
	case t.proto != nil:
		m := t.proto.New().Interface()
		if err := proto.Unmarshal(b, m); err != nil {
			return nil, fmt.Errorf("%w: payload of type %s: %v", ErrMalformed, t.proto.Descriptor().FullName(), err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("%w: the zero PayloadType", ErrUnknownType)
}

// UnmarshalPayload decodes the payload of a data envelope into a message of
// the type it names, which must be linked into this binary (protobuf) or
// registered (messages.Register).
func UnmarshalPayload(env *messages.Envelope) (any, error) {
	t, err := FindType(env.GetType())
	if err != nil {
		return nil, fmt.Errorf("%w (from %s for protocol %s)", err, env.GetFrom(), env.GetProtocol())
	}
	m, err := t.Decode(env.GetPayload())
	if err != nil {
		return nil, fmt.Errorf("%w (from %s)", err, env.GetFrom())
	}
	return m, nil
}

// Size is the encoded size of env, as proto.Size computes it, without
// walking the message reflectively: every field of an Envelope has a tag
// below 16, so each costs one tag byte, plus a length for strings and bytes.
func Size(env *messages.Envelope) int {
	n := sizeBytes(len(env.From)) + sizeBytes(len(env.To)) + sizeBytes(len(env.Protocol)) +
		sizeBytes(len(env.Type)) + sizeBytes(len(env.Payload)) +
		sizeVarint(uint64(env.Kind)) + sizeVarint(env.Session) + sizeVarint(env.Seq) + sizeVarint(env.Ack) +
		sizeVarint(env.PeerSession)
	return n + len(env.ProtoReflect().GetUnknown())
}

func sizeBytes(n int) int {
	if n == 0 {
		return 0
	}
	return 1 + varintLen(uint64(n)) + n
}

func sizeVarint(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + varintLen(v)
}

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
