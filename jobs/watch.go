package jobs

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/troupe-dev/troupe/actors"
	pb "github.com/troupe-dev/troupe/messages"
)

// A status request with a wait (StatusRequest.Wait, JobQuery.wait_millis,
// GET /v1/jobs/{id}?wait=) is a long poll: the contact holds its answer
// until the job ends or the wait is over. Nothing polls meanwhile — a
// client that waits for a job costs its contact nothing until the answer
// (bench speedup waits so, instead of asking every few milliseconds inside
// the node's CPU quota).

// statusWatch is a status answer the contact holds back.
type statusWatch struct {
	id    string
	timer actors.TimerID
	// One of: a local caller's reply, or the node that forwarded the
	// query and its request number.
	local   actors.Reply[Status]
	remote  actors.NodeName
	request uint64
}

// watchOver fires when a held status answer's wait is over.
type watchOver struct{ n uint64 }

// maxWatches bounds the answers a contact holds back; past it, a status
// request with a wait is answered at once.
const maxWatches = 1000

// watch holds back the status answer of job o until it ends or wait is
// over; it reports false (answer at once) when the job ended, the wait is
// not positive or too many answers wait.
func (p *protocol) watch(ctx *actors.Context, o *owned, wait time.Duration, w *statusWatch) bool {
	if o.state.Ended() || wait <= 0 || len(p.watches) >= maxWatches {
		return false
	}
	p.cancelSeq++ // one sequence for every request number of this node
	n := p.cancelSeq
	w.id, w.timer = o.id, ctx.After(min(wait, MaxStatusWait), watchOver{n: n})
	p.watches[n] = w
	return true
}

func (p *protocol) onWatchOver(ctx *actors.Context, t watchOver) error {
	w := p.watches[t.n]
	if w == nil {
		return nil
	}
	delete(p.watches, t.n)
	p.answerWatch(ctx, w)
	return nil
}

// answerWatch sends a held answer: the job's status now.
func (p *protocol) answerWatch(ctx *actors.Context, w *statusWatch) {
	o := p.owned[w.id]
	if w.remote != "" {
		reply := &pb.JobQueryReply{Request: w.request, Id: w.id}
		if o != nil {
			s := o.wire(true)
			s.Waiting = p.waitingFor(o)
			reply.Found, reply.Jobs = true, []*pb.JobStatus{s}
		}
		p.send(ctx, w.remote, reply)
		return
	}
	if o == nil {
		_ = w.local.Fail(fmt.Errorf("%w: %q on node %s", ErrNotFound, w.id, p.self))
		return
	}
	s := o.status(true)
	s.Waiting = p.waitingFor(o)
	_ = w.local.Send(s)
}

// watchesEnd answers the held answers of a job that ended.
func (p *protocol) watchesEnd(ctx *actors.Context, id string) {
	for _, n := range slices.Sorted(maps.Keys(p.watches)) {
		if w := p.watches[n]; w.id == id {
			delete(p.watches, n)
			ctx.Cancel(w.timer)
			p.answerWatch(ctx, w)
		}
	}
}

// watchesLost drops the held answers for a node that failed or left.
func (p *protocol) watchesLost(ctx *actors.Context, node actors.NodeName) {
	for n, w := range p.watches {
		if w.remote == node {
			delete(p.watches, n)
			ctx.Cancel(w.timer)
		}
	}
}

// watchesUnanswered answers the local callers when this incarnation ends,
// with the status as it is.
func (p *protocol) watchesUnanswered() {
	for _, n := range slices.Sorted(maps.Keys(p.watches)) {
		w := p.watches[n]
		if w.remote != "" {
			continue
		}
		if o := p.owned[w.id]; o != nil {
			s := o.status(true)
			_ = w.local.Send(s)
		} else {
			_ = w.local.Fail(fmt.Errorf("%w: %q on node %s", ErrNotFound, w.id, p.self))
		}
	}
	clear(p.watches)
}
