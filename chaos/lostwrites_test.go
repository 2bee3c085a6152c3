package chaos

import (
	"math"
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/kv"
)

// TestLostWritesFindsLosses checks the suites' second checker on small
// histories: what is a loss and what is not.
func TestLostWritesFindsLosses(t *testing.T) {
	put := func(client int, value string, call, ret int64) porcupine.Operation {
		in := consensustest.Input{Op: kv.OpPut, Key: "k", Value: value}
		if ret == math.MaxInt64 {
			in.Unknown = true
		}
		return porcupine.Operation{ClientId: client, Input: in, Call: call, Return: ret, Output: consensustest.Output{OK: true}}
	}
	cas := func(client int, value string, ok bool, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: consensustest.Input{Op: kv.OpCAS, Key: "k", Value: value, Prev: "a"},
			Call: call, Return: ret, Output: consensustest.Output{OK: ok}}
	}
	read := func(found bool, value string) porcupine.Operation {
		return porcupine.Operation{ClientId: 9, Input: consensustest.Input{Op: kv.OpGet, Key: "k"}, Call: 100, Return: 101,
			Output: consensustest.Output{Found: found, Value: value}}
	}
	for _, tc := range []struct {
		name  string
		ops   []porcupine.Operation
		final porcupine.Operation
		lost  int
	}{
		{"the last write is read", []porcupine.Operation{put(1, "a", 0, 1), put(2, "b", 2, 3)}, read(true, "b"), 0},
		{"an earlier write is read", []porcupine.Operation{put(1, "a", 0, 1), put(2, "b", 2, 3)}, read(true, "a"), 1},
		{"concurrent writes, either read", []porcupine.Operation{put(1, "a", 0, 3), put(2, "b", 1, 2)}, read(true, "a"), 0},
		{"an unknown write read over an acknowledged one", []porcupine.Operation{put(1, "a", 0, math.MaxInt64), put(2, "b", 2, 3)}, read(true, "a"), 0},
		{"nothing read", []porcupine.Operation{put(1, "a", 0, 1), put(2, "b", 2, 3)}, read(false, ""), 2},
		{"nothing read, nothing acknowledged", []porcupine.Operation{put(1, "a", 0, math.MaxInt64)}, read(false, ""), 0},
		{"a value nobody wrote", []porcupine.Operation{put(1, "a", 0, 1)}, read(true, "z"), 1},
		{"a failed compare-and-set wrote nothing", []porcupine.Operation{put(1, "a", 0, 1), cas(2, "c", false, 2, 3)}, read(true, "c"), 1},
		{"a compare-and-set is a write", []porcupine.Operation{put(1, "a", 0, 1), cas(2, "c", true, 2, 3)}, read(true, "a"), 1},
	} {
		if got := lostWrites(tc.ops, []porcupine.Operation{tc.final}); len(got) != tc.lost {
			t.Errorf("%s: %d losses %q, want %d", tc.name, len(got), got, tc.lost)
		}
	}
}
