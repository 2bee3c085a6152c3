package simulation

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"strconv"
	"time"

	"github.com/troupe-dev/troupe/transport/sim"
)

// Trace is the record of one run: a line per event the scheduler ran, per
// fate of an envelope in the hub (with a hash of its bytes), and per note
// of the scenario (a client's operation and its outcome, a nemesis
// action, a leader observed, a membership event). Its hash (SHA-256 of
// every line) is the run's fingerprint: the same seed gives the same hash,
// byte for byte.
//
// Each line is: virtual time in microseconds (since the start, 12 wide),
// a kind, then fields separated by spaces.
//
//	120000 timer node-3
//	120000 run node-3
//	120000 send node-3>node-1 raft messages.RaftBatch 96B #4f1c02aa queued
//	121000 net
//	121000 send node-3>node-1 raft messages.RaftBatch 96B #4f1c02aa delivered
//	250000 note nemesis crash node-2
//
// Not in the trace: wall-clock timings (handler latencies) and logs.
type Trace struct {
	sum   hash.Hash
	out   io.Writer // nil: hash only
	buf   []byte
	lines uint64
}

// NewTrace makes a trace that hashes every line and, if out is not nil,
// also writes it there.
func NewTrace(out io.Writer) *Trace {
	return &Trace{sum: sha256.New(), out: out, buf: make([]byte, 0, 256)}
}

// Hash is the hex SHA-256 of the lines so far.
func (t *Trace) Hash() string { return hex.EncodeToString(t.sum.Sum(nil)) }

// Lines counts the lines so far.
func (t *Trace) Lines() uint64 { return t.lines }

func (t *Trace) begin(at time.Duration) []byte {
	b := t.buf[:0]
	us := strconv.AppendInt(nil, int64(at/time.Microsecond), 10)
	for i := len(us); i < 12; i++ {
		b = append(b, ' ')
	}
	return append(b, us...)
}

func (t *Trace) end(b []byte) {
	b = append(b, '\n')
	t.sum.Write(b)
	if t.out != nil {
		_, _ = t.out.Write(b)
	}
	t.buf = b
	t.lines++
}

func (t *Trace) event(at time.Duration, k Kind, node, label string) {
	b := t.begin(at)
	b = append(b, ' ')
	b = append(b, kindNames[k]...)
	if node != "" {
		b = append(b, ' ')
		b = append(b, node...)
	}
	if label != "" {
		b = append(b, ' ')
		b = append(b, label...)
	}
	t.end(b)
}

// envelope records the fate of an envelope in the hub.
func (t *Trace) envelope(at time.Duration, f sim.Fate, k sim.Key, body []byte) {
	b := t.begin(at)
	b = append(b, " send "...)
	b = append(b, k.From...)
	b = append(b, '>')
	b = append(b, k.To...)
	b = append(b, ' ')
	b = append(b, k.Protocol...)
	b = append(b, ' ')
	b = append(b, k.Type...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "B #"...)
	h := uint32(2166136261) // FNV-1a
	for _, c := range body {
		h = (h ^ uint32(c)) * 16777619
	}
	b = hex.AppendEncode(b, []byte{byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)})
	b = append(b, ' ')
	b = append(b, f.String()...)
	t.end(b)
}

// note records a line of the scenario's.
func (t *Trace) note(at time.Duration, text string) {
	b := t.begin(at)
	b = append(b, " note "...)
	b = append(b, text...)
	t.end(b)
}
