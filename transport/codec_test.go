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
