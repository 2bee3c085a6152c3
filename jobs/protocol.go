package jobs

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/membership"
	pb "github.com/troupe-dev/troupe/messages"
)

// New returns the factory of the jobs protocol. The node must run the
// membership protocol (membership.Attach) and an elector (election.New)
// before it starts.
func New(cfg Config) (actors.Factory, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return func() actors.Protocol { return &protocol{cfg: cfg, rts: runtimesOf(cfg)} }, nil
}

// partKey names one part of one job.
type partKey struct {
	id   string
	part uint32
}

// protocol is the jobs protocol of one node, in its three roles: contact
// of the jobs submitted to it (contact.go), scheduler while it leads
// (leader.go), and worker (worker.go).
type protocol struct {
	cfg  Config
	rts  map[string]Runtime
	self actors.NodeName
	gen  string
	seq  uint64
	pool *pool

	live   map[actors.NodeName]bool // live members, this node included
	leader actors.NodeName          // the leader this node follows ("" while none)
	term   uint64                   // the highest leader term this node knows

	quorum       quorumView // why there is no leader, from the raft group (waiting.go)
	quorumAsking bool       // a request for it is in flight

	// contact
	owned     map[string]*owned
	ownedSeq  []string // ids in submission order
	doneQueue map[string][]uint32
	cancels   map[uint64]*forwardedCancel // forwarded cancellations waiting for their contact's answer
	cancelSeq uint64                      // the number of the latest forwarded cancellation or query
	queries   map[uint64]*query           // forwarded status and list queries waiting for answers (query.go)
	watches   map[uint64]*statusWatch     // status answers held until their job ends (watch.go)
	// leader
	sched  *scheduler
	epochs uint64
	// worker
	work worker

	tick     actors.TimerID // the periodic tick (Config.Tick) while there is work; 0 while idle (wake)
	draining bool           // Drain: hand parts back, take no more

	outbox      map[actors.NodeName][]proto.Message // messages waiting for a retry, by node
	gens        map[actors.NodeName]string          // node → generation of its jobs protocol, from Restarted
	flushPosted bool
	stats       Stats
}

// flush is posted to the protocol's own mailbox once per burst: it sends
// the batched PartDone and WorkRequest credits, after the messages already
// queued were handled.
type flush struct{}

func (p *protocol) Name() actors.ProtocolName { return Name }

func (p *protocol) Init(ctx *actors.Context) error {
	p.self = ctx.Node()
	p.gen = strconv.FormatUint(uint64(ctx.Now().UnixNano()), 36)
	p.pool = newPool(ctx.Ref(), p.rts, p.cfg.Inline)
	p.live = map[actors.NodeName]bool{p.self: true}
	p.owned = map[string]*owned{}
	p.outbox = map[actors.NodeName][]proto.Message{}
	p.gens = map[actors.NodeName]string{p.self: p.gen}
	p.doneQueue = map[string][]uint32{}
	p.cancels = map[uint64]*forwardedCancel{}
	p.queries = map[uint64]*query{}
	p.watches = map[uint64]*statusWatch{}
	p.cancelSeq = uint64(ctx.Now().UnixNano()) // an earlier incarnation's numbers are not taken for this one's
	p.newSchedule()
	p.work = newWorker()
	p.work.report = uint64(ctx.Now().UnixNano())

	actors.OnMessage(ctx, p.onSubmit)
	actors.OnMessage(ctx, p.onProgress)
	actors.OnMessage(ctx, p.onAssign)
	actors.OnMessage(ctx, p.onWorkRequest)
	actors.OnMessage(ctx, p.onPartResult)
	actors.OnMessage(ctx, p.onPartDone)
	actors.OnMessage(ctx, p.onJobCancel)
	actors.OnMessage(ctx, p.onCancelReply)
	actors.OnMessage(ctx, p.onJobQuery)
	actors.OnMessage(ctx, p.onQueryReply)
	actors.OnMessage(ctx, p.onRestarted)
	actors.OnMessage(ctx, p.onPartProgress)
	actors.OnPost(ctx, p.onSplit)
	actors.OnPost(ctx, p.onPartFinished)
	actors.OnPost(ctx, p.onMerged)
	actors.OnPost(ctx, p.onTaskProgress)
	actors.OnPost(ctx, p.onProgressIgnored)
	actors.OnPost(ctx, func(ctx *actors.Context, _ flush) error {
		p.flushPosted = false
		p.flushDone(ctx)
		p.flushCredits(ctx)
		return nil
	})
	actors.OnTimer(ctx, p.onTick)
	actors.OnTimer(ctx, p.onCancelTimeout)
	actors.OnTimer(ctx, p.onQueryTimeout)
	actors.OnTimer(ctx, p.onWatchOver)
	actors.OnRequest(ctx, p.submit)
	actors.OnRequestDeferred(ctx, p.onStatusRequest)
	actors.OnRequestDeferred(ctx, p.onClusterList)
	actors.OnRequest(ctx, p.list)
	actors.OnRequestDeferred(ctx, p.onCancelRequest)
	actors.OnRequest(ctx, p.drain)
	actors.OnReconfigure(ctx, p.onReconfigure)
	actors.OnRequest(ctx, func(*actors.Context, StatsRequest) (Stats, error) {
		s := p.stats
		s.Leader, s.Term, s.Leading = p.leader, p.term, p.leader == p.self
		s.LeaderJobs, s.Queued = len(p.sched.jobs), p.sched.queued()
		for _, j := range p.sched.jobs {
			s.Held += len(j.holders)
		}
		s.Running, s.Waiting, s.Report = p.work.running, len(p.work.queue), p.work.report
		s.Owned = len(p.owned)
		s.Watches = len(p.watches)
		return s, nil
	})

	actors.OnNotification(ctx, p.onLeaderChanged)
	err := membership.Watch(ctx, p.onMembership)
	if err != nil {
		return fmt.Errorf("jobs: node %s needs the membership protocol (membership.Attach): %w", p.self, err)
	}
	err = actors.Request(ctx, election.Name, election.LeaderRequest{}, 0, func(ctx *actors.Context, l election.Leader, err error) error {
		if err != nil {
			return fmt.Errorf("jobs: asking the elector for the leader: %w", err)
		}
		if p.leader == "" && l.Name != "" {
			return p.onLeaderChanged(ctx, &election.LeaderChanged{Leader: l.Name, Term: l.Term})
		}
		return nil
	})

	if err != nil {
		return fmt.Errorf("jobs: node %s needs an elector (election.New): %w", p.self, err)
	}
	p.tick = 0 // armed by wake when there is work (tick.go)
	return nil
}

// onMembership follows the members: the view when the protocol starts
// (a restarted incarnation tells the others, which hand its parts back),
// then joins, failures and leaves.
func (p *protocol) onMembership(ctx *actors.Context, ch membership.Change) error {
	switch ev := ch.Event.(type) {
	case nil:
		for _, m := range ch.View.Live() {
			p.live[m.Name] = true
		}
		for _, n := range p.liveNames() {
			if n != p.self {
				p.send(ctx, n, &pb.Restarted{Generation: p.gen})
			}
		}
	case *membership.MemberJoined:
		name := ev.Member.Name
		p.live[name] = true
		p.workerContactBack(name)
		// Views changed: workers that refused parts (their contact
		// looked lost to them) may take them now.
		for _, j := range p.sched.jobs {
			clear(j.refused)
		}
		// A leader dropped the jobs and parts of a member it saw fail; a
		// member that comes back (a false failure under load, a healed
		// partition) may never have stopped following it and would not
		// hand them over again: tell it, as a restarted leader does.
		if p.leader == p.self && name != p.self {
			p.send(ctx, name, &pb.Restarted{Generation: p.gen})
		}
	case *membership.MemberFailed:
		p.gone(ctx, ev.Member.Name, true)
	case *membership.MemberLeft:
		p.gone(ctx, ev.Member.Name, false)
	}
	return nil
}

// Stop cancels the parts running on this node and waits for them, and
// answers the cancellations that wait for a contact.
func (p *protocol) Stop(*actors.Context) {
	p.cancelsUnanswered()
	p.queriesUnanswered()
	p.watchesUnanswered()
	p.pool.stop()
}

// onLeaderChanged follows the elector. Each role reacts: the contact hands
// its unfinished jobs to the new leader; the worker tells it what it runs
// and how many more parts it can take; a node that another node replaces
// as leader drops its scheduling state (the contacts hold the jobs).
func (p *protocol) onLeaderChanged(ctx *actors.Context, ev *election.LeaderChanged) error {
	p.term = max(p.term, ev.Term)
	if ev.Leader == p.leader {
		return nil
	}
	p.leader = ev.Leader
	p.quorum = quorumView{} // asked again, on the next tick, if there is no leader now
	if ev.Leader != p.self && len(p.sched.jobs) > 0 {
		ctx.Log().Info().Str("leader", string(ev.Leader)).Int("jobs", len(p.sched.jobs)).Msg("no longer leading: dropping the schedule")
	}
	if ev.Leader != p.self {
		p.newSchedule()
	} else if p.sched.settleBy.IsZero() {
		p.sched.settleBy = ctx.Now().Add(p.cfg.Settle)
	}
	if ev.Leader == "" {
		p.wake(ctx) // the contact's waiting jobs ask the raft group why
		return nil
	}
	if ev.Leader == p.self {
		// Its schedule may have been dropped while it believed in
		// another leader or in none, and a contact that never stopped
		// following it would not hand its jobs over again. The message
		// a restarted protocol sends makes every node that follows it
		// do so (this node's own jobs keep their generation).
		for _, n := range p.liveNames() {
			if n != p.self {
				p.send(ctx, n, &pb.Restarted{Generation: p.gen})
			}
		}
	}
	p.resetWorker(ctx)
	p.resubmitAll(ctx)
	return nil
}

// onRestarted handles another node's new incarnation of this protocol: its
// old jobs are gone (stop their parts, drop their schedule), and if it is
// the leader this node follows, its schedule is empty: hand it the jobs
// and the running parts again, as to a new leader.
func (p *protocol) onRestarted(ctx *actors.Context, from actors.NodeName, m *pb.Restarted) error {
	p.confirmDeath(ctx, from, m.Generation)
	p.gens[from] = m.Generation
	for id, j := range p.sched.jobs {
		if j.contact == from && !strings.HasPrefix(id, string(from)+"."+m.Generation+".") {
			delete(p.sched.jobs, id)
		}
	}
	p.stopTasks(ctx, func(t *task) bool {
		if t.contact == from && !strings.HasPrefix(t.key.id, string(from)+"."+m.Generation+".") {
			p.endJob(t.key.id, true)
			return true
		}
		return false
	})
	if from == p.leader {
		ctx.Log().Info().Str("leader", string(from)).Msg("the leader's jobs protocol restarted: handing it the jobs and parts again")
		p.resetWorker(ctx)
		p.resubmitAll(ctx)
	}
	return nil
}

// oldJob reports whether job id belongs to an earlier incarnation of its
// contact's jobs protocol, whose jobs are gone.
func (p *protocol) oldJob(id string, contact actors.NodeName) bool {
	g, ok := p.gens[contact]
	return ok && !strings.HasPrefix(id, string(contact)+"."+g+".")
}

// gone handles a member that failed or left, in every role.
func (p *protocol) gone(ctx *actors.Context, name actors.NodeName, failed bool) {
	delete(p.live, name)
	delete(p.outbox, name)
	p.leaderLost(ctx, name, failed)
	p.workerContactLost(ctx, name)
	p.cancelsLost(ctx, name)
	p.queriesLost(ctx, name)
	p.watchesLost(ctx, name)
}

// acceptFrom reports whether an order of `term` from node `from` comes from
// the leader this node follows or a newer one. Orders of an older leader
// (the other side of a healed partition, a paused node) are ignored.
func (p *protocol) acceptFrom(from actors.NodeName, term uint64) bool {
	if from == p.leader && p.leader != "" {
		p.term = max(p.term, term)
		return true
	}
	if term > p.term {
		p.term = term
		return true
	}
	return false
}

// send sends m reliably to `to`. Reliable delivery still fails at once when
// the node's address is not known yet (an elector's Coordinator can arrive
// before membership has the sender's address) or the window is full; then
// m waits in an outbox, with every later message to `to`, so that order is
// kept, and the tick sends it again. Messages to a member that failed or
// left are dropped.
func (p *protocol) send(ctx *actors.Context, to actors.NodeName, m proto.Message) {
	if q := p.outbox[to]; len(q) > 0 {
		if len(q) >= maxOutbox {
			ctx.Log().Warn().Str("to", string(to)).Int("queued", len(q)).Msg("jobs outbox full: dropping the oldest message")
			q = q[1:]
		}
		p.outbox[to] = append(q, m)
		return
	}
	if err := ctx.SendReliable(to, m); err != nil {
		ctx.Log().Debug().Err(err).Str("to", string(to)).Msg("jobs message queued for a retry")
		p.outbox[to] = []proto.Message{m}
		p.wake(ctx)
	}
}

// maxOutbox bounds the messages waiting for one node.
const maxOutbox = 10000

// retry sends what waits in the outbox, in order, until a send fails.
func (p *protocol) retry(ctx *actors.Context) {
	for _, to := range slices.Sorted(maps.Keys(p.outbox)) {
		q := p.outbox[to]
		for len(q) > 0 {
			if err := ctx.SendReliable(to, q[0]); err != nil {
				break
			}
			q = q[1:]
		}
		if len(q) == 0 {
			delete(p.outbox, to)
		} else {
			p.outbox[to] = q
		}
	}
}

// liveNames lists the live members in order.
func (p *protocol) liveNames() []actors.NodeName {
	out := make([]actors.NodeName, 0, len(p.live))
	for n := range p.live {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (p *protocol) postFlush(ctx *actors.Context) {
	if !p.flushPosted {
		p.flushPosted = true
		_ = ctx.Post(flush{})
	}
}

// newSchedule drops the scheduling state; splits still running for the old
// one are recognised by their epoch and ignored.
func (p *protocol) newSchedule() {
	p.epochs++
	p.sched = newScheduler(p.epochs)
}
