package transport_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

func validEnvelope(t testing.TB) *messages.Envelope {
	env := &messages.Envelope{From: "a", To: "b", Protocol: "pingpong"}
	if err := transport.MarshalPayload(env, &messages.Ping{N: 7}); err != nil {
		t.Fatal(err)
	}
	return env
}

func TestRoundTrip(t *testing.T) {
	b, err := transport.Encode(validEnvelope(t))
	if err != nil {
		t.Fatal(err)
	}
	env, err := transport.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	m, err := transport.UnmarshalPayload(env)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := m.(*messages.Ping); !ok || p.N != 7 {
		t.Fatalf("decoded %v, want Ping{N:7}", m)
	}
}

func TestSizeMatchesProto(t *testing.T) {
	envs := []*messages.Envelope{
		{},
		validEnvelope(t),
		{From: "a", To: "b", Protocol: "p", Kind: messages.Envelope_KIND_ACK, Session: 1 << 62, Ack: 300, PeerSession: 1 << 60},
		{From: strings.Repeat("n", 200), To: "b", Protocol: "p", Type: "x.Y", Payload: make([]byte, 70000), Session: 5, Seq: 1 << 35},
	}
	for _, env := range envs {
		if got, want := transport.Size(env), proto.Size(env); got != want {
			t.Fatalf("Size(%v) = %d, proto.Size = %d", env, got, want)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*messages.Envelope)
		want   error
		text   string
	}{
		{"no sender", func(e *messages.Envelope) { e.From = "" }, transport.ErrMalformed, "sender node name is empty"},
		{"bad receiver", func(e *messages.Envelope) { e.To = "b c" }, transport.ErrMalformed, `receiver node name "b c" has ' '`},
		{"no protocol", func(e *messages.Envelope) { e.Protocol = "" }, transport.ErrMalformed, "protocol name is empty"},
		{"bad type", func(e *messages.Envelope) { e.Type = "not a type" }, transport.ErrMalformed, "not a valid protobuf message name"},
		{"seq without session", func(e *messages.Envelope) { e.Seq = 3 }, transport.ErrMalformed, "without a session"},
		{"ack without session", func(e *messages.Envelope) { e.Kind = messages.Envelope_KIND_ACK }, transport.ErrMalformed, "acknowledgement without a session"},
		{"unknown kind", func(e *messages.Envelope) { e.Kind = 9 }, transport.ErrMalformed, "unknown envelope kind 9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := validEnvelope(t)
			c.mutate(env)
			b, err := proto.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			_, err = transport.Decode(b)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("Decode: %v; want %v mentioning %q", err, c.want, c.text)
			}
		})
	}
}

func TestDecodeGarbageAndSize(t *testing.T) {
	if _, err := transport.Decode([]byte{0xff, 0xff, 0xff}); !errors.Is(err, transport.ErrMalformed) {
		t.Fatalf("garbage: %v, want ErrMalformed", err)
	}
	if _, err := transport.Decode(make([]byte, transport.MaxEnvelopeSize+1)); !errors.Is(err, transport.ErrTooLarge) {
		t.Fatalf("oversized: %v, want ErrTooLarge", err)
	}
	env := validEnvelope(t)
	env.Payload = make([]byte, transport.MaxEnvelopeSize)
	if _, err := transport.Encode(env); !errors.Is(err, transport.ErrTooLarge) || !strings.Contains(err.Error(), "the limit is 4194304") {
		t.Fatalf("Encode oversized: %v, want ErrTooLarge naming the limit", err)
	}
}

func TestUnmarshalPayloadRejects(t *testing.T) {
	env := validEnvelope(t)
	env.Type = "troupe.nowhere.v1.Ghost"
	if _, err := transport.UnmarshalPayload(env); !errors.Is(err, transport.ErrUnknownType) || !strings.Contains(err.Error(), "troupe.nowhere.v1.Ghost") {
		t.Fatalf("unknown type: %v", err)
	}
	env = validEnvelope(t)
	env.Payload = []byte{0x08} // field 1, varint, truncated
	if _, err := transport.UnmarshalPayload(env); !errors.Is(err, transport.ErrMalformed) {
		t.Fatalf("truncated payload: %v, want ErrMalformed", err)
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := transport.Encode(validEnvelope(f))
	f.Add(b)
	env := &messages.Envelope{From: "a", To: "b", Protocol: "p"}
	if err := transport.MarshalPayload(env, &note{From: "a", N: 2, Tags: []string{"t"}}); err != nil {
		f.Fatal(err)
	}
	b, _ = transport.Encode(env)
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x01, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := transport.Decode(b)
		if err != nil {
			if !errors.Is(err, transport.ErrMalformed) && !errors.Is(err, transport.ErrTooLarge) {
				t.Fatalf("Decode error %v is neither ErrMalformed nor ErrTooLarge", err)
			}
			return
		}
		if err := transport.Validate(env); err != nil {
			t.Fatalf("Decode accepted an envelope Validate refuses: %v", err)
		}
		if env.Kind == messages.Envelope_KIND_DATA {
			if _, err := transport.UnmarshalPayload(env); err != nil && !errors.Is(err, transport.ErrUnknownType) && !errors.Is(err, transport.ErrMalformed) {
				t.Fatalf("UnmarshalPayload error %v is not typed", err)
			}
		}
		if _, err := transport.Encode(env); err != nil {
			t.Fatalf("re-encoding a decoded envelope: %v", err)
		}
		if got, want := transport.Size(env), proto.Size(env); got != want {
			t.Fatalf("Size says %d bytes, proto.Size %d", got, want)
		}
	})
}

// FuzzBatchEntries walks arbitrary bytes as a batch's envelopes, as a
// receiving protocol does with what the network brings: no panic, every
// error is ErrMalformed, and the entries' sizes add up to the bytes
// consumed.
func FuzzBatchEntries(f *testing.F) {
	b, _, _ := transport.AppendMessage(nil, &messages.Ping{N: 3})
	b, _, _ = transport.AppendEnvelope(b, &messages.Envelope{Kind: messages.Envelope_KIND_ACK, Session: 4, Ack: 9})
	b, _, _ = transport.AppendMessage(b, &messages.Pong{})
	b, _, _ = transport.AppendMessage(b, &note{From: "a", N: 1})
	f.Add(b)
	f.Add([]byte{0x0a, 0x02, 0x2a, 0x00})
	f.Add([]byte{0x0a, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		consumed := 0
		for rest := b; len(rest) > 0; {
			e, next, err := transport.NextEntry(rest)
			if err != nil {
				if !errors.Is(err, transport.ErrMalformed) {
					t.Fatalf("error %v is not ErrMalformed", err)
				}
				return
			}
			if e.Size != len(rest)-len(next) {
				t.Fatalf("entry size %d, consumed %d", e.Size, len(rest)-len(next))
			}
			consumed += e.Size
			rest = next
		}
		if consumed != len(b) {
			t.Fatalf("consumed %d of %d bytes", consumed, len(b))
		}
	})
}

// TestBatchEntriesRoundTrip: what AppendMessage and AppendEnvelope write,
// NextEntry reads back, in order; an entry decodes as the envelope proto
// would, and a message encoded at once is unaffected by later changes.
func TestBatchEntriesRoundTrip(t *testing.T) {
	ping := &messages.Ping{N: 42}
	b, n1, err := transport.AppendMessage(nil, ping)
	if err != nil {
		t.Fatal(err)
	}
	ping.N = 7
	ack := &messages.Envelope{From: "a", To: "b", Protocol: "p", Kind: messages.Envelope_KIND_ACK, Session: 4, Ack: 9}
	b, n2, err := transport.AppendEnvelope(b, ack)
	if err != nil {
		t.Fatal(err)
	}
	if ack.From != "a" || ack.Protocol != "p" {
		t.Errorf("AppendEnvelope changed the envelope's names: %v", ack)
	}
	b, n3, err := transport.AppendMessage(b, &messages.Pong{}) // empty payload
	if err != nil {
		t.Fatal(err)
	}
	if n1+n2+n3 != len(b) {
		t.Fatalf("sizes %d+%d+%d, buffer %d", n1, n2, n3, len(b))
	}
	e, rest, err := transport.NextEntry(b)
	if err != nil || e.Env != nil || string(e.Type) != "troupe.examples.v1.Ping" {
		t.Fatalf("entry 1: %+v, %v", e, err)
	}
	got := &messages.Ping{}
	if err := proto.Unmarshal(e.Payload, got); err != nil || got.N != 42 {
		t.Fatalf("entry 1 payload: %v, %v", got, err)
	}
	e, rest, err = transport.NextEntry(rest)
	if err != nil || e.Env == nil || e.Env.Kind != messages.Envelope_KIND_ACK || e.Env.Ack != 9 || e.Env.From != "" {
		t.Fatalf("entry 2: %+v, %v", e, err)
	}
	e, rest, err = transport.NextEntry(rest)
	if err != nil || e.Env != nil || string(e.Type) != "troupe.examples.v1.Pong" || len(e.Payload) != 0 || len(rest) != 0 {
		t.Fatalf("entry 3: %+v, %v, %d left", e, err, len(rest))
	}
	if _, _, err := transport.AppendMessage(nil, &messages.Envelope{Payload: make([]byte, transport.MaxEnvelopeSize)}); !errors.Is(err, transport.ErrTooLarge) {
		t.Errorf("oversized message: %v", err)
	}
}
