package consensustest

import (
	"fmt"

	"github.com/anishathalye/porcupine"
	"github.com/troupe-dev/troupe/kv"
)

// Input is an operation as the client asked it.
type Input struct {
	Op               kv.Op
	Key, Value, Prev string
	Unknown          bool // the outcome was lost (timeout, crash): any effect or none
}

// Output is what the client was answered.
type Output struct {
	OK, Found bool
	Value     string
}

// state is the model's state of one key.
type state struct {
	found bool
	value string
}

// Model is a linearizable register per key with get, put, delete and
// compare-and-set (an absent key never matches). An operation with an
// unknown outcome may have taken effect or not: give it an infinite return
// time, so that "not" is placing it after everything.
var Model = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(Input).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return state{} },
	Step: func(st0, input, output any) (bool, any) {
		st, in, out := st0.(state), input.(Input), output.(Output)
		switch in.Op {
		case kv.OpGet:
			return out.Found == st.found && (!st.found || out.Value == st.value), st
		case kv.OpPut:
			return true, state{found: true, value: in.Value}
		case kv.OpDelete:
			return in.Unknown || out.Found == st.found, state{}
		case kv.OpCAS:
			match := st.found && st.value == in.Prev
			switch {
			case in.Unknown:
				if match {
					return true, state{found: true, value: in.Value}
				}
				return true, st
			case out.OK:
				return match, state{found: true, value: in.Value}
			default:
				return !match && out.Found == st.found && (!st.found || out.Value == st.value), st
			}
		}
		return false, st
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(Input), output.(Output)
		if in.Unknown {
			return fmt.Sprintf("%s(%s, %q, prev %q) -> ?", in.Op, in.Key, in.Value, in.Prev)
		}
		return fmt.Sprintf("%s(%s, %q, prev %q) -> %+v", in.Op, in.Key, in.Value, in.Prev, out)
	},
}
