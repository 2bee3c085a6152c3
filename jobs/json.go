package jobs

import (
	"fmt"
	"unsafe"

	starjson "go.starlark.net/lib/json"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// jsonModule is the json module scripts see: go.starlark.net's, whose
// encoder and decoder recurse once per level of nesting, behind a check of
// the nesting depth that does not recurse. A document or value nested
// deeper than maxDepth is refused with ErrDepthLimit before the recursive
// code sees it, so `json.decode('[' * 50000000)` is an error, not a Go
// stack overflow that kills the process.
func jsonModule(maxDepth int) *starlarkstruct.Module {
	m := starjson.Module.Members
	return &starlarkstruct.Module{Name: "json", Members: starlark.StringDict{
		"encode":        checkValueArg(m["encode"].(*starlark.Builtin), maxDepth),
		"encode_indent": checkValueArg(m["encode_indent"].(*starlark.Builtin), maxDepth),
		"decode":        checkTextArg(m["decode"].(*starlark.Builtin), maxDepth),
		"indent":        checkTextArg(m["indent"].(*starlark.Builtin), maxDepth),
	}}
}

// depthError says which limit a document or value broke.
func depthError(what string, max int) error {
	return fmt.Errorf("%w: %s nests deeper than %d levels (jobs.max_depth); flatten it or raise the limit", ErrDepthLimit, what, max)
}

func checkTextArg(b *starlark.Builtin, maxDepth int) *starlark.Builtin {
	return starlark.NewBuiltin(b.Name(), func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(args) > 0 {
			if s, ok := args[0].(starlark.String); ok && textDepth(string(s)) > maxDepth {
				return nil, fmt.Errorf("%s: %w", b.Name(), depthError("the JSON text", maxDepth))
			}
		}
		return starlark.Call(th, b, args, kwargs)
	})
}

func checkValueArg(b *starlark.Builtin, maxDepth int) *starlark.Builtin {
	return starlark.NewBuiltin(b.Name(), func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(args) > 0 && valueDepth(args[0], maxDepth) > maxDepth {
			return nil, fmt.Errorf("%s: %w", b.Name(), depthError("the value", maxDepth))
		}
		return starlark.Call(th, b, args, kwargs)
	})
}

// textDepth is the deepest nesting of arrays and objects in a JSON text,
// ignoring brackets inside strings. It does not validate the text: the
// decoder does that once the depth is known to be safe.
func textDepth(s string) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// valueDepth is the nesting depth of a Starlark value as json.encode walks
// it (iterables, mappings, structs), or a number above limit once it is
// known to exceed it. It walks with a stack of its own, not the Go stack.
// A container reached again at a depth no greater than before is not
// walked again, so values that share parts (x = [x, x] fifty times) cost
// their size, not their unfolded size; a cyclic value counts as deep.
func valueDepth(v starlark.Value, limit int) int {
	type item struct {
		v     starlark.Value
		depth int
	}
	seen := map[unsafe.Pointer]int{} // container → deepest depth it was walked at
	stack := []item{{v, 0}}
	deepest := 0
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		var kids []starlark.Value
		var key unsafe.Pointer
		switch x := it.v.(type) {
		case starlark.NoneType, starlark.Bool, starlark.Int, starlark.Float, starlark.String, starlark.Bytes:
			continue
		case starlark.Tuple:
			if len(x) > 0 {
				key = unsafe.Pointer(&x[0])
			}
			kids = x
		case starlark.IterableMapping:
			key = pointerOf(x)
			for _, kv := range x.Items() {
				kids = append(kids, kv[1])
			}
		case starlark.Iterable:
			key = pointerOf(x)
			iter := x.Iterate()
			var e starlark.Value
			for iter.Next(&e) {
				kids = append(kids, e)
			}
			iter.Done()
		case starlark.HasAttrs:
			key = pointerOf(x)
			for _, name := range x.AttrNames() {
				if a, err := x.Attr(name); err == nil && a != nil {
					kids = append(kids, a)
				}
			}
		default:
			continue
		}
		d := it.depth + 1
		if d > limit {
			return d
		}
		deepest = max(deepest, d)
		if key != nil {
			if prev, ok := seen[key]; ok && prev >= d {
				continue
			}
			seen[key] = d
		}
		for _, k := range kids {
			stack = append(stack, item{k, d})
		}
	}
	return deepest
}

// pointerOf is the address behind an interface holding a pointer, or nil.
func pointerOf(v any) unsafe.Pointer {
	type eface struct {
		typ, data unsafe.Pointer
	}
	return (*eface)(unsafe.Pointer(&v)).data
}
