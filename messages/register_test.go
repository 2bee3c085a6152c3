package messages

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// The two versions of one message: v2 added a field, and renamed N in Go,
// keeping its wire key with a tag.
type greetV1 struct {
	N    uint64
	Text string
}

type greetV2 struct {
	Count uint64 `cbor:"N"`
	Text  string
	Lang  string // added in v2
}

// TestEvolutionAddingAField: a v1 and a v2 of one message, registered
// under the same name in two registries (two binaries), decode each
// other's bytes: the added field is skipped by v1 and zero for v2, the
// renamed field keeps its value through its tag.
func TestEvolutionAddingAField(t *testing.T) {
	var old, new registry
	if err := old.register(reflect.TypeFor[greetV1](), "test.Greet"); err != nil {
		t.Fatal(err)
	}
	if err := new.register(reflect.TypeFor[greetV2](), "test.Greet"); err != nil {
		t.Fatal(err)
	}
	v1, _ := old.byNameLookup("test.Greet")
	v2, _ := new.byNameLookup("test.Greet")

	b, err := v1.Marshal(&greetV1{N: 3, Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := v2.Unmarshal(b)
	if err != nil {
		t.Fatalf("v2 decoding v1's bytes: %v", err)
	}
	if want := (&greetV2{Count: 3, Text: "hi"}); !reflect.DeepEqual(got, want) {
		t.Fatalf("v2 decoded v1's bytes as %+v, want %+v", got, want)
	}

	b, err = v2.Marshal(&greetV2{Count: 4, Text: "hej", Lang: "sv"})
	if err != nil {
		t.Fatal(err)
	}
	got, err = v1.Unmarshal(b)
	if err != nil {
		t.Fatalf("v1 decoding v2's bytes: %v", err)
	}
	if want := (&greetV1{N: 4, Text: "hej"}); !reflect.DeepEqual(got, want) {
		t.Fatalf("v1 decoded v2's bytes as %+v, want %+v", got, want)
	}
}

type tableMsg struct{ Counts map[string]uint64 }

// TestMapsEncodeTheSameEveryTime: a map field's keys are sorted, so one
// value makes one byte string whatever Go's map order (a simulation's
// replay compares what it sent).
func TestMapsEncodeTheSameEveryTime(t *testing.T) {
	var r registry
	if err := r.register(reflect.TypeFor[tableMsg](), "test.Table"); err != nil {
		t.Fatal(err)
	}
	st, _ := r.byNameLookup("test.Table")
	m := &tableMsg{Counts: map[string]uint64{}}
	for i := range 64 {
		m.Counts[string(rune('a'+i%26))+strings.Repeat("x", i)] = uint64(i)
	}
	first, err := st.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		b, err := st.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, first) {
			t.Fatal("the same map value encoded to different bytes")
		}
	}
}

type okMsg struct{ A int }
type otherMsg struct{ B int }
type hidden struct {
	A int
	b int
}
type localOnly struct {
	A int
	b int `cbor:"-"`
}
type withFunc struct{ F func() }
type embedsHidden struct{ hidden }

func TestRegisterRefuses(t *testing.T) {
	var r registry
	if err := r.register(reflect.TypeFor[okMsg](), "test.Ok"); err != nil {
		t.Fatal(err)
	}
	if err := r.register(reflect.TypeFor[okMsg](), "test.Ok"); err != nil {
		t.Fatalf("registering the same type under the same name again: %v, want nothing", err)
	}
	if err := r.register(reflect.TypeFor[localOnly](), "test.LocalOnly"); err != nil {
		t.Fatalf("an unexported field tagged cbor:\"-\": %v", err)
	}
	for _, c := range []struct {
		what string
		t    reflect.Type
		name string
		want []string // in the error
	}{
		{"empty name", reflect.TypeFor[otherMsg](), "", []string{"empty", "pingpong.Ping"}},
		{"bad name", reflect.TypeFor[otherMsg](), "a b", []string{`"a b"`, "not a valid wire name"}},
		{"bad name", reflect.TypeFor[otherMsg](), "x..y", []string{"not a valid wire name"}},
		{"a pointer", reflect.TypeFor[*otherMsg](), "test.P", []string{"register the struct type messages.otherMsg, not a pointer"}},
		{"not a struct", reflect.TypeFor[int](), "test.Int", []string{"int is a int", "only struct types"}},
		{"a protobuf message", reflect.TypeFor[Ping](), "test.Ping", []string{"protobuf message", "troupe.examples.v1.Ping"}},
		{"a protobuf name", reflect.TypeFor[otherMsg](), "troupe.examples.v1.Ping", []string{"troupe.examples.v1.Ping", "*messages.Ping", "choose another name"}},
		{"a taken name", reflect.TypeFor[otherMsg](), "test.Ok", []string{"messages.otherMsg", `"test.Ok" is taken by messages.okMsg`}},
		{"a second name", reflect.TypeFor[okMsg](), "test.Ok2", []string{"messages.okMsg is registered already, as \"test.Ok\""}},
		{"unexported field", reflect.TypeFor[hidden](), "test.Hidden", []string{"field b of messages.hidden is unexported", "cbor:\"-\""}},
		{"unexported field of an embedded struct", reflect.TypeFor[embedsHidden](), "test.Embeds", []string{"field hidden.b"}},
		{"a func field", reflect.TypeFor[withFunc](), "test.Func", []string{"CBOR cannot encode"}},
	} {
		err := r.register(c.t, c.name)
		if err == nil {
			t.Errorf("%s: registered", c.what)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.what, err, w)
			}
		}
	}
	if _, ok := r.byNameLookup("test.Other"); ok {
		t.Error("a refused registration left a name behind")
	}
}

func TestRegisterPanicsAndReturnsTheName(t *testing.T) {
	if got := Register[regA]("test.RegA"); got != "test.RegA" {
		t.Fatalf("Register returned %q", got)
	}
	st, ok := LookupStruct("test.RegA")
	if !ok || st.GoType() != reflect.TypeFor[*regA]() {
		t.Fatalf("LookupStruct: %v, %v", st, ok)
	}
	if st2, ok := StructTypeOf(&regA{}); !ok || st2 != st {
		t.Fatalf("StructTypeOf(*regA): %v, %v", st2, ok)
	}
	if _, ok := StructTypeOf(regA{}); ok {
		t.Fatal("StructTypeOf found the struct value, want only the pointer")
	}
	if err := NotRegistered(reflect.TypeFor[regA]()); !errors.Is(err, ErrNotRegistered) || !strings.Contains(err.Error(), "sent and handled as *messages.regA") {
		t.Fatalf("NotRegistered(regA): %v", err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(error).Error(), "taken by messages.regA") {
			t.Fatalf("Register with a taken name: recovered %v", r)
		}
	}()
	Register[regB]("test.RegA")
}

type regA struct{ N int }
type regB struct{ N int }

// limited is a message whose fields give a hostile payload room: nesting,
// long arrays, maps.
type limited struct {
	N    uint64
	Text string
	List []uint64
	Map  map[string]uint64
	Any  any
	Sub  *limited
}

func TestUnmarshalRefusesBadPayloads(t *testing.T) {
	var r registry
	if err := r.register(reflect.TypeFor[limited](), "test.Limited"); err != nil {
		t.Fatal(err)
	}
	st, _ := r.byNameLookup("test.Limited")
	good, err := st.Marshal(&limited{N: 1, Text: "x", List: []uint64{1, 2}, Sub: &limited{N: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.Unmarshal(good); err != nil || m.(*limited).Sub.N != 2 {
		t.Fatalf("a good payload: %v, %v", m, err)
	}

	deep := func(n int) []byte { // {"Any": [[[[...]]]]}
		b := []byte{0xa1, 0x63, 'A', 'n', 'y'}
		b = append(b, bytes.Repeat([]byte{0x81}, n)...)
		return append(b, 0x00)
	}
	arrayOf := func(n int) []byte { // {"List": [0, 0, ...]}
		b := []byte{0xa1, 0x64, 'L', 'i', 's', 't', 0x9a, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
		return append(b, make([]byte, n)...)
	}
	for _, c := range []struct {
		what string
		b    []byte
		want string
	}{
		{"empty", nil, "EOF"},
		{"garbage", []byte{0xff, 0x00, 0x13}, ""},
		{"truncated", good[:len(good)-2], "unexpected EOF"},
		{"trailing bytes", append(append([]byte{}, good...), 0x00), "extraneous data"},
		{"not a map", []byte{0x01}, "cannot unmarshal"},
		{"a field of the wrong type", []byte{0xa1, 0x61, 'N', 0x61, 'x'}, "cannot unmarshal UTF-8 text string into Go struct field"},
		{"too deep", deep(MaxNesting + 1), "exceeded max nested level"},
		{"too many elements", arrayOf(MaxElements + 1), "exceeded max number of elements"},
		{"a duplicate key", []byte{0xa2, 0x61, 'N', 0x01, 0x61, 'N', 0x02}, "duplicate map key"},
		{"invalid UTF-8", []byte{0xa1, 0x64, 'T', 'e', 'x', 't', 0x61, 0xff}, "invalid UTF-8"},
		{"a length past the end", []byte{0xa1, 0x64, 'L', 'i', 's', 't', 0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ""},
		{"indefinite length", []byte{0xbf, 0x61, 'N', 0x01, 0xff}, "indefinite-length"},
	} {
		_, err := st.Unmarshal(c.b)
		if err == nil {
			t.Errorf("%s: decoded", c.what)
			continue
		}
		if !strings.Contains(err.Error(), "test.Limited") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q should name test.Limited and say %q", c.what, err, c.want)
		}
	}
	if _, err := st.Unmarshal(deep(MaxNesting - 2)); err != nil {
		t.Errorf("nesting within the limit: %v", err)
	}
	if _, err := st.Unmarshal(arrayOf(MaxElements)); err != nil {
		t.Errorf("an array at the limit: %v", err)
	}
}

// FuzzStructUnmarshal feeds arbitrary bytes to a struct message's decoder:
// no panic, and what decodes encodes again.
func FuzzStructUnmarshal(f *testing.F) {
	var r registry
	if err := r.register(reflect.TypeFor[limited](), "test.Limited"); err != nil {
		f.Fatal(err)
	}
	st, _ := r.byNameLookup("test.Limited")
	good, _ := st.Marshal(&limited{N: 1, Text: "x", List: []uint64{1}, Map: map[string]uint64{"a": 1}, Any: []any{"y"}, Sub: &limited{}})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0xa1, 0x63, 'A', 'n', 'y', 0x81, 0x81, 0x81, 0x00})
	f.Add([]byte{0xa1, 0x64, 'L', 'i', 's', 't', 0x9a, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := st.Unmarshal(b)
		if err != nil {
			return
		}
		if _, err := st.Marshal(m); err != nil {
			var ute *cbor.UnsupportedValueError
			if !errors.As(err, &ute) {
				t.Fatalf("re-encoding %+v: %v", m, err)
			}
		}
	})
}
