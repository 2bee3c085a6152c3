package simulation

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/membership"
)

// Detector is the simulated failure detector. SWIM (hashicorp/memberlist)
// runs on its own goroutines and timers, which no scheduler can own, so a
// simulation replaces it: the Detector knows the truth (which nodes run,
// which side of a partition each is on) and each node learns a change
// after a delay, as the same notifications package membership publishes
// (*membership.MemberJoined, *membership.MemberFailed) from a protocol
// named membership.Name that also answers membership.ViewRequest.
//
// Model: node o's belief about node s follows the truth "s runs and o can
// reach it" with a lag of Delay plus a random part up to Jitter, drawn per
// change and per observer. A change that is undone within the lag may go
// unnoticed, as with a real detector. A node that starts knows the truth
// at once (its join's first exchange). A restarted node is a new
// generation: an observer that did not notice the crash sees the old
// generation fail and the new one join. Suspicion (MemberSuspect) and
// graceful leaves are not modelled.
type Detector struct {
	// Delay and Jitter set the detection lag (defaults 500ms and 250ms,
	// about SWIM's with clustertest.SimMembership timings).
	Delay, Jitter time.Duration

	w       *World
	gen     map[actors.NodeName]uint64                                // the running generation of each node (0: never started)
	beliefs map[actors.NodeName]map[actors.NodeName]membership.Member // observer → subject → what it believes
	pending map[[2]actors.NodeName]uint64                             // (observer, subject) → the observer's generation a reconsider is queued for
}

func newDetector(w *World) *Detector {
	return &Detector{
		Delay: 500 * time.Millisecond, Jitter: 250 * time.Millisecond,
		w: w, gen: map[actors.NodeName]uint64{}, beliefs: map[actors.NodeName]map[actors.NodeName]membership.Member{},
		pending: map[[2]actors.NodeName]uint64{},
	}
}

// Generation counts the starts of a node so far (its current incarnation;
// 0 if it never started).
func (d *Detector) Generation(name actors.NodeName) uint64 { return d.gen[name] }

// truth is what observer o should believe about s now.
func (d *Detector) truth(o, s actors.NodeName) membership.Member {
	m := membership.Member{Name: s, Generation: d.gen[s], State: membership.Failed}
	if d.w.IsUp(s) && d.w.reachable(o, s) {
		m.State = membership.Alive
	}
	return m
}

// startAll starts the first generation of every node at once: the cluster
// forms before the run begins.
func (d *Detector) startAll(names []actors.NodeName) {
	for _, name := range names {
		d.gen[name]++
	}
	for _, name := range names {
		d.learn(name)
	}
}

// started: a node (re)starts and knows the truth at once.
func (d *Detector) started(name actors.NodeName) {
	d.gen[name]++
	d.learn(name)
	d.changed()
}

// learn sets a node's beliefs to the truth.
func (d *Detector) learn(name actors.NodeName) {
	b := map[actors.NodeName]membership.Member{}
	for _, s := range d.w.names {
		if s == name {
			continue
		}
		if t := d.truth(name, s); d.gen[s] > 0 {
			b[s] = t
		}
	}
	d.beliefs[name] = b
}

func (d *Detector) crashed(name actors.NodeName) {
	delete(d.beliefs, name)
	d.changed()
}

// changed queues a reconsideration of every belief that differs from the
// truth.
func (d *Detector) changed() {
	for _, o := range d.w.names {
		b, ok := d.beliefs[o]
		if !ok {
			continue
		}
		for _, s := range d.w.names {
			if s == o || d.pending[[2]actors.NodeName{o, s}] == d.gen[o] {
				continue
			}
			t := d.truth(o, s)
			if cur, ok := b[s]; ok && cur.State == t.State && cur.Generation == t.Generation {
				continue
			}
			d.pending[[2]actors.NodeName{o, s}] = d.gen[o]
			lag := d.Delay
			if d.Jitter > 0 {
				lag += time.Duration(d.w.Rand.Int64N(int64(d.Jitter)))
			}
			gen := d.gen[o]
			d.w.Sched.At(lag, KindAction, o, "detect "+string(s), func() { d.reconsider(o, s, gen) })
		}
	}
}

// reconsider brings o's belief about s to the truth and tells o's
// protocols what changed.
func (d *Detector) reconsider(o, s actors.NodeName, gen uint64) {
	b, ok := d.beliefs[o]
	if !ok || d.gen[o] != gen {
		return // o crashed or restarted since: it learnt the truth then
	}
	delete(d.pending, [2]actors.NodeName{o, s})
	t := d.truth(o, s)
	cur, known := b[s]
	var evs []membership.Event
	switch {
	case known && cur.State == t.State && cur.Generation == t.Generation:
		return
	case t.State == membership.Failed:
		if known && cur.State == membership.Alive {
			cur.State = membership.Failed
			evs = append(evs, &membership.MemberFailed{Member: cur})
		}
	default: // alive now
		if known && cur.State == membership.Alive { // an old generation
			old := cur
			old.State = membership.Failed
			evs = append(evs, &membership.MemberFailed{Member: old})
		}
		evs = append(evs, &membership.MemberJoined{Member: t})
	}
	b[s] = t
	if len(evs) == 0 {
		return
	}
	for _, ev := range evs {
		d.w.Note(fmt.Sprintf("member %s sees %s", o, ev))
	}
	if n := d.w.Node(o); n != nil {
		_ = n.Tell(membership.Name, &detected{events: evs})
	}
}

// view is node o's membership view.
func (d *Detector) view(o actors.NodeName) membership.View {
	v := membership.View{Self: membership.Member{Name: o, Generation: d.gen[o], State: membership.Alive}}
	for _, s := range d.w.names {
		if s == o {
			v.Members = append(v.Members, v.Self)
			continue
		}
		if m, ok := d.beliefs[o][s]; ok {
			v.Members = append(v.Members, m)
		}
	}
	return v
}

// detected carries events from the Detector into a node's membership
// protocol.
type detected struct{ events []membership.Event }

// detectorProtocol stands in for membership.Attach's protocol. Like it,
// it answers the view its notifications have told (membership.Watch
// counts on it): the node's beliefs when it started, then the events it
// published.
type detectorProtocol struct {
	d    *Detector
	told map[actors.NodeName]membership.Member // by name, self included
}

func (d *Detector) factory() actors.Factory {
	return func() actors.Protocol { return &detectorProtocol{d: d} }
}

func (p *detectorProtocol) Name() actors.ProtocolName { return membership.Name }

func (p *detectorProtocol) Init(ctx *actors.Context) error {
	// Init runs while the scheduler waits in the node's start, and the
	// events decided after it arrive as detected messages.
	v := p.d.view(ctx.Node())
	p.told = map[actors.NodeName]membership.Member{}
	for _, m := range v.Members {
		p.told[m.Name] = m
	}
	actors.OnTell(ctx, func(ctx *actors.Context, m *detected) error {
		for _, ev := range m.events {
			p.told[ev.Of().Name] = ev.Of()
			ctx.Notify(ev)
		}
		return nil
	})
	actors.OnRequest(ctx, func(ctx *actors.Context, _ membership.ViewRequest) (membership.View, error) {
		out := membership.View{Self: v.Self}
		for _, name := range slices.Sorted(maps.Keys(p.told)) {
			out.Members = append(out.Members, p.told[name])
		}
		return out, nil
	})
	return nil
}
