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

// A user may ask any node for a job's status, or for the list of the
// cluster's jobs. Only a job's contact knows the job: a node that is not
// forwards the question (a JobQuery) and answers with the contact's
// JobQueryReply, as it does a cancellation (contact.go). A list asks every
// live member and answers when each has answered, or at its timeout with
// the members that did not marked missing.

// ClusterListRequest asks for the jobs of every live member, each as its
// contact knows it (newest first, without results or tracebacks). The
// reply comes when every live member answered, or at Timeout; members that
// did not answer by then are named in JobList.Missing. [ListJobs] makes
// the call.
type ClusterListRequest struct {
	actors.Returns[JobList]
	// Timeout bounds the wait for the other members (0:
	// DefaultCancelTimeout; at most MaxCancelTimeout).
	Timeout time.Duration
}

// JobList is the cluster's jobs.
type JobList struct {
	Jobs []Status
	// Missing lists the live members that did not answer in time, or
	// failed or left before they answered: their jobs are not in Jobs.
	Missing []actors.NodeName
	// Truncated lists the members that hold more ended jobs than one
	// answer carries: only their newest are in Jobs.
	Truncated []actors.NodeName
}

// Partial reports whether some member's jobs are missing or cut.
func (l JobList) Partial() bool { return len(l.Missing) > 0 || len(l.Truncated) > 0 }

// maxListReply bounds the statuses in one JobQueryReply, in bytes of text
// (an envelope carries at most 4 MiB).
const maxListReply = 2 << 20

// JobStatus asks node for a job's status, wherever its contact is, and
// waits at most until ctx's deadline (DefaultCancelTimeout without one).
// Errors: ErrNotFound, ErrContactLost, ErrQueryUnanswered; actors.ErrTimeout
// when node's own jobs protocol does not answer.
func JobStatus(ctx context.Context, node *actors.Node, id string) (Status, error) {
	return forward(ctx, node, "the status of "+id, func(timeout time.Duration) StatusRequest {
		return StatusRequest{ID: id, Timeout: timeout}
	})
}

// ListJobs asks node for the cluster's jobs (a ClusterListRequest),
// waiting for the other members at most until a little before ctx's
// deadline (DefaultCancelTimeout without one).
func ListJobs(ctx context.Context, node *actors.Node) (JobList, error) {
	return forward(ctx, node, "listing the jobs", func(timeout time.Duration) ClusterListRequest {
		return ClusterListRequest{Timeout: timeout}
	})
}

// query is a user's question this node forwarded: the status of one job
// at its contact, or the list of every member's jobs.
type query struct {
	id      string          // status: the job
	contact actors.NodeName // status: its contact
	status  actors.Reply[Status]

	list    bool
	waiting map[actors.NodeName]bool // list: the members that did not answer yet
	jobs    []Status
	cut     []actors.NodeName
	gone    []actors.NodeName // list: members that failed or left before they answered
	listed  actors.Reply[JobList]
	timeout time.Duration
	timer   actors.TimerID
}

// queryTimeout fires when a forwarded query was not answered in time.
type queryTimeout struct{ request uint64 }

func clampTimeout(d time.Duration) time.Duration {
	return min(cmp.Or(max(d, 0), DefaultCancelTimeout), MaxCancelTimeout)
}

// onStatusRequest answers a job's status: at once at its contact, else
// with the contact's answer to a JobQuery.
func (p *protocol) onStatusRequest(ctx *actors.Context, r StatusRequest, reply actors.Reply[Status]) error {
	if o := p.owned[r.ID]; o != nil {
		if p.watch(ctx, o, r.Wait, &statusWatch{local: reply}) {
			return nil
		}
		s := o.status(true)
		s.Waiting = p.waitingFor(o)
		return reply.Send(s)
	}
	c := ContactOf(r.ID)
	switch {
	case c == "" || c == p.self:
		return fmt.Errorf("%w: %q on node %s", ErrNotFound, r.ID, p.self)
	case !p.live[c]:
		return fmt.Errorf("%w: job %s's contact node %s is not a live member; its jobs ended with it", ErrContactLost, r.ID, c)
	}
	q := &query{id: r.ID, contact: c, status: reply, timeout: clampTimeout(r.Timeout)}
	n := p.addQuery(ctx, q)
	m := &pb.JobQuery{Request: n, Id: r.ID}
	if r.Wait > 0 {
		// The contact answers early enough for its answer to come back
		// before this query's timeout.
		wait := min(r.Wait, MaxStatusWait, q.timeout-forwardMargin(q.timeout))
		m.WaitMillis = uint32(max(wait, 0) / time.Millisecond)
	}
	p.send(ctx, c, m)
	return nil
}

// onClusterList gathers every live member's jobs.
func (p *protocol) onClusterList(ctx *actors.Context, r ClusterListRequest, reply actors.Reply[JobList]) error {
	own, _ := p.list(ctx, ListRequest{})
	q := &query{list: true, waiting: map[actors.NodeName]bool{}, jobs: own, listed: reply, timeout: clampTimeout(r.Timeout)}
	for _, n := range p.liveNames() {
		if n != p.self {
			q.waiting[n] = true
		}
	}
	if len(q.waiting) == 0 {
		return reply.Send(q.result())
	}
	n := p.addQuery(ctx, q)
	for _, m := range slices.Sorted(maps.Keys(q.waiting)) {
		p.send(ctx, m, &pb.JobQuery{Request: n, List: true})
	}
	return nil
}

func (p *protocol) addQuery(ctx *actors.Context, q *query) uint64 {
	p.cancelSeq++ // one sequence for every forwarded request
	n := p.cancelSeq
	q.timer = ctx.After(q.timeout, queryTimeout{request: n})
	p.queries[n] = q
	return n
}

// result is a list query's answer, newest jobs first.
func (q *query) result() JobList {
	l := JobList{Jobs: q.jobs, Truncated: q.cut, Missing: append(slices.Sorted(maps.Keys(q.waiting)), q.gone...)}
	slices.Sort(l.Missing)
	slices.SortStableFunc(l.Jobs, func(a, b Status) int {
		return cmp.Or(b.Submitted.Compare(a.Submitted), strings.Compare(a.ID, b.ID))
	})
	return l
}

// onJobQuery answers, as the contact, a status or list query another node
// forwarded.
func (p *protocol) onJobQuery(ctx *actors.Context, from actors.NodeName, m *pb.JobQuery) error {
	reply := &pb.JobQueryReply{Request: m.Request, Id: m.Id}
	if m.List {
		size := 0
		for _, id := range slices.Backward(p.ownedSeq) {
			o := p.owned[id]
			w := o.wire(false)
			w.Waiting = p.waitingFor(o)
			if size += len(w.Id) + len(w.Name) + len(w.Error) + len(w.Waiting) + 64; size > maxListReply {
				reply.Truncated = true
				break
			}
			reply.Jobs = append(reply.Jobs, w)
		}
	} else if o := p.owned[m.Id]; o != nil {
		wait := time.Duration(min(m.WaitMillis, uint32(MaxStatusWait/time.Millisecond))) * time.Millisecond
		if p.watch(ctx, o, wait, &statusWatch{remote: from, request: m.Request}) {
			return nil
		}
		w := o.wire(true)
		w.Waiting = p.waitingFor(o)
		reply.Found, reply.Jobs = true, []*pb.JobStatus{w}
	}
	p.send(ctx, from, reply)
	return nil
}

// onQueryReply hands a contact's answer to the query that waits for it;
// an answer to no waiting query, or from a node it was not asked of, is
// dropped.
func (p *protocol) onQueryReply(ctx *actors.Context, from actors.NodeName, m *pb.JobQueryReply) error {
	q := p.queries[m.Request]
	switch {
	case q == nil:
	case !q.list && q.contact == from && q.id == m.Id:
		p.endQuery(ctx, m.Request)
		if !m.Found || len(m.Jobs) != 1 {
			_ = q.status.Fail(fmt.Errorf("%w: %q at its contact node %s", ErrNotFound, q.id, from))
			return nil
		}
		s, err := statusOfWire(q.id, m.Jobs[0])
		if err != nil {
			ctx.Log().Warn().Err(err).Str("from", string(from)).Str("job", q.id).Msg("a malformed answer to a status query")
			_ = q.status.Fail(fmt.Errorf("jobs: node %s answered the status of %s with %w", from, q.id, err))
			return nil
		}
		_ = q.status.Send(s)
		return nil
	case q.list && q.waiting[from]:
		delete(q.waiting, from)
		for _, w := range m.Jobs {
			// A member lists its own jobs: an id that names another
			// contact is not its to tell.
			if ContactOf(w.Id) != from {
				continue
			}
			if s, err := statusOfWire(w.Id, w); err == nil {
				s.Result, s.Traceback = nil, ""
				q.jobs = append(q.jobs, s)
			}
		}
		if m.Truncated {
			q.cut = append(q.cut, from)
		}
		if len(q.waiting) == 0 {
			p.endQuery(ctx, m.Request)
			_ = q.listed.Send(q.result())
		}
		return nil
	}
	ctx.Log().Debug().Str("from", string(from)).Uint64("request", m.Request).Msg("dropping an answer to no waiting query")
	return nil
}

func (p *protocol) endQuery(ctx *actors.Context, n uint64) {
	ctx.Cancel(p.queries[n].timer)
	delete(p.queries, n)
}

func (p *protocol) onQueryTimeout(_ *actors.Context, t queryTimeout) error {
	q := p.queries[t.request]
	if q == nil {
		return nil
	}
	delete(p.queries, t.request)
	if q.list {
		_ = q.listed.Send(q.result())
		return nil
	}
	_ = q.status.Fail(fmt.Errorf("%w: job %s's contact node %s did not answer within %v; ask it (its API) or try again",
		ErrQueryUnanswered, q.id, q.contact, q.timeout))
	return nil
}

// queriesLost answers the queries that wait for a member that failed or
// left: a status query fails (the job ended with its contact), a list
// names the member missing and answers if it waits for no other.
func (p *protocol) queriesLost(ctx *actors.Context, node actors.NodeName) {
	for _, n := range slices.Sorted(maps.Keys(p.queries)) {
		q := p.queries[n]
		switch {
		case !q.list && q.contact == node:
			p.endQuery(ctx, n)
			_ = q.status.Fail(fmt.Errorf("%w: job %s's contact node %s failed or left before it answered; its jobs ended with it", ErrContactLost, q.id, node))
		case q.list && q.waiting[node]:
			delete(q.waiting, node)
			q.gone = append(q.gone, node)
			if len(q.waiting) == 0 {
				p.endQuery(ctx, n)
				_ = q.listed.Send(q.result())
			}
		}
	}
}

// queriesUnanswered answers every waiting query when this incarnation
// ends.
func (p *protocol) queriesUnanswered() {
	for _, n := range slices.Sorted(maps.Keys(p.queries)) {
		q := p.queries[n]
		if q.list {
			_ = q.listed.Send(q.result())
			continue
		}
		_ = q.status.Fail(fmt.Errorf("%w: the jobs protocol of node %s stopped while waiting for job %s's contact node %s", ErrQueryUnanswered, p.self, q.id, q.contact))
	}
	clear(p.queries)
}
