package jobs

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/troupe-dev/troupe/actors"
	pb "github.com/troupe-dev/troupe/messages"
)

// worker is the state of this node's worker role: parts assigned to it,
// running (at most Config.Slots) or waiting for a slot.
type worker struct {
	tasks   map[partKey]*task // live tasks: waiting or running
	queue   []*task           // waiting for a slot
	running int               // goroutines running parts (cancelled ones too, until they return)
	// ended: jobs that ended here; later assignments are refused. true
	// when the contact itself ended the job; false when it was lost, which
	// a partition can undo (see protocol.joined).
	ended   map[string]bool
	lost    map[actors.NodeName]bool // contacts that failed or left
	credit  int                      // credits to grant the leader at the next flush
	debt    int                      // credits to withhold: the capacity shrank (Reconfigure)
	refused []*pb.PartRef            // assignments refused since the last flush
	// report numbers this worker's absolute reports to the leader
	// (resetWorker); it starts from the clock at Init so that a new
	// incarnation does not reuse an earlier one's numbers.
	report uint64
}

func newWorker() worker {
	return worker{tasks: map[partKey]*task{}, ended: map[string]bool{}, lost: map[actors.NodeName]bool{}}
}

type task struct {
	owner     *protocol // the incarnation that started it
	key       partKey
	contact   actors.NodeName
	runtime   string
	script    []byte
	data      []byte
	started   bool
	cancelled bool
	cancel    context.CancelFunc
	progress  taskProgress // how far the part has got, as its script reports it
}

// partFinished is a part's outcome, told by the pool.
type partFinished struct {
	t      *task
	result []byte
	err    error
}

// capacity is how many parts this worker takes at once.
func (p *protocol) capacity() int { return p.cfg.Slots + max(p.cfg.Prefetch, 0) }

func (p *protocol) onAssign(ctx *actors.Context, from actors.NodeName, m *pb.PartAssign) error {
	if !p.acceptFrom(from, m.Term) {
		ctx.Log().Debug().Str("from", string(from)).Uint64("term", m.Term).Uint64("known", p.term).Msg("ignoring a stale leader's assignment")
		return nil
	}
	w := &p.work
	if m.Report != w.report {
		// Assigned before the leader heard this worker's latest report,
		// which did not count the part as held here: the leader has
		// queued it again.
		ctx.Log().Debug().Str("job", m.Id).Uint32("part", m.Part).Msg("dropping an assignment made before this worker's latest report")
		p.stats.Dropped++
		return nil
	}
	k := partKey{m.Id, m.Part}
	if w.tasks[k] != nil {
		p.grant(ctx, 1) // already here: the credit goes back
		return nil
	}
	contact := actors.NodeName(m.Contact)
	if _, ended := w.ended[m.Id]; ended || w.lost[contact] || p.oldJob(m.Id, contact) || p.draining {
		// Refused: the credit goes back and the leader learns that this
		// worker does not run the part.
		w.refused = append(w.refused, &pb.PartRef{Id: m.Id, Part: m.Part})
		p.stats.Refused++
		p.grant(ctx, 1)
		return nil
	}
	t := &task{owner: p, key: k, contact: contact, runtime: m.Runtime, script: m.Script, data: m.Data}
	w.tasks[k] = t
	w.queue = append(w.queue, t)
	p.pump()
	return nil
}

// pump starts waiting parts while slots are free.
func (p *protocol) pump() {
	w := &p.work
	for w.running < p.cfg.Slots && len(w.queue) > 0 {
		t := w.queue[0]
		w.queue = w.queue[1:]
		t.started = true
		w.running++
		runtime, script, data, progs, sink := t.runtime, t.script, t.data, p.pool.progs, p.progressSinkOf(t)
		t.cancel = p.pool.start(func(c context.Context) any {
			prog, err := progs.get(runtime, script)
			if err != nil {
				return &partFinished{t: t, err: err}
			}
			res, err := prog.Run(withProgressSink(c, sink), data)
			return &partFinished{t: t, result: res, err: err}
		})
	}
}

func (p *protocol) onPartFinished(ctx *actors.Context, m *partFinished) error {
	w := &p.work
	t := m.t
	if t.owner != p {
		return nil // a part of an earlier incarnation, stopped with it
	}
	w.running--
	p.stats.PartsRun++
	if w.tasks[t.key] == t {
		delete(w.tasks, t.key)
	}
	switch {
	case t.cancelled:
		// its credit came back when it was cancelled
	case errors.Is(m.err, context.Canceled):
		// the pool is stopping
	case isExhausted(m.err):
		// Not the script's answer: the part killed the process that ran
		// it. The leader decides whether another worker tries it (see
		// onExhausted); the contact hears nothing.
		p.stats.Exhausted++
		ctx.Log().Warn().Str("job", t.key.id).Uint32("part", t.key.part).Err(m.err).Msg("a part exhausted its process")
		if p.leader != "" {
			p.send(ctx, p.leader, &pb.PartResult{Id: t.key.id, Part: t.key.part, Error: exhaustedTag + m.err.Error()})
		}
		p.grant(ctx, 1)
	default:
		r := &pb.PartResult{Id: t.key.id, Part: t.key.part, Result: m.result}
		if m.err != nil {
			r.Error = m.err.Error()
		}
		p.stats.PartsSent++
		p.send(ctx, t.contact, r)
		p.grant(ctx, 1)
	}
	p.pump()
	return nil
}

// grant gives the leader credits back, batched until the next flush. A
// draining worker grants none; a worker whose capacity shrank pays its
// debt first.
func (p *protocol) grant(ctx *actors.Context, n int) {
	w := &p.work
	if p.draining {
		n = 0
	}
	paid := min(n, w.debt)
	w.debt -= paid
	w.credit += n - paid
	p.postFlush(ctx)
}

func (p *protocol) flushCredits(ctx *actors.Context) {
	w := &p.work
	if (w.credit > 0 || len(w.refused) > 0) && p.leader != "" {
		p.send(ctx, p.leader, &pb.WorkRequest{Term: p.term, Credits: uint32(w.credit), Refused: w.refused, Report: w.report})
	}
	w.credit, w.refused = 0, nil
}

// resetWorker introduces this worker to a new leader, or tells its leader
// afresh: how many parts it can take and which it holds already. The
// report gets a new number; assignments and credits of earlier reports
// that cross it on the way are dropped, by this worker and by the leader
// (onWorkRequest), since the report already counts them.
func (p *protocol) resetWorker(ctx *actors.Context) {
	w := &p.work
	w.credit, w.refused, w.debt = 0, nil, 0
	w.report++
	running := make([]*pb.PartRef, 0, len(w.tasks))
	for k := range w.tasks {
		running = append(running, &pb.PartRef{Id: k.id, Part: k.part})
	}
	slices.SortFunc(running, comparePartRefs)
	free := max(p.capacity()-len(w.tasks), 0)
	if p.draining {
		free = 0
	}
	p.send(ctx, p.leader, &pb.WorkRequest{Term: p.term, Credits: uint32(free), Absolute: true, Running: running, Report: w.report})
}

// comparePartRefs orders parts by job id, then part.
func comparePartRefs(a, b *pb.PartRef) int {
	return cmp.Or(strings.Compare(a.Id, b.Id), cmp.Compare(a.Part, b.Part))
}

// stopTasks cancels this worker's tasks that match: waiting ones are
// dropped, running ones cancelled (their goroutine returns soon after).
func (p *protocol) stopTasks(ctx *actors.Context, match func(*task) bool) {
	w := &p.work
	n := 0
	for k, t := range w.tasks {
		if !match(t) {
			continue
		}
		delete(w.tasks, k)
		t.cancelled = true
		p.stats.Cancelled++
		n++
		if t.started {
			t.cancel()
		}
	}
	if n == 0 {
		return
	}
	w.queue = slices.DeleteFunc(w.queue, func(t *task) bool { return t.cancelled })
	p.grant(ctx, n)
	p.pump()
}

// onCancel handles a JobCancel in every role.
func (p *protocol) onCancel(ctx *actors.Context, from actors.NodeName, m *pb.JobCancel) error {
	if o := p.owned[m.Id]; o != nil && len(m.Parts) == 0 && !o.state.Ended() {
		reason := m.Reason
		if reason == "" {
			reason = "cancelled"
		}
		p.end(ctx, o, Cancelled, reason+" (through "+string(from)+")")
	}
	p.leaderCancel(ctx, from, m)
	// A cancel of single parts comes only from a leader that learnt the
	// contact holds those parts' results, so obeying it is safe even from
	// a stale leader.
	if len(m.Parts) == 0 {
		p.endJob(m.Id, from == ContactOf(m.Id))
		p.stopTasks(ctx, func(t *task) bool { return t.key.id == m.Id })
		return nil
	}
	p.stopTasks(ctx, func(t *task) bool { return t.key.id == m.Id && slices.Contains(m.Parts, t.key.part) })
	return nil
}

// endJob remembers that a job ended, so that its late assignments are
// refused; final when its contact ended it. The memory is bounded: past
// 10000 ids it starts afresh (a late assignment after that runs a part
// whose result the contact ignores).
func (p *protocol) endJob(id string, final bool) {
	if len(p.work.ended) >= 10000 {
		clear(p.work.ended)
	}
	p.work.ended[id] = p.work.ended[id] || final
}

// workerContactBack forgets that the jobs of a contact ended because the
// contact was lost: it is back (a healed partition, a false detection),
// and a new leader may assign their parts again. A contact that restarted
// has a new generation in its job ids and never resubmits the old ones.
func (p *protocol) workerContactBack(name actors.NodeName) {
	delete(p.work.lost, name)
	for id, final := range p.work.ended {
		if !final && ContactOf(id) == name {
			delete(p.work.ended, id)
		}
	}
}

// workerContactLost stops the parts of jobs whose contact failed or left:
// nobody would collect their results. They go back to the leader as
// refused: its own view may still have the contact (a false detection
// here), and without word it would count them as running here forever.
func (p *protocol) workerContactLost(ctx *actors.Context, name actors.NodeName) {
	p.work.lost[name] = true
	var stopped []*pb.PartRef
	p.stopTasks(ctx, func(t *task) bool {
		if t.contact == name {
			p.endJob(t.key.id, false)
			stopped = append(stopped, &pb.PartRef{Id: t.key.id, Part: t.key.part})
			return true
		}
		return false
	})
	slices.SortFunc(stopped, comparePartRefs) // map order would vary the protocol's messages
	p.work.refused = append(p.work.refused, stopped...)
}
