package actors

import "reflect"

// typeTable finds a protocol's handler for a message's dynamic type. A
// protocol registers a handful of types, and comparing a few type words is
// cheaper than hashing one for a map on every message, so small tables are
// scanned; large ones fall back to a map.
type typeTable[E any] struct {
	types   []reflect.Type
	entries []E
	byType  map[reflect.Type]E // set once the table outgrows linearScanMax
}

// linearScanMax is the size up to which a linear scan beats a map lookup.
const linearScanMax = 8

func (t *typeTable[E]) get(typ reflect.Type) (E, bool) {
	if t.byType != nil {
		e, ok := t.byType[typ]
		return e, ok
	}
	for i, k := range t.types {
		if k == typ {
			return t.entries[i], true
		}
	}
	var zero E
	return zero, false
}

// set registers e for typ, replacing an earlier registration.
func (t *typeTable[E]) set(typ reflect.Type, e E) {
	for i, k := range t.types {
		if k == typ {
			t.entries[i] = e
			if t.byType != nil {
				t.byType[typ] = e
			}
			return
		}
	}
	t.types = append(t.types, typ)
	t.entries = append(t.entries, e)
	if t.byType != nil || len(t.types) > linearScanMax {
		if t.byType == nil {
			t.byType = make(map[reflect.Type]E, len(t.types))
			for i, k := range t.types {
				t.byType[k] = t.entries[i]
			}
		}
		t.byType[typ] = e
	}
}
