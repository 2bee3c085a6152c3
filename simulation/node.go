package simulation

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-dev/troupe/actors"
)

// nodeClock is one node's [actors.Clock] on the scheduler's virtual time,
// shifted by the node's clock skew. Timers are scheduler events: a node's
// skew moves what Now reads, not how long a timer waits.
type nodeClock struct {
	s    *Scheduler
	node actors.NodeName
	skew time.Duration // set by the nemesis
}

var _ actors.Clock = (*nodeClock)(nil)

func (c *nodeClock) Now() time.Time { return c.s.Now().Add(c.skew) }

func (c *nodeClock) AfterFunc(d time.Duration, f func()) actors.Timer {
	return c.s.At(d, KindTimer, c.node, "", f)
}

// dispatcher is one node's deterministic protoactor dispatcher: a mailbox
// with messages is run by a scheduler event instead of a goroutine.
//
// While the simulation starts, stops or restarts the node (control), it
// runs mailboxes at once, on the caller's goroutine, as protoactor's
// synchronized dispatcher does: Node.Start and Node.Stop wait for the
// protocol's actor, and in a simulation nothing else would run it.
type dispatcher struct {
	s       *Scheduler
	node    actors.NodeName
	control bool
	queued  []*queuedRun // runs scheduled, not yet run
}

type queuedRun struct {
	h    Handle
	fn   func()
	done bool
}

var _ actor.Dispatcher = (*dispatcher)(nil)

func (d *dispatcher) Schedule(fn func()) {
	if d.control {
		fn()
		return
	}
	q := &queuedRun{fn: fn}
	q.h = d.s.At(0, KindRun, d.node, "", func() {
		q.done = true
		q.fn()
	})
	live := d.queued[:0]
	for _, x := range d.queued {
		if !x.done {
			live = append(live, x)
		}
	}
	clear(d.queued[len(live):])
	d.queued = append(live, q)
}

// takeControl switches the node to control mode: mailbox runs already
// scheduled run now (a mailbox waiting for its run would not take the
// stop or start the caller waits for), later ones at once.
func (d *dispatcher) takeControl() {
	d.control = true
	for _, q := range d.queued {
		if !q.done {
			q.done = true
			q.h.Stop()
			q.fn()
		}
	}
	d.queued = d.queued[:0]
}

func (d *dispatcher) releaseControl() { d.control = false }

// Throughput is how many messages a mailbox run handles before protoactor
// yields the goroutine (runtime.Gosched); a run still empties the mailbox.
func (d *dispatcher) Throughput() int { return 300 }
