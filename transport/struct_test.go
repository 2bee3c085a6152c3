package transport_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// note is a struct message: no .proto file, registered once by name.
type note struct {
	From string
	N    uint64
	Tags []string
}

var _ = messages.Register[note]("transporttest.Note")

// TestStructRoundTrip: a registered struct travels in an envelope and in a
// batch entry, and comes back as a pointer to the struct, under its name.
func TestStructRoundTrip(t *testing.T) {
	want := note{From: "a", N: 9, Tags: []string{"x", "y"}}
	env := &messages.Envelope{From: "a", To: "b", Protocol: "p"}
	if err := transport.MarshalPayload(env, &want); err != nil {
		t.Fatal(err)
	}
	if env.Type != "transporttest.Note" {
		t.Fatalf("type %q, want the registered name", env.Type)
	}
	b, err := transport.Encode(env)
	if err != nil {
		t.Fatal(err)
	}
	back, err := transport.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	m, err := transport.UnmarshalPayload(back)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := m.(*note); !ok || got.N != 9 || got.From != "a" || len(got.Tags) != 2 {
		t.Fatalf("decoded %#v, want %+v", m, want)
	}

	entries, n, err := transport.AppendMessage(nil, &want)
	if err != nil {
		t.Fatal(err)
	}
	entries, _, _ = transport.AppendMessage(entries, &messages.Ping{N: 1})
	e, rest, err := transport.NextEntry(entries)
	if err != nil || e.Env != nil || string(e.Type) != "transporttest.Note" || e.Size != n {
		t.Fatalf("entry: %+v, %v", e, err)
	}
	typ, err := transport.FindType(string(e.Type))
	if err != nil || typ.Name() != "transporttest.Note" {
		t.Fatalf("FindType: %v, %v", typ, err)
	}
	m, err = typ.Decode(e.Payload)
	if got, ok := m.(*note); err != nil || !ok || got.N != 9 {
		t.Fatalf("entry payload: %#v, %v", m, err)
	}
	if e, _, err = transport.NextEntry(rest); err != nil || string(e.Type) != "troupe.examples.v1.Ping" {
		t.Fatalf("the protobuf entry after it: %+v, %v", e, err)
	}
}

// TestStructRefused: what is neither protobuf nor registered is refused
// when sent, naming the type and what to send instead; a payload that is
// not the registered struct's is refused when received.
func TestStructRefused(t *testing.T) {
	type unregistered struct{ N int }
	for _, c := range []struct {
		m    any
		want string
	}{
		{&unregistered{}, "transport_test.unregistered is neither a protobuf message nor a pointer to a struct registered with messages.Register"},
		{note{}, "transport_test.note is the struct registered as transporttest.Note; messages are sent and handled as *transport_test.note"},
		{nil, "a nil message"},
		{(*note)(nil), "a nil *transport_test.note"},
	} {
		env := &messages.Envelope{}
		err := transport.MarshalPayload(env, c.m)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("MarshalPayload(%T): %v, want an error saying %q", c.m, err, c.want)
		}
		b, n, err := transport.AppendMessage([]byte{1, 2}, c.m)
		if err == nil || len(b) != 2 || n != 0 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("AppendMessage(%T): %d bytes, %v, want the buffer unchanged and an error saying %q", c.m, len(b), err, c.want)
		}
	}
	if err := transport.MarshalPayload(&messages.Envelope{}, &unregistered{}); !errors.Is(err, messages.ErrNotRegistered) {
		t.Errorf("an unregistered type: %v, want ErrNotRegistered", err)
	}

	pong, _, _ := transport.AppendMessage(nil, &messages.Pong{N: 1})
	wrong, _, _ := transport.NextEntry(pong)
	env := &messages.Envelope{From: "a", To: "b", Protocol: "p", Type: "transporttest.Note", Payload: wrong.Payload}
	if _, err := transport.UnmarshalPayload(env); !errors.Is(err, transport.ErrMalformed) || !strings.Contains(err.Error(), "transporttest.Note") {
		t.Errorf("a protobuf payload under a struct's name: %v, want ErrMalformed naming the type", err)
	}
	env.Payload = []byte{0xa1, 0x61, 'N', 0x61, 'x'} // {"N": "x"}
	if _, err := transport.UnmarshalPayload(env); !errors.Is(err, transport.ErrMalformed) || !strings.Contains(err.Error(), "struct field transport_test.note.N") {
		t.Errorf("a field of the wrong type: %v, want ErrMalformed naming the field", err)
	}
}

// TestStructEntrySizes: entries whose lengths take one to three varint
// bytes, appended after others, read back whole.
func TestStructEntrySizes(t *testing.T) {
	var b []byte
	var want []int
	for _, n := range []int{0, 100, 200, 20000, 70000} {
		m := &note{From: strings.Repeat("x", n), N: uint64(n)}
		var size int
		var err error
		before := len(b)
		if b, size, err = transport.AppendMessage(b, m); err != nil {
			t.Fatal(err)
		}
		if size != len(b)-before {
			t.Fatalf("%d bytes: size %d, appended %d", n, size, len(b)-before)
		}
		want = append(want, n)
	}
	for i, rest := 0, b; len(rest) > 0; i++ {
		e, next, err := transport.NextEntry(rest)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		rest = next
		typ, _ := transport.FindType(string(e.Type))
		m, err := typ.Decode(e.Payload)
		if err != nil || m.(*note).N != uint64(want[i]) || len(m.(*note).From) != want[i] {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
}

// BenchmarkAppendMessage writes Ping{N: 1} into a batch's buffer as
// protobuf and as a registered struct.
func BenchmarkAppendMessage(b *testing.B) {
	for _, c := range []struct {
		name string
		m    any
	}{{"protobuf", &messages.Ping{N: 1}}, {"struct", &note{N: 1}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 1<<16)
			for range b.N {
				var err error
				if buf, _, err = transport.AppendMessage(buf[:0], c.m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
