package simulation

import (
	"container/heap"
	"math/rand/v2"
	"time"

	"github.com/troupe-dev/troupe/actors"
)

// Epoch is the wall-clock instant virtual time 0 stands for: every run
// starts its clocks there, so times in a trace do not depend on when the
// run happened.
var Epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Kind names what an event of the [Scheduler] does, in the trace.
type Kind uint8

// Event kinds.
const (
	KindRun     Kind = iota // a protocol mailbox runs (the deterministic dispatcher)
	KindTimer               // a node's timer fires (its Clock)
	KindNetwork             // the hub delivers what is due
	KindAction              // a scenario's action: nemesis, client, checker
)

var kindNames = [...]string{"run", "timer", "net", "act"}

func (k Kind) String() string { return kindNames[k] }

// Scheduler is a simulation's only source of time and order: a queue of
// events on virtual time, run one at a time on the goroutine that calls
// [Scheduler.Run]. Events due at the same instant run in an order drawn
// from the seed: each event gets a random rank when it is queued, and
// ties of time are broken by rank, then by queueing order. Virtual time
// jumps from one event to the next; an event takes no virtual time.
//
// A Scheduler is not safe for concurrent use: everything that touches it
// runs on its goroutine (the protocols' mailboxes, their timers, the hub's
// deliveries, the scenario's actions).
type Scheduler struct {
	now    time.Duration // since Epoch
	rng    *rand.Rand
	queue  eventQueue
	seq    uint64
	events uint64 // run so far
	trace  *Trace
	halted bool
}

type event struct {
	at    time.Duration
	rank  uint64
	seq   uint64
	kind  Kind
	node  actors.NodeName
	label string
	fn    func()
	dead  bool // cancelled
	index int
}

// NewScheduler makes a scheduler at virtual time 0 whose same-instant
// choices come from seed. It records every event it runs in trace (nil:
// no trace).
func NewScheduler(seed uint64, trace *Trace) *Scheduler {
	return &Scheduler{rng: rand.New(rand.NewPCG(seed, 0x5c4ed01e)), trace: trace}
}

// Now is the virtual time.
func (s *Scheduler) Now() time.Time { return Epoch.Add(s.now) }

// Elapsed is the virtual time since the start.
func (s *Scheduler) Elapsed() time.Duration { return s.now }

// Events counts the events run so far.
func (s *Scheduler) Events() uint64 { return s.events }

// Pending counts the events queued (cancelled ones included until their
// time comes).
func (s *Scheduler) Pending() int { return len(s.queue) }

// At queues fn to run after d of virtual time (0: now, after the current
// event). kind, node and label describe it in the trace. The returned
// handle cancels it.
func (s *Scheduler) At(d time.Duration, kind Kind, node actors.NodeName, label string, fn func()) Handle {
	e := &event{at: s.now + max(d, 0), rank: s.rng.Uint64(), kind: kind, node: node, label: label, fn: fn}
	s.seq++
	e.seq = s.seq
	heap.Push(&s.queue, e)
	return Handle{e: e}
}

// Handle is a queued event. The zero Handle is no event.
type Handle struct{ e *event }

// Stop cancels the event; it reports whether the event had not run yet.
func (h Handle) Stop() bool {
	if h.e == nil || h.e.dead || h.e.index < 0 {
		return false
	}
	h.e.dead = true
	return true
}

var _ actors.Timer = Handle{}

// Step runs the next live event and reports whether there was one.
func (s *Scheduler) Step() bool {
	for len(s.queue) > 0 {
		e := heap.Pop(&s.queue).(*event)
		if e.dead {
			continue
		}
		s.now = e.at
		s.events++
		if s.trace != nil {
			s.trace.event(e.at, e.kind, string(e.node), e.label)
		}
		e.fn()
		return true
	}
	return false
}

// Run runs events until virtual time reaches until (events due at until
// run), the queue runs dry, or Halt is called. Time is left at until
// unless halted.
func (s *Scheduler) Run(until time.Duration) {
	s.halted = false
	for !s.halted && len(s.queue) > 0 {
		if s.queue[0].at > until {
			break
		}
		s.Step()
	}
	if !s.halted && s.now < until {
		s.now = until
	}
}

// Halt makes Run return after the current event.
func (s *Scheduler) Halt() { s.halted = true }

// Halted reports whether Halt stopped the last Run.
func (s *Scheduler) Halted() bool { return s.halted }

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	a, b := q[i], q[j]
	if a.at != b.at {
		return a.at < b.at
	}
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return a.seq < b.seq
}
func (q eventQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *eventQueue) Push(x any) {
	e := x.(*event)
	e.index = len(*q)
	*q = append(*q, e)
}
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*q = old[:len(old)-1]
	return e
}
