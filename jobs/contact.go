package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/troupe-dev/troupe/actors"
	pb "github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// owned is a job at its contact node: the job's authoritative state. The
// spec and every part result received live here until the job ends, so a
// new leader can take the job over without losing finished parts.
type owned struct {
	id        string
	spec      *pb.JobSpec
	state     State
	total     int // -1 until the leader split the job
	results   map[uint32][]byte
	output    []byte
	name      string // the script's file name as submitted ("" : job.star)
	err       string // one line
	trace     string // the whole error, with the script's traceback, when longer than err
	submitted time.Time
	ended     time.Time
	merging   bool
	nDone     int // parts done when the job ended (results are dropped then)
	byNode    map[actors.NodeName]int
	running   map[uint32]float64 // part → the highest progress reported, until its result is in
}

func (o *owned) status(withResult bool) Status {
	done := len(o.results)
	if o.state.Ended() {
		done = o.nDone
	}
	s := Status{ID: o.id, State: o.state, PartsTotal: max(o.total, 0), PartsDone: done,
		Error: o.err, Traceback: o.trace, Name: o.name, Contact: ContactOf(o.id), Submitted: o.submitted, Ended: o.ended,
		Progress: o.progress()}
	if len(o.byNode) > 0 {
		s.PartsByNode = maps.Clone(o.byNode)
	}
	if withResult && o.output != nil {
		s.Result = json.RawMessage(o.output)
	}
	if !withResult {
		s.Traceback = "" // a list carries one line per job
	}
	return s
}

// merged is a merge's outcome, told by the pool.
type merged struct {
	id  string
	out []byte
	err error
}

// submit accepts a job from a local caller (the HTTP API): it checks it,
// keeps it as pending and hands it to the leader.
func (p *protocol) submit(ctx *actors.Context, s Submit) (Submitted, error) {
	if s.Runtime == "" {
		s.Runtime = StarlarkName
	}
	if err := p.check(s); err != nil {
		return Submitted{}, err
	}
	if s.Parts == 0 {
		// Fixed here, not by the leader: a later leader, with another
		// count of live members, would split the job differently, and the
		// parts already done under the first split would be merged with
		// those of the second.
		s.Parts = min(p.cfg.PartsPerMember*len(p.live), p.cfg.MaxParts)
	}
	p.seq++
	id := fmt.Sprintf("%s.%s.%d", p.self, p.gen, p.seq)
	o := &owned{id: id, name: s.Name, state: Pending, total: -1, results: map[uint32][]byte{}, submitted: ctx.Now(),
		spec: &pb.JobSpec{Runtime: s.Runtime, Script: []byte(s.Script), Input: s.Input, Parts: uint32(s.Parts)}}
	p.owned[id] = o
	p.ownedSeq = append(p.ownedSeq, id)
	p.prune()
	ctx.Log().Info().Str("job", id).Str("runtime", s.Runtime).Int("parts", s.Parts).Msg("job submitted")
	p.handOver(ctx, o)
	p.wake(ctx) // without a leader, the tick asks the raft group why (Status.Waiting)
	return Submitted{ID: id}, nil
}

// check refuses a job that cannot run, with what was wrong.
func (p *protocol) check(s Submit) error {
	if _, ok := p.rts[s.Runtime]; !ok {
		if slices.Contains(p.cfg.Disabled, s.Runtime) {
			return fmt.Errorf("%w: %q is disabled on node %s; enable it in the node's configuration", ErrRuntimeDisabled, s.Runtime, p.self)
		}
		return unknownRuntime(s.Runtime, p.rts)
	}
	switch {
	case s.Script == "":
		return fmt.Errorf("%w: the script is empty", ErrInvalidJob)
	case len(s.Script) > p.cfg.MaxScriptBytes:
		return fmt.Errorf("%w: the script is %d bytes; the limit is %d (jobs.max_script_bytes)", ErrInvalidJob, len(s.Script), p.cfg.MaxScriptBytes)
	case len(s.Input) > p.cfg.MaxInputBytes:
		return fmt.Errorf("%w: the input is %d bytes; the limit is %d (jobs.max_input_bytes)", ErrInvalidJob, len(s.Input), p.cfg.MaxInputBytes)
	case len(s.Input) > 0 && !json.Valid(s.Input):
		return fmt.Errorf("%w: the input is not valid JSON", ErrInvalidJob)
	case s.Parts < 0 || s.Parts > p.cfg.MaxParts:
		return fmt.Errorf("%w: parts is %d; use 0 (the leader picks) to %d (jobs.max_parts)", ErrInvalidJob, s.Parts, p.cfg.MaxParts)
	}
	if err := checkName(s.Name); err != nil {
		return err
	}
	return nil
}

// prune forgets the oldest ended jobs beyond Config.Retain.
func (p *protocol) prune() {
	for len(p.ownedSeq) > p.cfg.Retain {
		i := slices.IndexFunc(p.ownedSeq, func(id string) bool { return p.owned[id].state.Ended() })
		if i < 0 {
			return
		}
		delete(p.owned, p.ownedSeq[i])
		p.ownedSeq = slices.Delete(p.ownedSeq, i, i+1)
	}
}

// handOver sends a job to the leader with the parts already done.
func (p *protocol) handOver(ctx *actors.Context, o *owned) {
	if p.leader == "" || o.state.Ended() || o.merging {
		return
	}
	done := make([]uint32, 0, len(o.results))
	for part := range o.results {
		done = append(done, part)
	}
	slices.Sort(done)
	p.send(ctx, p.leader, &pb.JobSubmit{Id: o.id, Contact: string(p.self), Spec: o.spec, Done: done, Term: p.term})
}

// resubmitAll hands every unfinished job to a new leader.
func (p *protocol) resubmitAll(ctx *actors.Context) {
	clear(p.doneQueue) // the new leader learns them from JobSubmit.Done
	for _, id := range p.ownedSeq {
		p.handOver(ctx, p.owned[id])
	}
}

func (p *protocol) onProgress(ctx *actors.Context, from actors.NodeName, m *pb.JobProgress) error {
	o := p.owned[m.Id]
	if o == nil || o.state.Ended() || !p.acceptFrom(from, m.Term) {
		return nil
	}
	if m.Error != "" {
		p.end(ctx, o, Failed, m.Error)
		return nil
	}
	if o.total < 0 {
		o.total = int(m.PartsTotal)
		o.state = Running
		for part := range o.results {
			if int(part) >= o.total {
				delete(o.results, part)
			}
		}
		ctx.Log().Debug().Str("job", o.id).Int("parts", o.total).Msg("job split")
		p.maybeMerge(ctx, o)
	}
	return nil
}

func (p *protocol) onPartResult(ctx *actors.Context, from actors.NodeName, m *pb.PartResult) error {
	if cause, ok := strings.CutPrefix(m.Error, exhaustedTag); ok {
		p.onExhausted(ctx, from, m.Id, m.Part, cause)
		return nil
	}
	o := p.owned[m.Id]
	if o == nil || o.state.Ended() || o.merging {
		return nil
	}
	if _, dup := o.results[m.Part]; dup || (o.total >= 0 && int(m.Part) >= o.total) {
		return nil
	}
	if m.Error != "" {
		p.end(ctx, o, Failed, fmt.Sprintf("run part %d on %s: %s", m.Part, from, m.Error))
		return nil
	}
	o.results[m.Part] = m.Result
	delete(o.running, m.Part)
	if o.byNode == nil {
		o.byNode = map[actors.NodeName]int{}
	}
	o.byNode[from]++
	p.doneQueue[o.id] = append(p.doneQueue[o.id], m.Part)
	p.postFlush(ctx)
	p.maybeMerge(ctx, o)
	return nil
}

// flushDone tells the leader, one message per job, which parts the contact
// now holds.
func (p *protocol) flushDone(ctx *actors.Context) {
	if p.leader == "" {
		clear(p.doneQueue)
		return
	}
	for _, id := range slices.Sorted(maps.Keys(p.doneQueue)) {
		p.send(ctx, p.leader, &pb.PartDone{Id: id, Parts: p.doneQueue[id]})
	}
	clear(p.doneQueue)
}

// maybeMerge starts the merge once every part's result is in.
func (p *protocol) maybeMerge(ctx *actors.Context, o *owned) {
	if o.total < 0 || len(o.results) < o.total || o.merging {
		return
	}
	o.merging = true
	results := make([][]byte, o.total)
	for i := range results {
		results[i] = o.results[uint32(i)]
	}
	spec, id, progs := o.spec, o.id, p.pool.progs
	p.pool.start(func(c context.Context) any {
		prog, err := progs.get(spec.Runtime, spec.Script)
		if err != nil {
			return &merged{id: id, err: err}
		}
		out, err := prog.Merge(c, results)
		return &merged{id: id, out: out, err: err}
	})
}

func (p *protocol) onMerged(ctx *actors.Context, m *merged) error {
	o := p.owned[m.id]
	if o == nil || o.state.Ended() {
		return nil
	}
	if m.err != nil {
		p.end(ctx, o, Failed, "merge: "+m.err.Error())
		return nil
	}
	o.output = m.out
	p.end(ctx, o, Succeeded, "")
	return nil
}

// end finishes a job at its contact and stops whatever of it still runs:
// the leader drops it and cancels backup copies; when it did not succeed,
// every live member is told as well, so that no part outlives the job even
// if the leader changes meanwhile.
func (p *protocol) end(ctx *actors.Context, o *owned, st State, why string) {
	o.state, o.ended = st, ctx.Now()
	o.err, o.trace = describe(why, o.name)
	o.nDone, o.results, o.running = len(o.results), nil, nil // the output holds what matters now
	delete(p.doneQueue, o.id)
	ev := ctx.Log().Info().Str("job", o.id).Str("state", string(st))
	if o.err != "" {
		ev = ev.Str("error", o.err)
	}
	ev.Dur("took", o.ended.Sub(o.submitted)).Msg("job ended")
	p.watchesEnd(ctx, o.id)
	cancel := &pb.JobCancel{Id: o.id, Reason: string(st)}
	if st == Succeeded {
		if p.leader != "" {
			p.send(ctx, p.leader, cancel)
		}
		return
	}
	for _, n := range p.liveNames() {
		p.send(ctx, n, cancel)
	}
}

func (p *protocol) list(*actors.Context, ListRequest) ([]Status, error) {
	out := make([]Status, 0, len(p.ownedSeq))
	for _, id := range slices.Backward(p.ownedSeq) {
		o := p.owned[id]
		s := o.status(false)
		s.Waiting = p.waitingFor(o)
		out = append(out, s)
	}
	return out, nil
}

// forwardedCancel is a user's cancellation this node forwarded to the
// job's contact, waiting for the contact's JobCancelReply.
type forwardedCancel struct {
	id      string
	contact actors.NodeName
	timeout time.Duration
	timer   actors.TimerID
	reply   actors.Reply[Cancelling]
}

// cancelTimeout fires when a forwarded cancellation's contact did not
// answer in time.
type cancelTimeout struct{ request uint64 }

// onCancelRequest cancels a job for a local caller (the HTTP API). At the
// contact it answers at once; elsewhere it forwards the cancellation to the
// contact and answers with the contact's reply, when the contact fails or
// leaves, or when the request's timeout fires, whichever comes first.
func (p *protocol) onCancelRequest(ctx *actors.Context, r CancelRequest, reply actors.Reply[Cancelling]) error {
	reason := r.Reason
	if reason == "" {
		reason = "cancelled by the user"
	}
	if o := p.owned[r.ID]; o != nil {
		if !o.state.Ended() {
			p.end(ctx, o, Cancelled, reason)
		}
		s := o.status(true)
		return reply.Send(Cancelling{Status: &s})
	}
	c := ContactOf(r.ID)
	switch {
	case c == "" || c == p.self:
		return fmt.Errorf("%w: %q on node %s", ErrNotFound, r.ID, p.self)
	case !p.live[c]:
		return fmt.Errorf("%w: job %s's contact node %s is not a live member; its jobs ended with it", ErrContactLost, r.ID, c)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultCancelTimeout
	}
	timeout = min(timeout, MaxCancelTimeout)
	p.cancelSeq++
	n := p.cancelSeq
	p.cancels[n] = &forwardedCancel{id: r.ID, contact: c, timeout: timeout, reply: reply,
		timer: ctx.After(timeout, cancelTimeout{request: n})}
	p.send(ctx, c, &pb.JobCancel{Id: r.ID, Reason: reason, Request: n})
	return nil
}

// onJobCancel handles a JobCancel in every role (onCancel) and, at the
// contact, answers a user's cancellation forwarded by another node.
func (p *protocol) onJobCancel(ctx *actors.Context, from actors.NodeName, m *pb.JobCancel) error {
	if err := p.onCancel(ctx, from, m); err != nil || m.Request == 0 {
		return err
	}
	reply := &pb.JobCancelReply{Request: m.Request, Id: m.Id}
	if o := p.owned[m.Id]; o != nil && len(m.Parts) == 0 {
		reply.Found, reply.Status = true, o.wire(true)
	}
	p.send(ctx, from, reply)
	return nil
}

// onCancelReply hands the contact's answer to the caller that waits for it.
// An answer that comes after the wait ended, or that does not match the
// cancellation forwarded under its number, is dropped.
func (p *protocol) onCancelReply(ctx *actors.Context, from actors.NodeName, m *pb.JobCancelReply) error {
	f := p.cancels[m.Request]
	if f == nil || f.contact != from || f.id != m.Id {
		ctx.Log().Debug().Str("from", string(from)).Str("job", m.Id).Uint64("request", m.Request).Msg("dropping an answer to no waiting cancellation")
		return nil
	}
	delete(p.cancels, m.Request)
	ctx.Cancel(f.timer)
	if !m.Found {
		_ = f.reply.Fail(fmt.Errorf("%w: %q at its contact node %s", ErrNotFound, f.id, from))
		return nil
	}
	s, err := statusOfWire(f.id, m.Status)
	if err != nil {
		ctx.Log().Warn().Err(err).Str("from", string(from)).Str("job", f.id).Msg("a malformed answer to a cancellation")
		_ = f.reply.Fail(fmt.Errorf("jobs: node %s answered the cancellation of %s with %w", from, f.id, err))
		return nil
	}
	_ = f.reply.Send(Cancelling{Status: &s, ForwardedTo: from})
	return nil
}

func (p *protocol) onCancelTimeout(_ *actors.Context, t cancelTimeout) error {
	f := p.cancels[t.request]
	if f == nil {
		return nil
	}
	delete(p.cancels, t.request)
	_ = f.reply.Fail(fmt.Errorf("%w: job %s's contact node %s did not answer within %v; the cancellation may or may not have reached it (ask the contact for the job's status)",
		ErrCancelUnanswered, f.id, f.contact, f.timeout))
	return nil
}

// cancelsLost answers the cancellations that wait for a contact that failed
// or left: its jobs ended with it.
func (p *protocol) cancelsLost(ctx *actors.Context, contact actors.NodeName) {
	for _, n := range slices.Sorted(maps.Keys(p.cancels)) {
		if f := p.cancels[n]; f.contact == contact {
			delete(p.cancels, n)
			ctx.Cancel(f.timer)
			_ = f.reply.Fail(fmt.Errorf("%w: job %s's contact node %s failed or left before it answered the cancellation; its jobs ended with it", ErrContactLost, f.id, contact))
		}
	}
}

// cancelsUnanswered answers every waiting cancellation when this
// incarnation ends: the contact's answer would come to the next one, which
// does not know it.
func (p *protocol) cancelsUnanswered() {
	for _, n := range slices.Sorted(maps.Keys(p.cancels)) {
		f := p.cancels[n]
		_ = f.reply.Fail(fmt.Errorf("%w: the jobs protocol of node %s stopped while waiting for job %s's contact node %s; the cancellation may or may not have reached it",
			ErrCancelUnanswered, p.self, f.id, f.contact))
	}
	clear(p.cancels)
}

// wire is the job's status on the wire (JobCancelReply, JobQueryReply);
// full: with its result and traceback.
func (o *owned) wire(full bool) *pb.JobStatus {
	s := o.status(full)
	w := &pb.JobStatus{Id: o.id, State: string(s.State), PartsTotal: uint32(s.PartsTotal), PartsDone: uint32(s.PartsDone),
		Result: s.Result, Error: s.Error, Traceback: s.Traceback, Name: s.Name, SubmittedUnixNano: s.Submitted.UnixNano(),
		Progress: s.Progress}
	if !s.Ended.IsZero() {
		w.EndedUnixNano = s.Ended.UnixNano()
	}
	if len(s.PartsByNode) > 0 {
		w.PartsByNode = make(map[string]uint32, len(s.PartsByNode))
		for n, c := range s.PartsByNode {
			w.PartsByNode[string(n)] = uint32(c)
		}
	}
	return w
}

// statusOfWire checks a status another node sent and turns it into a
// Status of job id.
func statusOfWire(id string, w *pb.JobStatus) (Status, error) {
	if w == nil {
		return Status{}, fmt.Errorf("no status")
	}
	st := State(w.State)
	switch st {
	case Pending, Running, Succeeded, Failed, Cancelled:
	default:
		return Status{}, fmt.Errorf("the unknown state %.40q", w.State)
	}
	if w.PartsDone > w.PartsTotal {
		return Status{}, fmt.Errorf("%d of %d parts done", w.PartsDone, w.PartsTotal)
	}
	if len(w.Result) > 0 && !json.Valid(w.Result) {
		return Status{}, fmt.Errorf("a result that is not JSON")
	}
	if err := checkFraction(w.Progress); err != nil {
		return Status{}, fmt.Errorf("progress: %w", err)
	}
	// Another node's texts are cut and cleaned as this node's own are.
	s := Status{ID: id, State: st, PartsTotal: int(w.PartsTotal), PartsDone: int(w.PartsDone),
		Error:     truncate(clean(w.Error, false), maxErrorLine),
		Traceback: truncate(clean(w.Traceback, true), maxTraceback),
		Waiting:   truncate(clean(w.Waiting, false), maxErrorLine),
		Contact:   ContactOf(id), Submitted: time.Unix(0, w.SubmittedUnixNano), Progress: w.Progress}
	if checkName(w.Name) == nil {
		s.Name = w.Name
	}
	if len(w.Result) > 0 {
		s.Result = json.RawMessage(w.Result)
	}
	if w.EndedUnixNano != 0 {
		s.Ended = time.Unix(0, w.EndedUnixNano)
	}
	if len(w.PartsByNode) > 0 {
		// A part is counted once, on one node: no more nodes and no more
		// parts than the job has, each a valid node name.
		total := 0
		for n, c := range w.PartsByNode {
			total += int(c)
			if err := transport.ValidateName("node", n); err != nil {
				return Status{}, fmt.Errorf("parts by node: %w", err)
			}
		}
		if len(w.PartsByNode) > int(w.PartsTotal) || total > int(w.PartsDone) {
			return Status{}, fmt.Errorf("parts by node count %d parts on %d nodes, for %d parts done", total, len(w.PartsByNode), w.PartsDone)
		}
		s.PartsByNode = make(map[actors.NodeName]int, len(w.PartsByNode))
		for n, c := range w.PartsByNode {
			s.PartsByNode[actors.NodeName(n)] = int(c)
		}
	}
	return s, nil
}
