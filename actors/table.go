package actors

import "unsafe"

// typeKey identifies a dynamic Go type: the type word of an interface value
// holding a value of that type. Reading it is a load, where
// reflect.TypeOf(m) == t costs an interface comparison through the runtime
// on every message.
type typeKey unsafe.Pointer

// keyOf is the typeKey of m's dynamic type (nil for a nil interface).
func keyOf(m any) typeKey {
	return typeKey((*[2]unsafe.Pointer)(unsafe.Pointer(&m))[0])
}

// keyFor is the typeKey of T, which must not be an interface type.
func keyFor[T any]() typeKey {
	var zero T
	return keyOf(zero)
}

// typeTable finds a protocol's handler for a message's dynamic type. A
// protocol registers a handful of types, and comparing a few type words is
// cheaper than hashing one for a map on every message, so small tables are
// scanned; large ones fall back to a map.
type typeTable[E any] struct {
	keys    []typeKey
	entries []E
	byKey   map[typeKey]E // set once the table outgrows linearScanMax
}

// linearScanMax is the size up to which a linear scan beats a map lookup.
const linearScanMax = 8

func (t *typeTable[E]) get(k typeKey) (E, bool) {
	if t.byKey != nil {
		e, ok := t.byKey[k]
		return e, ok
	}
	for i, x := range t.keys {
		if x == k {
			return t.entries[i], true
		}
	}
	var zero E
	return zero, false
}

// set registers e for k, replacing an earlier registration.
func (t *typeTable[E]) set(k typeKey, e E) {
	for i, x := range t.keys {
		if x == k {
			t.entries[i] = e
			if t.byKey != nil {
				t.byKey[k] = e
			}
			return
		}
	}
	t.keys = append(t.keys, k)
	t.entries = append(t.entries, e)
	if t.byKey != nil || len(t.keys) > linearScanMax {
		if t.byKey == nil {
			t.byKey = make(map[typeKey]E, len(t.keys))
			for i, x := range t.keys {
				t.byKey[x] = t.entries[i]
			}
		}
		t.byKey[k] = e
	}
}
