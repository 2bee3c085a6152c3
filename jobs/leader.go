package jobs

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/troupe-dev/troupe/actors"
	pb "github.com/troupe-dev/troupe/messages"
)

// scheduler is the leader's soft state: which parts wait and which worker
// runs which part. Nothing here must survive the leader: the contacts hold
// the jobs and their finished parts and hand them to the next leader, and
// the workers tell it what they run (WorkRequest.absolute).
type scheduler struct {
	epoch   uint64 // tells a split of an earlier schedule from this one's
	jobs    map[string]*ljob
	queue   []partKey // parts to assign, oldest job first
	workers map[actors.NodeName]*lworker
	// running: parts workers reported running before their job arrived.
	running map[partKey][]actors.NodeName
	// A new leader assigns nothing until every live member has reported
	// what it runs (reported), or Config.Settle has passed since it began
	// to lead (settleBy): otherwise it could assign a part again that a
	// worker still runs for the previous leader.
	reported map[actors.NodeName]bool
	settleBy time.Time
	settled  bool
	// dead: the parts each failed worker held when membership reported it
	// failed. They count as strikes once the node shows it really died (its
	// jobs protocol restarts with a new generation): a node falsely
	// declared failed under load comes back with the same one.
	dead map[actors.NodeName]deadWorker
}

// deadWorker is what a failed worker held, and the generation of its jobs
// protocol then ("" if this leader never heard it).
type deadWorker struct {
	held []partKey
	gen  string
}

type ljob struct {
	id      string
	contact actors.NodeName
	spec    *pb.JobSpec
	split   bool // parts known
	parts   [][]byte
	done    []bool
	early   []uint32 // parts done before the split finished
	ndone   int
	holders map[uint32][]actors.NodeName // part → workers running it
	refused map[uint32][]actors.NodeName // part → workers that refused it
	since   map[uint32]time.Time         // part → when its first copy was assigned
	took    time.Duration                // summed durations of finished parts
	timed   int                          // parts whose duration is in took
	strikes map[uint32][]strike          // part → the workers it exhausted or died with
}

// strike is a part that exhausted a worker's process (memory, stack, time,
// a crash) or whose worker node failed while holding it.
type strike struct {
	worker actors.NodeName
	cause  string
}

// maxStrikes is how many strikes make a part poison: the job fails, and no
// node runs the part again.
const maxStrikes = 2

// exhaustedTag starts the error of a PartResult that a worker sends its
// leader, not the contact, when a part exhausted its process: the leader
// counts a strike and assigns the part again, or fails the job.
const exhaustedTag = "exhausted: "

type lworker struct {
	credit int
	parts  map[partKey]bool
	report uint64 // the worker's latest absolute report (WorkRequest.report)
}

func newScheduler(epoch uint64) *scheduler {
	return &scheduler{epoch: epoch, jobs: map[string]*ljob{}, workers: map[actors.NodeName]*lworker{},
		running: map[partKey][]actors.NodeName{}, reported: map[actors.NodeName]bool{}, dead: map[actors.NodeName]deadWorker{}}
}

func (s *scheduler) queued() int {
	n := 0
	for _, k := range s.queue {
		if j := s.jobs[k.id]; j != nil && j.split && !j.done[k.part] && len(j.holders[k.part]) == 0 {
			n++
		}
	}
	return n
}

// sortedParts lists the keys of a set of parts by job id, then part: map
// order would make the protocol's choices vary from run to run.
func sortedParts(parts map[partKey]bool) []partKey {
	out := slices.Collect(maps.Keys(parts))
	slices.SortFunc(out, func(a, b partKey) int {
		if c := strings.Compare(a.id, b.id); c != 0 {
			return c
		}
		return cmp.Compare(a.part, b.part)
	})
	return out
}

func (s *scheduler) worker(name actors.NodeName) *lworker {
	w := s.workers[name]
	if w == nil {
		w = &lworker{parts: map[partKey]bool{}}
		s.workers[name] = w
	}
	return w
}

// splitDone is the outcome of splitting a job, told by the pool.
type splitDone struct {
	epoch uint64
	id    string
	parts [][]byte
	err   error
}

// onSubmit takes a job over from its contact, or learns parts it finished.
// A node takes jobs even before it knows it leads (the contact may learn it
// first); it assigns parts only to workers that pull from it.
func (p *protocol) onSubmit(ctx *actors.Context, from actors.NodeName, m *pb.JobSubmit) error {
	if m.Term > p.term && p.leader == p.self {
		p.term = m.Term
	}
	s := p.sched
	if j := s.jobs[m.Id]; j != nil {
		p.markDone(ctx, j, m.Done)
		if j.split {
			// The contact hands the job over again: it may have refused
			// the first JobProgress (it came with a term the contact
			// took for a stale leader's), and without the part count it
			// never merges.
			p.send(ctx, j.contact, &pb.JobProgress{Id: j.id, Term: p.term, PartsTotal: uint32(len(j.parts))})
		}
		return nil
	}
	if m.Spec == nil || actors.NodeName(m.Contact) != from {
		return nil
	}
	j := &ljob{id: m.Id, contact: from, spec: m.Spec, holders: map[uint32][]actors.NodeName{},
		refused: map[uint32][]actors.NodeName{}, since: map[uint32]time.Time{}, early: m.Done, strikes: map[uint32][]strike{}}
	s.jobs[m.Id] = j
	p.wake(ctx) // backups and the settle deadline are checked on the tick
	n := int(m.Spec.Parts)
	if n == 0 {
		n = p.cfg.PartsPerMember * len(p.live)
	}
	epoch, spec, maxParts, progs := s.epoch, m.Spec, p.cfg.MaxParts, p.pool.progs
	p.pool.start(func(c context.Context) any {
		prog, err := progs.get(spec.Runtime, spec.Script)
		if err != nil {
			return &splitDone{epoch: epoch, id: m.Id, err: fmt.Errorf("load: %w", err)}
		}
		parts, err := prog.Split(c, spec.Input, n)
		if err == nil && len(parts) > maxParts {
			err = fmt.Errorf("%w: split made %d parts; the limit is %d (jobs.max_parts)", ErrInvalidJob, len(parts), maxParts)
		}
		if err != nil {
			err = fmt.Errorf("split: %w", err)
		}
		return &splitDone{epoch: epoch, id: m.Id, parts: parts, err: err}
	})
	return nil
}

func (p *protocol) onSplit(ctx *actors.Context, m *splitDone) error {
	s := p.sched
	j := s.jobs[m.id]
	if m.epoch != s.epoch || j == nil || j.split {
		return nil
	}
	if m.err != nil {
		delete(s.jobs, m.id)
		p.send(ctx, j.contact, &pb.JobProgress{Id: j.id, Term: p.term, Error: m.err.Error()})
		return nil
	}
	j.split, j.parts, j.done = true, m.parts, make([]bool, len(m.parts))
	p.send(ctx, j.contact, &pb.JobProgress{Id: j.id, Term: p.term, PartsTotal: uint32(len(m.parts))})
	p.markDone(ctx, j, j.early)
	j.early = nil
	now := ctx.Now()
	for i := range j.parts {
		k := partKey{j.id, uint32(i)}
		if j.done[i] {
			continue
		}
		if ws := s.running[k]; len(ws) > 0 {
			j.holders[k.part] = ws // reported by workers after a leader change
			j.since[k.part] = now
			for _, w := range ws {
				s.worker(w).parts[k] = true
			}
			delete(s.running, k)
			continue
		}
		s.queue = append(s.queue, k)
	}
	p.schedule(ctx)
	return nil
}

// markDone records parts the contact holds; copies still running
// elsewhere (backups) are cancelled.
func (p *protocol) markDone(ctx *actors.Context, j *ljob, parts []uint32) {
	if !j.split {
		j.early = append(j.early, parts...)
		return
	}
	now := ctx.Now()
	for _, part := range parts {
		if int(part) >= len(j.done) || j.done[part] {
			continue
		}
		j.done[part] = true
		j.ndone++
		if t, ok := j.since[part]; ok {
			j.took += now.Sub(t)
			j.timed++
			delete(j.since, part)
		}
		hs := j.holders[part]
		delete(j.holders, part)
		k := partKey{j.id, part}
		for _, w := range hs {
			if lw := p.sched.workers[w]; lw != nil {
				delete(lw.parts, k)
			}
		}
		if len(hs) > 1 {
			for _, w := range hs {
				p.send(ctx, w, &pb.JobCancel{Id: j.id, Parts: []uint32{part}, Reason: "done elsewhere"})
			}
		}
	}
}

func (p *protocol) onPartDone(ctx *actors.Context, from actors.NodeName, m *pb.PartDone) error {
	if j := p.sched.jobs[m.Id]; j != nil && j.contact == from {
		p.markDone(ctx, j, m.Parts)
	}
	return nil
}

// onWorkRequest is the pull: a worker grants credits (or, to a new leader,
// resets them and lists what it runs).
func (p *protocol) onWorkRequest(ctx *actors.Context, from actors.NodeName, m *pb.WorkRequest) error {
	if m.Term > p.term && p.leader == p.self {
		p.term = m.Term
	}
	s := p.sched
	w := s.worker(from)
	if m.Report != w.report && !m.Absolute {
		// Sent before the worker's latest report reached this leader,
		// which already counts these credits and refusals.
		return nil
	}
	if !m.Absolute {
		w.credit += int(m.Credits)
		for _, r := range m.Refused {
			k := partKey{r.Id, r.Part}
			if j := s.jobs[k.id]; j != nil && !slices.Contains(j.refused[k.part], from) {
				j.refused[k.part] = append(j.refused[k.part], from)
			}
			p.unhold(k, from)
		}
		p.schedule(ctx)
		return nil
	}
	w.credit, w.report = int(m.Credits), m.Report
	s.reported[from] = true
	// The report lists every part the worker holds: it dropped or forgot
	// the others, and drops assignments still on their way to it.
	for _, k := range sortedParts(w.parts) {
		p.unhold(k, from)
	}
	for k, ws := range s.running {
		if ws = slices.DeleteFunc(ws, func(x actors.NodeName) bool { return x == from }); len(ws) > 0 {
			s.running[k] = ws
		} else {
			delete(s.running, k)
		}
	}
	now := ctx.Now()
	for _, r := range m.Running {
		k := partKey{r.Id, r.Part}
		j := s.jobs[k.id]
		switch {
		case j == nil || !j.split:
			if !slices.Contains(s.running[k], from) {
				s.running[k] = append(s.running[k], from)
			}
		case int(k.part) < len(j.done) && !j.done[k.part]:
			if !slices.Contains(j.holders[k.part], from) {
				j.holders[k.part] = append(j.holders[k.part], from)
				j.since[k.part] = now
			}
			w.parts[k] = true
		}
	}
	p.schedule(ctx)
	return nil
}

// unhold takes worker w off part k, and queues the part again if no one
// else runs it.
func (p *protocol) unhold(k partKey, w actors.NodeName) {
	s := p.sched
	if lw := s.workers[w]; lw != nil {
		delete(lw.parts, k)
	}
	j := s.jobs[k.id]
	if j == nil || !j.split || j.done[k.part] {
		return
	}
	hs := j.holders[k.part]
	i := slices.Index(hs, w)
	if i < 0 {
		return // queued already, or held by others only
	}
	hs = slices.Delete(hs, i, i+1)
	if len(hs) > 0 {
		j.holders[k.part] = hs
		return
	}
	delete(j.holders, k.part)
	delete(j.since, k.part)
	s.queue = slices.Insert(s.queue, 0, k) // a lost part goes first
}

// schedule assigns waiting parts to workers with credit, the most credit
// first (so load spreads), then backup copies of slow parts to idle
// workers.
func (p *protocol) schedule(ctx *actors.Context) {
	s := p.sched
	if !p.settled(ctx) {
		return
	}
	var keep []partKey // parts only workers that refused them could take now
	for len(s.queue) > 0 {
		k := s.queue[0]
		j := s.jobs[k.id]
		if j == nil || !j.split || j.done[k.part] || len(j.holders[k.part]) > 0 {
			s.queue = s.queue[1:]
			continue
		}
		if p.pick(nil) == "" {
			break // no credit anywhere
		}
		w := p.pickFor(j, k.part)
		s.queue = s.queue[1:]
		if w == "" {
			keep = append(keep, k)
			continue
		}
		p.assign(ctx, j, k.part, w)
	}
	if len(keep) > 0 {
		s.queue = append(keep, s.queue...)
	}
	if p.cfg.Backup > 0 {
		p.backups(ctx)
	}
}

// settled reports whether this leader may assign parts: every live member
// reported what it runs, or Settle has passed.
func (p *protocol) settled(ctx *actors.Context) bool {
	s := p.sched
	if s.settled {
		return true
	}
	if s.settleBy.IsZero() || ctx.Now().Before(s.settleBy) {
		for n := range p.live {
			if !s.reported[n] {
				return false
			}
		}
	}
	s.settled = true
	return true
}

// pickFor picks a worker for a part: not one that refused it, and
// preferably not one it exhausted before.
func (p *protocol) pickFor(j *ljob, part uint32) actors.NodeName {
	st := j.strikes[part]
	if len(st) == 0 {
		return p.pick(j.refused[part])
	}
	not := slices.Clone(j.refused[part])
	for _, s := range st {
		not = append(not, s.worker)
	}
	if w := p.pick(not); w != "" {
		return w
	}
	return p.pick(j.refused[part])
}

// onExhausted handles, as leader, a part that exhausted the process of
// worker w: a strike; the part goes back to the queue, for another worker
// if there is one, or the job fails when it is the part's second strike.
func (p *protocol) onExhausted(ctx *actors.Context, w actors.NodeName, id string, part uint32, cause string) {
	j := p.sched.jobs[id]
	if j == nil || !j.split || int(part) >= len(j.done) || j.done[part] {
		return
	}
	if p.strike(ctx, j, part, w, cause) {
		return
	}
	p.unhold(partKey{id, part}, w)
	p.schedule(ctx)
}

// strike records a strike against a part, and fails its job when the part
// has maxStrikes: it reports whether it did.
func (p *protocol) strike(ctx *actors.Context, j *ljob, part uint32, w actors.NodeName, cause string) bool {
	p.stats.Strikes++
	j.strikes[part] = append(j.strikes[part], strike{w, cause})
	st := j.strikes[part]
	ctx.Log().Warn().Str("job", j.id).Uint32("part", part).Str("worker", string(w)).Int("strikes", len(st)).Str("cause", cause).Msg("a part exhausted its worker")
	if len(st) < maxStrikes {
		return false
	}
	p.stats.Poisoned++
	var b strings.Builder
	fmt.Fprintf(&b, "run part %d: %v: %s (on %s", part, ErrPoisonPart, st[len(st)-1].cause, st[len(st)-1].worker)
	for _, s := range st[:len(st)-1] {
		if s.cause == st[len(st)-1].cause {
			fmt.Fprintf(&b, ", and before on %s", s.worker)
		} else {
			fmt.Fprintf(&b, "; before on %s: %s", s.worker, s.cause)
		}
	}
	fmt.Fprintf(&b, "); it exhausted its worker %d times and is not run again", len(st))
	p.failJob(ctx, j, b.String())
	return true
}

// confirmDeath handles the news that worker name runs generation gen of
// the jobs protocol. If it failed holding parts, and gen is not the
// generation it ran then, the node died with the parts in hand and one of
// them may have killed it: each counts a strike. (A node falsely declared
// failed comes back with its old generation; one whose generation this
// leader never heard counts as restarted.)
func (p *protocol) confirmDeath(ctx *actors.Context, name actors.NodeName, gen string) {
	s := p.sched
	d, ok := s.dead[name]
	delete(s.dead, name)
	if !ok || (d.gen != "" && d.gen == gen) {
		return
	}
	for _, k := range d.held {
		if j := s.jobs[k.id]; j != nil && j.split && !j.done[k.part] {
			p.strike(ctx, j, k.part, name, "the node died while it held the part")
		}
	}
}

// failJob drops a job at the leader and has its contact fail it with why;
// the contact then tells every member to stop the job's parts (end).
func (p *protocol) failJob(ctx *actors.Context, j *ljob, why string) {
	s := p.sched
	delete(s.jobs, j.id)
	for part, hs := range j.holders {
		for _, w := range hs {
			if lw := s.workers[w]; lw != nil {
				delete(lw.parts, partKey{j.id, part})
			}
		}
	}
	p.send(ctx, j.contact, &pb.JobProgress{Id: j.id, Term: p.term, Error: why})
}

// pick returns the live worker with the most credit, other than those in
// `not`.
func (p *protocol) pick(not []actors.NodeName) actors.NodeName {
	var best actors.NodeName
	most := 0
	for name, w := range p.sched.workers {
		if !p.live[name] || slices.Contains(not, name) {
			continue
		}
		if w.credit > most || (w.credit == most && most > 0 && name < best) {
			best, most = name, w.credit
		}
	}
	return best
}

func (p *protocol) assign(ctx *actors.Context, j *ljob, part uint32, w actors.NodeName) {
	s := p.sched
	k := partKey{j.id, part}
	s.workers[w].credit--
	s.workers[w].parts[k] = true
	if len(j.holders[part]) == 0 {
		j.since[part] = ctx.Now()
	}
	j.holders[part] = append(j.holders[part], w)
	p.send(ctx, w, &pb.PartAssign{Id: j.id, Term: p.term, Contact: string(j.contact), Part: part,
		Data: j.parts[part], Runtime: j.spec.Runtime, Script: j.spec.Script, Report: s.workers[w].report})
}

// backups starts a second copy of the part that has run longest, when
// nothing waits, a worker is idle and the part has run Backup times the
// job's mean part duration.
func (p *protocol) backups(ctx *actors.Context) {
	s := p.sched
	if len(s.queue) > 0 { // after schedule: only parts no worker with credit may take
		return
	}
	now := ctx.Now()
	for {
		var bj *ljob
		var bpart uint32
		var longest time.Duration
		for _, id := range slices.Sorted(maps.Keys(s.jobs)) { // in order: ties go to the first
			j := s.jobs[id]
			if !j.split || j.timed == 0 {
				continue
			}
			mean := j.took / time.Duration(j.timed)
			for _, part := range slices.Sorted(maps.Keys(j.since)) {
				t := j.since[part]
				age := now.Sub(t)
				// No backup of a part with a strike: it would only
				// exhaust a second worker at once.
				if len(j.holders[part]) == 1 && len(j.strikes[part]) == 0 && age > time.Duration(p.cfg.Backup*float64(mean)) && age > longest {
					bj, bpart, longest = j, part, age
				}
			}
		}
		if bj == nil {
			return
		}
		w := p.pick(append(slices.Clone(bj.refused[bpart]), bj.holders[bpart][0]))
		if w == "" {
			return
		}
		p.stats.Backups++
		ctx.Log().Debug().Str("job", bj.id).Uint32("part", bpart).Str("worker", string(w)).Dur("running", longest).Msg("backup copy")
		p.assign(ctx, bj, bpart, w)
	}
}

// leaderLost handles, as leader, a member that failed or left: its parts
// go back to the queue, and the jobs it was contact of end here (no part
// of theirs is assigned again; the workers drop theirs on the same news).
//
// A worker that failed (not one that left) with parts in hand may have
// been killed by one of them: they are remembered, and count as strikes
// if the node turns out to have died (confirmDeath).
func (p *protocol) leaderLost(ctx *actors.Context, name actors.NodeName, failed bool) {
	s := p.sched
	if w := s.workers[name]; w != nil {
		delete(s.workers, name)
		held := sortedParts(w.parts)
		if failed && len(held) > 0 {
			s.dead[name] = deadWorker{held: held, gen: p.gens[name]}
		}
		for _, k := range held {
			p.unhold(k, name)
		}
	}
	for id, j := range s.jobs {
		if j.contact == name {
			// No JobCancel to the workers: each stops these parts when
			// it sees the contact fail. A worker that does not (the
			// other side of a partition) must not hear it from here —
			// reliable delivery would hand it over after the heal.
			delete(s.jobs, id)
		}
	}
	p.schedule(ctx)
}

// leaderCancel drops a job (or parts of it) the contact ended.
func (p *protocol) leaderCancel(ctx *actors.Context, from actors.NodeName, m *pb.JobCancel) {
	s := p.sched
	j := s.jobs[m.Id]
	if j == nil || from != j.contact || len(m.Parts) > 0 {
		return
	}
	delete(s.jobs, m.Id)
	sent := map[actors.NodeName]bool{}
	for _, part := range slices.Sorted(maps.Keys(j.holders)) {
		for _, w := range j.holders[part] {
			if lw := s.workers[w]; lw != nil {
				delete(lw.parts, partKey{j.id, part})
			}
			if !sent[w] {
				sent[w] = true
				p.send(ctx, w, &pb.JobCancel{Id: j.id, Reason: m.Reason})
			}
		}
	}
}
