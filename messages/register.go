package messages

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/fxamacker/cbor/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Decoding limits of struct messages: a payload that breaks one is refused
// with an error naming it, before any of it is decoded (the payload is
// checked whole first), as protobuf refuses a malformed one. An envelope is
// at most 4 MiB besides.
const (
	// MaxNesting is how deep arrays and maps may nest in a struct message.
	MaxNesting = 32
	// MaxElements is the most elements an array, and the most pairs a
	// map, of a struct message may hold (a []byte is a byte string, not
	// an array: it is bounded by the envelope's size alone).
	MaxElements = 1 << 16
)

// ErrNotRegistered: a value that is neither a protobuf message nor a
// pointer to a struct type registered with [Register].
var ErrNotRegistered = errors.New("messages: not a registered message type")

// StructType is a struct type registered with [Register]: its wire name
// and its codec. It is safe for concurrent use.
type StructType struct {
	name string
	typ  reflect.Type // the struct
	ptr  reflect.Type // *struct: the message's Go type
}

// Name is the wire name the type was registered under.
func (t *StructType) Name() string { return t.name }

// GoType is the message's Go type: the pointer to the registered struct.
func (t *StructType) GoType() reflect.Type { return t.ptr }

// Marshal encodes m, which must be a non-nil pointer to t's struct.
func (t *StructType) Marshal(m any) ([]byte, error) { return t.AppendMarshal(nil, m) }

// AppendMarshal appends the encoding of m, a non-nil pointer to t's
// struct, to b. On error it returns b unchanged in length.
func (t *StructType) AppendMarshal(b []byte, m any) ([]byte, error) {
	if reflect.TypeOf(m) != t.ptr {
		return b, fmt.Errorf("%w: %T is not %v, the Go type of %s", ErrNotRegistered, m, t.ptr, t.name)
	}
	if reflect.ValueOf(m).IsNil() {
		return b, fmt.Errorf("messages: encoding %s: a nil %v", t.name, t.ptr)
	}
	// The codec appends to a bytes.Buffer's free capacity: lend it b's.
	buf := buffers.Get().(*bytes.Buffer)
	*buf = *bytes.NewBuffer(b)
	err := encMode.MarshalToBuffer(m, buf)
	out := buf.Bytes()
	*buf = bytes.Buffer{}
	buffers.Put(buf)
	if err != nil {
		return b, fmt.Errorf("messages: encoding %s (%v): %w", t.name, t.ptr, err)
	}
	return out, nil
}

var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Unmarshal decodes b, from the network, into a new message: a pointer to
// t's struct. Fields b does not have stay zero, fields t does not have are
// skipped; bytes that are not one well-formed CBOR map, or that break a
// limit ([MaxNesting], [MaxElements], a key twice, a text that is not
// UTF-8, a value of the wrong kind for its field), give an error naming
// the type and what is wrong.
func (t *StructType) Unmarshal(b []byte) (any, error) {
	v := reflect.New(t.typ).Interface()
	if err := decMode.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("a payload of %d bytes for %s (%v): %w", len(b), t.name, t.ptr, err)
	}
	return v, nil
}

// The codec of every struct message. Encoding: a CBOR map keyed by field
// name (or `cbor:"name"` tag), omitting nothing, in field order; no
// indefinite lengths; a Go map's keys in RFC 8949's core deterministic
// order, so the same value always makes the same bytes (a simulation's
// replay depends on it, and Go's map order is random). Decoding: RFC 8949 with the limits above, unknown
// keys skipped (a later version's fields), duplicate keys refused.
var (
	encMode = must(cbor.EncOptions{
		IndefLength: cbor.IndefLengthForbidden,
		Sort:        cbor.SortCoreDeterministic,
	}.UserBufferEncMode())
	decMode = must(cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  MaxNesting,
		MaxArrayElements: MaxElements,
		MaxMapPairs:      MaxElements,
		IndefLength:      cbor.IndefLengthForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
		// A key names one field exactly, as it was encoded.
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
	}.DecMode())
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// registry holds the registered struct types. Reads (every message sent
// or received) load immutable maps; Register copies them.
type registry struct {
	mu     sync.Mutex
	byName atomic.Pointer[map[string]*StructType]
	byType atomic.Pointer[map[reflect.Type]*StructType] // by the pointer type
}

var global registry

// Register makes the struct type T a wire message named name, in this
// process: a protocol sends a *T with Context.Send or SendReliable and
// handles it with actors.OnMessage, like a protobuf message, with no .proto
// file and no generated code. Call it once per type, from a package-level
// var or an init function, so that every node of the binary knows the type
// before its protocols start:
//
//	type Ping struct{ N uint64 }
//
//	var _ = messages.Register[Ping]("pingpong.Ping")
//
// The name is what travels: the same on every node, for the life of the
// protocol, and never given to another type. It is a protobuf-style full
// name (dot-separated words of letters, digits and '_'), qualified by the
// package or protocol ("pingpong.Ping"), and shares its name space with
// protobuf's registry.
//
// Register panics, naming what is wrong, when T is not a struct (register
// the struct, not a pointer to it), *T is a protobuf message, a field is
// unexported without a `cbor:"-"` tag (it would silently not travel) or
// has a type CBOR cannot carry (a func, a chan), the name is not a valid
// full name, names a protobuf message, or was registered for another type,
// or T was registered under another name. Registering T again under the
// same name does nothing. It returns the name, for the var above.
//
// # Evolving a struct message
//
// Nodes of different versions must understand each other's messages:
//   - Adding a field is safe: an older node skips it, a newer node reading
//     an older message finds it zero. A new field must mean "as before"
//     when zero.
//   - Removing a field is safe the same way, as long as its key is never
//     used again with another meaning or type.
//   - A field travels under its Go name, or its `cbor:"name"` tag. To
//     rename a field in Go, keep the old name in a tag
//     (Count uint64 `cbor:"N"`). Changing a field's type is not safe
//     (the other version refuses the message), except between integer
//     types wide enough for the values sent.
//   - The wire name never changes, and is never reused for another type:
//     make a new type with a new name instead.
func Register[T any](name string) string {
	if err := global.register(reflect.TypeFor[T](), name); err != nil {
		panic(err)
	}
	return name
}

func (r *registry) register(t reflect.Type, name string) error {
	what := fmt.Sprintf("messages.Register[%v](%q)", t, name)
	if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		return fmt.Errorf("%s: register the struct type %v, not a pointer to it; messages are sent and handled as %v", what, t.Elem(), t)
	}
	if t.Kind() != reflect.Struct {
		return fmt.Errorf("%s: %v is a %v; only struct types can be registered (sent and handled as pointers to them)", what, t, t.Kind())
	}
	ptr := reflect.PointerTo(t)
	if ptr.Implements(reflect.TypeFor[proto.Message]()) {
		return fmt.Errorf("%s: %v is a protobuf message: it travels under its full name %s, with no registration", what, ptr, reflect.Zero(ptr).Interface().(proto.Message).ProtoReflect().Descriptor().FullName())
	}
	if name == "" {
		return fmt.Errorf("%s: the name is empty; use a qualified name such as \"pingpong.Ping\"", what)
	}
	if !protoreflect.FullName(name).IsValid() {
		return fmt.Errorf("%s: %q is not a valid wire name; use dot-separated words of letters, digits and '_', each starting with a letter or '_', such as \"pingpong.Ping\"", what, name)
	}
	if pt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name)); err == nil {
		return fmt.Errorf("%s: %q is the full name of the protobuf message %v; choose another name", what, name, reflect.TypeOf(pt.Zero().Interface()))
	}
	if err := checkFields(t, nil); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if _, err := encMode.Marshal(reflect.New(t).Interface()); err != nil {
		return fmt.Errorf("%s: CBOR cannot encode %v: %w", what, t, err)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	byName, byType := r.maps()
	if old, ok := byName[name]; ok {
		if old.ptr == ptr {
			return nil
		}
		return fmt.Errorf("%s: the name %q is taken by %v; each wire name belongs to one type", what, name, old.typ)
	}
	if old, ok := byType[ptr]; ok {
		return fmt.Errorf("%s: %v is registered already, as %q; a type has one wire name", what, t, old.name)
	}
	st := &StructType{name: name, typ: t, ptr: ptr}
	nextName := make(map[string]*StructType, len(byName)+1)
	nextType := make(map[reflect.Type]*StructType, len(byType)+1)
	for k, v := range byName {
		nextName[k] = v
	}
	for k, v := range byType {
		nextType[k] = v
	}
	nextName[name], nextType[ptr] = st, st
	r.byName.Store(&nextName)
	r.byType.Store(&nextType)
	return nil
}

func (r *registry) maps() (map[string]*StructType, map[reflect.Type]*StructType) {
	var byName map[string]*StructType
	var byType map[reflect.Type]*StructType
	if p := r.byName.Load(); p != nil {
		byName = *p
	}
	if p := r.byType.Load(); p != nil {
		byType = *p
	}
	return byName, byType
}

// checkFields refuses unexported fields that would silently not travel,
// in t and in the structs it embeds.
func checkFields(t reflect.Type, path []string) error {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("cbor")
		if tag == "-" {
			continue
		}
		if f.Anonymous {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if err := checkFields(ft, append(path, f.Name)); err != nil {
					return err
				}
				continue
			}
		}
		if !f.IsExported() {
			return fmt.Errorf("field %s of %v is unexported and would not travel; export it, or tag it `cbor:\"-\"` to say it stays local", strings.Join(append(path, f.Name), "."), t)
		}
	}
	return nil
}

func (r *registry) byNameLookup(name string) (*StructType, bool) {
	p := r.byName.Load()
	if p == nil {
		return nil, false
	}
	st, ok := (*p)[name]
	return st, ok
}

func (r *registry) byTypeLookup(t reflect.Type) (*StructType, bool) {
	p := r.byType.Load()
	if p == nil {
		return nil, false
	}
	st, ok := (*p)[t]
	return st, ok
}

// LookupStruct finds the struct type registered under a wire name.
func LookupStruct(name string) (*StructType, bool) { return global.byNameLookup(name) }

// StructTypeFor finds the registered struct type whose message type is t
// (a pointer to the registered struct).
func StructTypeFor(t reflect.Type) (*StructType, bool) { return global.byTypeLookup(t) }

// StructTypeOf finds the registered struct type of message m (a pointer to
// a registered struct).
func StructTypeOf(m any) (*StructType, bool) { return global.byTypeLookup(reflect.TypeOf(m)) }

// NotRegistered explains why a value of type t cannot be sent: it is the
// registered struct itself, not a pointer to it, or it was never
// registered. The error wraps [ErrNotRegistered].
func NotRegistered(t reflect.Type) error {
	if t == nil {
		return fmt.Errorf("%w: a nil message", ErrNotRegistered)
	}
	if st, ok := global.byTypeLookup(reflect.PointerTo(t)); ok {
		return fmt.Errorf("%w: %v is the struct registered as %s; messages are sent and handled as %v", ErrNotRegistered, t, st.name, st.ptr)
	}
	return fmt.Errorf("%w: %v is neither a protobuf message nor a pointer to a struct registered with messages.Register", ErrNotRegistered, t)
}
