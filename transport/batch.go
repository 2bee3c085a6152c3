package transport

import (
	"fmt"
	"reflect"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/messages"
)

// A Batch's envelopes field holds entries: for each envelope, the byte
// 0x0a (field 1, length-delimited), a varint length and the envelope
// without its names (they are the batch's). The functions below write and
// walk them without decoding or copying a payload twice.

const (
	fieldEntry   = 1 // an entry, as a repeated Envelope field 1
	fieldType    = 5 // Envelope.type
	fieldPayload = 6 // Envelope.payload
)

// AppendMessage appends to b an entry for a best-effort data envelope that
// carries m: a protobuf message, encoded straight into b, or a pointer to a
// struct registered with messages.Register. It returns the longer buffer
// and the entry's size; on error, b unchanged.
func AppendMessage(b []byte, m any) ([]byte, int, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return appendStruct(b, m)
	}
	name := pm.ProtoReflect().Descriptor().FullName()
	n := proto.Size(pm)
	inner := protowire.SizeTag(fieldType) + protowire.SizeBytes(len(name))
	if n > 0 {
		inner += protowire.SizeTag(fieldPayload) + protowire.SizeBytes(n)
	}
	if inner > MaxEnvelopeSize {
		return b, 0, fmt.Errorf("%w: %s of %d bytes; the limit is %d", ErrTooLarge, name, n, MaxEnvelopeSize)
	}
	start := len(b)
	b = protowire.AppendTag(b, fieldEntry, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(inner))
	b = protowire.AppendTag(b, fieldType, protowire.BytesType)
	b = protowire.AppendString(b, string(name))
	if n > 0 {
		b = protowire.AppendTag(b, fieldPayload, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(n))
		before := len(b)
		var err error
		// proto.Size left the sizes in the message: no second walk.
		b, err = proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, pm)
		if err != nil {
			return b[:start], 0, fmt.Errorf("transport: encoding %s: %w", name, err)
		}
		if len(b)-before != n {
			return b[:start], 0, fmt.Errorf("transport: %s encoded to %d bytes, not the %d it measured: was it changed while being sent?", name, len(b)-before, n)
		}
	}
	return b, len(b) - start, nil
}

// appendStruct is AppendMessage for a registered struct. Its encoding's
// size is known only once it is written, so it is written into b after
// room for the longest header, which is then written and the payload
// moved up to it.
func appendStruct(b []byte, m any) ([]byte, int, error) {
	st, ok := messages.StructTypeOf(m)
	if !ok {
		return b, 0, messages.NotRegistered(reflect.TypeOf(m))
	}
	name := st.Name()
	const maxLen = 4 // varint bytes of a length up to MaxEnvelopeSize
	start := len(b)
	room := 1 + maxLen + protowire.SizeTag(fieldType) + protowire.SizeBytes(len(name)) + protowire.SizeTag(fieldPayload) + maxLen
	b = slices.Grow(b, room+16)[:start+room]
	b, err := st.AppendMarshal(b, m)
	if err != nil {
		return b[:start], 0, fmt.Errorf("transport: %w", err)
	}
	n := len(b) - start - room
	inner := protowire.SizeTag(fieldType) + protowire.SizeBytes(len(name)) +
		protowire.SizeTag(fieldPayload) + protowire.SizeBytes(n)
	if inner > MaxEnvelopeSize {
		return b[:start], 0, fmt.Errorf("%w: %s of %d bytes; the limit is %d", ErrTooLarge, name, n, MaxEnvelopeSize)
	}
	h := protowire.AppendTag(b[:start], fieldEntry, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(inner))
	h = protowire.AppendTag(h, fieldType, protowire.BytesType)
	h = protowire.AppendString(h, name)
	h = protowire.AppendTag(h, fieldPayload, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(n))
	end := len(h) + copy(b[len(h):], b[start+room:])
	return b[:end], end - start, nil
}

// AppendEnvelope appends to b an entry for env, without its names. It
// returns the longer buffer and the entry's size; on error, b unchanged.
func AppendEnvelope(b []byte, env *messages.Envelope) ([]byte, int, error) {
	from, to, protocol := env.From, env.To, env.Protocol
	env.From, env.To, env.Protocol = "", "", ""
	defer func() { env.From, env.To, env.Protocol = from, to, protocol }()
	n := proto.Size(env)
	if n > MaxEnvelopeSize {
		return b, 0, fmt.Errorf("%w: envelope of %d bytes for %s/%s; the limit is %d", ErrTooLarge, n, to, protocol, MaxEnvelopeSize)
	}
	start := len(b)
	b = protowire.AppendTag(b, fieldEntry, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, env)
	if err != nil {
		return b[:start], 0, fmt.Errorf("transport: encoding an envelope: %w", err)
	}
	return b, len(b) - start, nil
}

// Entry is one envelope of a batch.
type Entry struct {
	// Env is set for anything but best-effort data (reliable data, an
	// acknowledgement): the envelope decoded whole, without its names.
	Env *messages.Envelope
	// Type and Payload are set for best-effort data (Env nil): the
	// payload's type name and encoding, both slices of the batch.
	Type, Payload []byte
	// Size is the entry's encoded size in the batch.
	Size int
}

// NextEntry reads the entry at the start of b (a Batch's envelopes) and
// returns it with the rest of b. Malformed bytes give an ErrMalformed
// error saying where.
func NextEntry(b []byte) (Entry, []byte, error) {
	num, wt, n := protowire.ConsumeTag(b)
	if n < 0 || num != fieldEntry || wt != protowire.BytesType {
		return Entry{}, nil, fmt.Errorf("%w: a batch entry must start with the byte 0x0a (field 1, bytes); got %d bytes starting %x", ErrMalformed, len(b), b[:min(len(b), 4)])
	}
	v, m := protowire.ConsumeBytes(b[n:])
	if m < 0 {
		return Entry{}, nil, fmt.Errorf("%w: a batch entry's length runs past the batch's %d bytes", ErrMalformed, len(b))
	}
	e := Entry{Size: n + m}
	rest := b[n+m:]
	if plain(v, &e) {
		if len(e.Type) == 0 {
			return Entry{}, nil, fmt.Errorf("%w: a data envelope without a payload type", ErrMalformed)
		}
		return e, rest, nil
	}
	env := &messages.Envelope{}
	if err := proto.Unmarshal(v, env); err != nil {
		return Entry{}, nil, fmt.Errorf("%w: a batch entry of %d bytes: %v", ErrMalformed, len(v), err)
	}
	if env.From != "" || env.To != "" || env.Protocol != "" {
		return Entry{}, nil, fmt.Errorf("%w: an envelope with names inside a batch, which names them once", ErrMalformed)
	}
	e.Env = env
	return e, rest, nil
}

// plain reads v as best-effort data: an envelope with a type and a payload
// and nothing else. It reports false for anything else (the caller decodes
// it whole, and reports what is wrong with it).
func plain(v []byte, e *Entry) bool {
	for len(v) > 0 {
		num, wt, n := protowire.ConsumeTag(v)
		if n < 0 || wt != protowire.BytesType || num != fieldType && num != fieldPayload {
			return false
		}
		val, m := protowire.ConsumeBytes(v[n:])
		if m < 0 {
			return false
		}
		if num == fieldType {
			e.Type = val
		} else {
			e.Payload = val
		}
		v = v[n+m:]
	}
	return true
}
