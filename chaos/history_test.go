package chaos

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/troupe-dev/troupe/consensus/consensustest"
	"github.com/troupe-dev/troupe/kv"
)

// history records operations of concurrent clients, for both suites.
type history struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
}

// add records an operation. One whose outcome is unknown (in.Unknown) gets
// an infinite return time, as Jepsen records it: it may take effect at any
// time after its call.
func (h *history) add(client int, in consensustest.Input, call time.Time, out consensustest.Output, ret time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := ret.Sub(h.start).Nanoseconds()
	if in.Unknown {
		r = math.MaxInt64
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call.Sub(h.start).Nanoseconds(), Output: out, Return: r})
}

// operations is a copy of the history so far.
func (h *history) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// checkLinearizable fails t unless the history is linearizable under
// consensustest.Model within timeout; on failure it writes porcupine's
// visualisation to the test's temporary directory and names it.
func checkLinearizable(t *testing.T, h *history, timeout time.Duration) {
	t.Helper()
	ops := h.operations()
	res, info := porcupine.CheckOperationsVerbose(consensustest.Model, ops, timeout)
	if res == porcupine.Ok {
		return
	}
	path := filepath.Join(t.TempDir(), "history.html")
	var buf bytes.Buffer
	if err := porcupine.Visualize(consensustest.Model, info, &buf); err != nil {
		path = "not written: " + err.Error()
	} else if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		path = "not written: " + err.Error()
	}
	t.Fatalf("the history of %d operations is %v, not ok (porcupine's visualisation: %s)", len(ops), res, path)
}

// isWrite reports whether op is a put or a compare-and-set that may have
// written its value: acknowledged with success, or of unknown outcome.
func isWrite(op porcupine.Operation) bool {
	in, out := op.Input.(consensustest.Input), op.Output.(consensustest.Output)
	switch in.Op {
	case kv.OpPut:
		return true
	case kv.OpCAS:
		return in.Unknown || out.OK
	}
	return false
}

// lostWrites checks, independently of porcupine, that no acknowledged write
// was lost: for each final read (made after every client stopped), every
// acknowledged write of its key is the value read or was possibly
// overwritten by it — the write of the value read did not end before the
// acknowledged one began. A final read that finds a value nobody wrote, or
// finds nothing where a write was acknowledged, is a loss too. Values are
// unique per write. It returns one line per loss.
func lostWrites(ops, finals []porcupine.Operation) []string {
	writers := map[string]porcupine.Operation{} // key + "\x00" + value → the write
	acked := map[string][]porcupine.Operation{} // key → acknowledged writes
	for _, op := range ops {
		if !isWrite(op) {
			continue
		}
		in := op.Input.(consensustest.Input)
		writers[in.Key+"\x00"+in.Value] = op
		if !in.Unknown {
			acked[in.Key] = append(acked[in.Key], op)
		}
	}
	var lost []string
	for _, r := range finals {
		key, out := r.Input.(consensustest.Input).Key, r.Output.(consensustest.Output)
		if !out.Found {
			for _, a := range acked[key] {
				lost = append(lost, fmt.Sprintf("%s: the final read (client %d) finds no value, but %q was acknowledged at %v", key, r.ClientId, a.Input.(consensustest.Input).Value, time.Duration(a.Return)))
			}
			continue
		}
		w, ok := writers[key+"\x00"+out.Value]
		if !ok {
			lost = append(lost, fmt.Sprintf("%s: the final read (client %d) finds %q, which no client wrote", key, r.ClientId, out.Value))
			continue
		}
		for _, a := range acked[key] {
			if a.Return != w.Return || a.Call != w.Call || a.ClientId != w.ClientId {
				if w.Return < a.Call {
					lost = append(lost, fmt.Sprintf("%s: %q acknowledged at %v is lost: the final read (client %d) finds %q, written by a write that ended at %v, before it began at %v",
						key, a.Input.(consensustest.Input).Value, time.Duration(a.Return), r.ClientId, out.Value, time.Duration(w.Return), time.Duration(a.Call)))
				}
			}
		}
	}
	return lost
}
