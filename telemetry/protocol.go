package telemetry

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/membership"
	pb "github.com/troupe-dev/troupe/messages"
)

// New returns the factory of the telemetry protocol, after checking cfg
// (zero fields take their defaults). The node's membership must be
// attached (membership.Attach) before it starts.
func New(cfg Config) (actors.Factory, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return func() actors.Protocol { return &telemetry{cfg: cfg} }, nil
}

// received is the latest status of a node, with when it arrived.
type received struct {
	msg *pb.TelemetryStatus
	at  time.Time
	// size is the encoded status's size in bytes.
	size int
}

type telemetry struct {
	cfg     Config
	self    actors.NodeName
	started time.Time
	inc     string // this incarnation, in alert ids

	seq, alertSeq uint64
	members       map[actors.NodeName]membership.State // this node's SWIM view
	leader        actors.NodeName
	term          uint64
	// statuses are the statuses this node received itself (every
	// member's when it is the aggregator) and its own.
	statuses map[actors.NodeName]*received
	alerts   *history
	rates    map[actors.ProtocolName][]float64 // per protocol: messages handled per second over the live members (the aggregator's)

	// The aggregator's table, fetched on demand (aggregate.go).
	last       *pb.TelemetryStatus // this node's latest status, sent again to a new aggregator
	sentTo     actors.NodeName     // the aggregator the latest status went to
	table      map[actors.NodeName]*received
	tableRates map[actors.ProtocolName][]float64
	tableFrom  actors.NodeName
	tableAt    time.Time // when the table arrived (zero: never)
	fetch      *tableFetch
	nextFetch  uint64
	series     map[uint64]*seriesWait

	// For the rates and CPU of the next status.
	prevAt    time.Time
	prevCPU   time.Duration
	prevMsgs  map[actors.ProtocolName][5]int64 // protocol → messages in, out, timer firings, bytes in, out
	listing   bool                             // a jobs list request is in flight
	jobs      []*pb.TelemetryJob
	failedJob map[string]bool // failed jobs alerted already
	diskFull  bool            // a disk alert is raised and not re-armed
	diskSeen  bool            // the disk was measured once at least

	// Leader lost: the elector reported no leader; the grace runs.
	lastLeader  actors.NodeName // the latest leader known, for the leader_lost alert
	leaderWait  bool
	leaderTimer actors.TimerID

	// Quorum: the raft group's voters, from its status (nil: no raft
	// protocol on this node), against the live members of the SWIM view.
	voters      []actors.NodeName
	raft        *pb.TelemetryRaft // the raft protocol's latest status, for this node's status
	askingRaft  bool
	quorumKnown bool // the raft protocol answered, or is known not to run
	quorumLost  bool

	gotHistory  bool // a member sent its alert history
	historyAsks int

	charts  map[actors.NodeName]*series // per member: its figures over time, from its statuses
	results map[string]*resultPreview   // succeeded jobs this node is contact of: their results, cut

	nextLogs uint64
	pending  map[uint64]*logsWait
}

type logsWait struct {
	q     LogsQuery
	reply actors.Reply[Logs]
	timer actors.TimerID
}

type (
	statusTick  struct{}
	logsTimeout struct{ id uint64 }
	leaderGrace struct{}
)

var _ actors.Stopper = (*telemetry)(nil)

func (p *telemetry) Name() actors.ProtocolName { return Name }

func (p *telemetry) Init(ctx *actors.Context) error {
	p.self = ctx.Node()
	p.started = ctx.Now()
	p.inc = fmt.Sprintf("%x", p.started.UnixNano())
	p.members = map[actors.NodeName]membership.State{p.self: membership.Alive}
	p.statuses = map[actors.NodeName]*received{}
	p.alerts = newHistory(p.cfg.AlertHistory)
	p.rates = map[actors.ProtocolName][]float64{}
	p.prevMsgs = map[actors.ProtocolName][5]int64{}
	p.charts = map[actors.NodeName]*series{}
	p.table = map[actors.NodeName]*received{}
	p.series = map[uint64]*seriesWait{}
	p.results = map[string]*resultPreview{}
	p.failedJob = map[string]bool{}
	p.pending = map[uint64]*logsWait{}
	p.prevAt, p.prevCPU = p.started, p.cfg.Probe.Sample().CPUTime

	actors.OnMessage(ctx, p.onStatus)
	actors.OnMessage(ctx, p.onAlert)
	actors.OnMessage(ctx, p.onHistoryRequest)
	actors.OnMessage(ctx, p.onHistory)
	actors.OnMessage(ctx, p.onLogsRequest)
	actors.OnMessage(ctx, p.onLogs)
	actors.OnTimer(ctx, func(ctx *actors.Context, _ statusTick) error { p.tick(ctx); return nil })
	actors.OnTimer(ctx, p.onLogsTimeout)
	actors.OnTimer(ctx, p.onLeaderGrace)
	actors.OnMessage(ctx, p.onTableRequest)
	actors.OnMessage(ctx, p.onTable)
	actors.OnMessage(ctx, p.onSeriesRequest)
	actors.OnMessage(ctx, p.onSeries)
	actors.OnTimer(ctx, p.onFetchTimeout)
	actors.OnTimer(ctx, p.onSeriesTimeout)
	actors.OnRequestDeferred(ctx, p.onSnapshot)
	actors.OnRequest(ctx, func(*actors.Context, AlertsRequest) ([]Alert, error) { return p.alerts.newest(0), nil })
	actors.OnRequestDeferred(ctx, p.onHistoryQuery)
	actors.OnRequestDeferred(ctx, p.onLogsQuery)
	actors.OnNotification(ctx, p.onLeaderChanged)
	actors.OnNotification(ctx, func(ctx *actors.Context, _ *consensus.LeadershipChanged) error {
		p.askRaft(ctx) // the voters may have changed with the leader
		return nil
	})
	actors.OnNotification(ctx, func(ctx *actors.Context, ev *actors.ProtocolRestarted) error {
		p.raise(ctx, Warning, ProtocolRestarted, string(ev.Protocol),
			fmt.Sprintf("%s/%s/%d", ev.Node, ev.Protocol, ev.Restarts),
			fmt.Sprintf("protocol %s on %s restarted (restart %d): %s", ev.Protocol, ev.Node, ev.Restarts, ev.Reason))
		return nil
	})
	actors.OnNotification(ctx, func(ctx *actors.Context, ev *actors.ProtocolStopped) error {
		p.raise(ctx, Critical, ProtocolStopped, string(ev.Protocol), string(ev.Node)+"/"+string(ev.Protocol),
			fmt.Sprintf("protocol %s on %s stopped after %d failures in %v: %s", ev.Protocol, ev.Node, ev.Failures, ev.Window, ev.Reason))
		return nil
	})

	err := membership.Watch(ctx, p.onMembership)
	if err != nil {
		return fmt.Errorf("telemetry: needs the membership protocol on node %s (membership.Attach): %w", p.self, err)
	}
	// No elector yet is fine: its LeaderChanged notifications arrive once
	// it runs.
	_ = actors.Request(ctx, election.Name, election.LeaderRequest{}, 0, func(ctx *actors.Context, l election.Leader, err error) error {
		if err == nil && p.term <= l.Term && l.Name != "" {
			p.leader, p.term = l.Name, l.Term
		}
		return nil
	})

	ctx.Every(p.cfg.StatusInterval, statusTick{})
	return nil
}

// Stop answers the logs queries still waiting: their answers would come to
// the next incarnation, which does not know them.
func (p *telemetry) Stop(*actors.Context) {
	for _, id := range slices.Sorted(maps.Keys(p.pending)) {
		_ = p.pending[id].reply.Fail(fmt.Errorf("%w: the telemetry protocol of %s restarted or stopped", ErrTimeout, p.self))
	}
	clear(p.pending)
	p.answerSnapshots(nil)
	for _, id := range slices.Sorted(maps.Keys(p.series)) {
		_ = p.series[id].reply.Fail(fmt.Errorf("%w: the telemetry protocol of %s restarted or stopped", ErrTimeout, p.self))
	}
	clear(p.series)
}

// askHistory asks the aggregator first, then another live member each
// status interval, for the alerts raised before this incarnation started,
// until one answers.
func (p *telemetry) askHistory(ctx *actors.Context) {
	if p.gotHistory {
		return
	}
	peers := p.live()
	if len(peers) == 0 {
		return
	}
	to := peers[p.historyAsks%len(peers)]
	if agg := p.aggregator(); p.historyAsks == 0 && agg != p.self {
		to = agg
	}
	p.historyAsks++
	p.send(ctx, to, &pb.TelemetryHistoryRequest{})
}

// onMembership follows the SWIM view and raises the membership alerts.
func (p *telemetry) onMembership(ctx *actors.Context, ch membership.Change) error {
	switch ev := ch.Event.(type) {
	case nil: // the view this incarnation starts from
		for _, m := range ch.View.Members {
			p.members[m.Name] = m.State
		}
		p.members[p.self] = membership.Alive
		p.tick(ctx)
		return nil
	case *membership.MemberJoined:
		name := ev.Member.Name
		st, known := p.members[name]
		p.members[name] = membership.Alive
		p.changed(ctx)
		if known && (st == membership.Failed || st == membership.Left) {
			// Back after a partition (or a restart): it missed what was
			// raised and resolved meanwhile.
			p.sendHistory(ctx, name)
		}
	case *membership.MemberUpdated:
		p.members[ev.Member.Name] = ev.Member.State
		p.changed(ctx)
	case *membership.MemberSuspect:
		m := ev.Member
		p.members[m.Name] = membership.Suspect
		p.raise(ctx, Warning, MemberSuspect, string(m.Name), string(m.Name),
			fmt.Sprintf("member %s is suspected: it missed a probe of %s", m.Name, p.self))
		p.changed(ctx)
	case *membership.MemberFailed:
		m := ev.Member
		p.members[m.Name] = membership.Failed
		p.raise(ctx, Critical, MemberFailed, string(m.Name), string(m.Name), fmt.Sprintf("member %s failed", m.Name))
		p.changed(ctx)
	case *membership.MemberLeft:
		m := ev.Member
		p.members[m.Name] = membership.Left
		p.raise(ctx, Info, MemberLeft, string(m.Name), fmt.Sprintf("%s/%d/%d", m.Name, m.Generation, m.Incarnation),
			fmt.Sprintf("member %s left", m.Name))
		p.changed(ctx)
	}
	return nil
}

// changed follows a change of the SWIM view: the quorum, and the alerts
// that may have ended.
func (p *telemetry) changed(ctx *actors.Context) {
	p.checkQuorum(ctx)
	p.settle(ctx)
	p.route(ctx)
}

// onLeaderChanged follows the elector: a new leader is an event, and ends
// a leader_lost alert; no leader starts the grace after which leader_lost
// is raised.
func (p *telemetry) onLeaderChanged(ctx *actors.Context, ev *election.LeaderChanged) error {
	if p.leader != "" {
		p.lastLeader = p.leader
	}
	p.leader, p.term = ev.Leader, ev.Term
	if ev.Leader == "" {
		if !p.leaderWait {
			p.leaderWait = true
			p.leaderTimer = ctx.After(p.cfg.LeaderGrace, leaderGrace{})
		}
		return nil
	}
	if p.leaderWait {
		p.leaderWait = false
		ctx.Cancel(p.leaderTimer)
	}
	// Every node's elector reports the new leader at about the same
	// moment: the leader raises the event and sends it to every member;
	// were each node to, a thousand nodes would send a million alerts.
	if ev.Leader == p.self {
		p.raise(ctx, Info, LeaderChanged, string(ev.Leader), fmt.Sprintf("%d/%s", ev.Term, ev.Leader),
			fmt.Sprintf("%s leads (term %d)", ev.Leader, ev.Term))
	}
	p.settle(ctx)
	p.route(ctx)
	return nil
}

func (p *telemetry) onLeaderGrace(ctx *actors.Context, _ leaderGrace) error {
	p.leaderWait = false
	if p.leader != "" {
		return nil
	}
	msg := fmt.Sprintf("no leader for %v (term %d)", p.cfg.LeaderGrace, p.term)
	if p.lastLeader != "" {
		msg = fmt.Sprintf("no leader for %v since %s (term %d)", p.cfg.LeaderGrace, p.lastLeader, p.term)
	}
	p.raise(ctx, Critical, LeaderLost, string(p.lastLeader), "", msg)
	return nil
}

// askRaft asks the raft protocol of this node, if it runs, for its voters.
func (p *telemetry) askRaft(ctx *actors.Context) {
	if p.askingRaft {
		return
	}
	err := actors.Request(ctx, consensus.Name, consensus.StatusRequest{}, p.cfg.StatusInterval,
		func(ctx *actors.Context, st consensus.Status, err error) error {
			p.askingRaft = false
			switch {
			case errors.Is(err, actors.ErrUnknownProtocol), errors.Is(err, actors.ErrProtocolStopped):
				p.voters, p.raft = nil, nil
			case err != nil:
				return nil // busy: the next status interval asks again
			default:
				p.voters, p.raft = st.Voters, raftToPB(st)
			}
			p.quorumKnown = true
			p.changed(ctx)
			return nil
		})
	if err != nil { // no raft protocol on this node
		p.voters, p.raft, p.quorumKnown = nil, nil, true
		p.changed(ctx)
		return
	}
	p.askingRaft = true
}

// checkQuorum raises quorum_lost when fewer than a majority of the raft
// group's voters are this node or live in its SWIM view. A voter the view
// has not seen yet counts as reachable for Config.StaleAfter after this
// incarnation started (the view fills as members are learnt).
func (p *telemetry) checkQuorum(ctx *actors.Context) {
	if len(p.voters) == 0 {
		p.quorumLost = false
		return
	}
	early := ctx.Now().Sub(p.started) < p.cfg.StaleAfter
	var reach, gone []actors.NodeName
	for _, v := range p.voters {
		if _, known := p.members[v]; v == p.self || p.isLive(v) || !known && early {
			reach = append(reach, v)
		} else {
			gone = append(gone, v)
		}
	}
	need := len(p.voters)/2 + 1
	lost := len(reach) < need
	if lost && !p.quorumLost {
		p.raise(ctx, Critical, QuorumLost, string(p.self), string(p.self),
			fmt.Sprintf("raft on %s reaches %d of its %d voters, fewer than a majority (%d): %s unreachable",
				p.self, len(reach), len(p.voters), need, joinNames(gone)))
	}
	p.quorumLost = lost
}

// live lists the other live members, in name order.
func (p *telemetry) live() []actors.NodeName {
	var out []actors.NodeName
	for name, st := range p.members {
		if name != p.self && (st == membership.Alive || st == membership.Suspect) {
			out = append(out, name)
		}
	}
	slices.SortFunc(out, naturalCompare)
	return out
}

// send sends best effort; a failure (a member that just vanished from the
// directory) is logged, not fatal.
func (p *telemetry) send(ctx *actors.Context, to actors.NodeName, m proto.Message) {
	if err := ctx.Send(to, m); err != nil {
		ctx.Log().Debug().Err(err).Str("to", string(to)).Msg("telemetry message not sent")
	}
}

// raise records an alert of this node and sends it to every live member.
// key, after kind, names the fact ("" for none): the alerts other nodes
// raise for the same fact have the same key and count as one. A condition
// already active is not raised again: this node joins its reporters.
func (p *telemetry) raise(ctx *actors.Context, sev Severity, kind Kind, subject, key, msg string) {
	full := string(kind)
	if key != "" {
		full += "/" + key
	}
	if p.alerts.report(full, p.self) {
		return // another node told us first, and every live member
	}
	p.alertSeq++
	now := ctx.Now()
	a := &Alert{
		ID: fmt.Sprintf("%s/%s/%d", p.self, p.inc, p.alertSeq), Key: full, RaisedBy: p.self,
		Started: now, Received: now, Severity: sev, Kind: kind, Subject: subject, Message: msg, Reporters: []actors.NodeName{p.self},
	}
	p.alerts.add(a)
	ev := ctx.Log().Info()
	switch sev {
	case Warning:
		ev = ctx.Log().Warn()
	case Critical:
		ev = ctx.Log().Error()
	}
	ev.Str("alert", string(kind)).Str("key", full).Str("subject", subject).Msg(msg)
	p.spread(ctx, a)
}

// spread sends a whole alert reliably to every live member.
func (p *telemetry) spread(ctx *actors.Context, a *Alert) {
	m := a.toPB()
	for _, to := range p.live() {
		if err := ctx.SendReliable(to, m); err != nil {
			ctx.Log().Warn().Err(err).Str("to", string(to)).Msg("alert not sent")
		}
	}
}

// settle resolves the active alerts this node answers for whose condition
// ended: those it raised (in this incarnation or an earlier one), and those
// about the cluster (a member, the leader) whose raising node failed or
// left before it saw the end.
func (p *telemetry) settle(ctx *actors.Context) {
	for _, a := range p.alerts.alerts() {
		if !a.Active() {
			continue
		}
		mine := a.RaisedBy == p.self
		if !mine && !(observable(a.Kind) && (p.members[a.RaisedBy] == membership.Failed || p.members[a.RaisedBy] == membership.Left)) {
			continue
		}
		if why, over := p.over(ctx, &a.Alert); over {
			p.resolve(ctx, p.alerts.copies[a.ID], why)
		}
	}
}

// observable reports whether any node can tell that an alert of kind k
// ended; the others only the node that raised them can.
func observable(k Kind) bool { return k == MemberSuspect || k == MemberFailed || k == LeaderLost }

// over reports whether the condition of a ended, as this node sees it, and
// why.
func (p *telemetry) over(ctx *actors.Context, a *Alert) (string, bool) {
	switch a.Kind {
	case MemberSuspect:
		st, ok := p.members[actors.NodeName(a.Subject)]
		return fmt.Sprintf("member %s is %s", a.Subject, st), ok && st != membership.Suspect
	case MemberFailed:
		st, ok := p.members[actors.NodeName(a.Subject)]
		return fmt.Sprintf("member %s is %s", a.Subject, st), ok && st != membership.Failed
	case LeaderLost:
		return fmt.Sprintf("%s leads (term %d)", p.leader, p.term), p.leader != ""
	case QuorumLost:
		if len(p.voters) == 0 {
			return "no raft group runs on " + string(p.self), a.Subject == string(p.self) && p.quorumKnown
		}
		return fmt.Sprintf("raft on %s reaches a majority of its %d voters", p.self, len(p.voters)), a.Subject == string(p.self) && p.quorumKnown && !p.quorumLost
	case ProtocolStopped:
		ps, ok := ctx.NodeStats().Protocols[actors.ProtocolName(a.Subject)]
		return fmt.Sprintf("protocol %s runs on %s again", a.Subject, p.self), !ok || !ps.Stopped
	case DiskAlmostFull:
		return fmt.Sprintf("disk of %s is below %.0f%% used", p.self, 100*(p.cfg.DiskFull-0.02)), p.diskSeen && !p.diskFull
	}
	return "", false
}

// resolve ends a, the first copy of an alert of the history, now, and
// sends it to every live member.
func (p *telemetry) resolve(ctx *actors.Context, a *Alert, why string) {
	a.Ended, a.ResolvedBy = ctx.Now(), p.self
	if a.Ended.Before(a.Started) { // another node's clock raised it, ahead of ours
		a.Ended = a.Started
	}
	ctx.Log().Info().Str("alert", string(a.Kind)).Str("key", a.Key).Str("raised-by", string(a.RaisedBy)).
		Dur("lasted", a.Ended.Sub(a.Started)).Msgf("alert resolved: %s", why)
	p.spread(ctx, a)
}

func (p *telemetry) onAlert(ctx *actors.Context, from actors.NodeName, m *pb.TelemetryAlert) error {
	a, err := alertFromPB(m, ctx.Now())
	if err != nil {
		ctx.Log().Warn().Err(err).Str("from", string(from)).Msg("dropping a malformed alert")
		return nil
	}
	p.alerts.add(a)
	p.settle(ctx)
	return nil
}

func (p *telemetry) onHistoryRequest(ctx *actors.Context, from actors.NodeName, _ *pb.TelemetryHistoryRequest) error {
	p.sendHistory(ctx, from)
	return nil
}

// sendHistory sends this node's whole alert history to a member, best
// effort: each alert as one copy, its first, with the alert's end and
// reporters (the member derives the same alert from it).
func (p *telemetry) sendHistory(ctx *actors.Context, to actors.NodeName) {
	h := &pb.TelemetryHistory{}
	for _, a := range p.alerts.newest(0) {
		h.Alerts = append(h.Alerts, a.toPB())
	}
	p.send(ctx, to, h)
}

func (p *telemetry) onHistory(ctx *actors.Context, from actors.NodeName, m *pb.TelemetryHistory) error {
	p.gotHistory = true
	now := ctx.Now()
	for _, am := range m.Alerts {
		if a, err := alertFromPB(am, now); err == nil {
			p.alerts.add(a)
		}
	}
	p.settle(ctx)
	return nil
}

// tick makes this node's status: first the jobs it is contact of, from the
// jobs protocol if it runs, then the rest.
func (p *telemetry) tick(ctx *actors.Context) {
	p.askHistory(ctx)
	p.askRaft(ctx)
	p.changed(ctx)
	if p.listing {
		return // the status goes out when the list comes
	}
	err := actors.Request(ctx, jobs.Name, jobs.ListRequest{}, p.cfg.StatusInterval,
		func(ctx *actors.Context, list []jobs.Status, err error) error {
			p.listing = false
			if err == nil {
				p.onJobs(ctx, list)
			}
			p.broadcast(ctx)
			return nil
		})
	if err != nil { // no jobs protocol on this node
		p.jobs = nil
		p.broadcast(ctx)
		return
	}
	p.listing = true
}

// onJobs keeps the pending and running jobs and the latest ended ones, and
// raises an alert for each job that failed since this incarnation started.
func (p *telemetry) onJobs(ctx *actors.Context, list []jobs.Status) {
	p.jobs = nil // the last status keeps the previous list
	ended := 0
	seen := map[string]bool{}
	listed := map[string]bool{}
	for _, st := range list {
		if st.State == jobs.Failed && !st.Ended.Before(p.started) {
			seen[st.ID] = true
			if !p.failedJob[st.ID] {
				p.failedJob[st.ID] = true
				p.raise(ctx, Warning, JobFailed, st.ID, st.ID, fmt.Sprintf("job %s failed at %s: %s", st.ID, p.self, st.Error))
			}
		}
		if st.State.Ended() {
			if ended >= p.cfg.EndedJobs {
				continue
			}
			ended++
		}
		j := &pb.TelemetryJob{Id: st.ID, State: string(st.State), PartsTotal: uint32(st.PartsTotal),
			PartsDone: uint32(st.PartsDone), Error: st.Error, SubmittedUnixNano: st.Submitted.UnixNano()}
		if !st.Ended.IsZero() {
			j.EndedUnixNano = st.Ended.UnixNano()
		}
		for n, c := range st.PartsByNode {
			if j.PartsByNode == nil {
				j.PartsByNode = map[string]uint32{}
			}
			j.PartsByNode[string(n)] = uint32(c)
		}
		if st.State == jobs.Succeeded {
			listed[st.ID] = true
			if r := p.results[st.ID]; r != nil {
				j.Result, j.ResultCut = r.text, r.cut
			} else {
				p.fetchResult(ctx, st.ID)
			}
		}
		p.jobs = append(p.jobs, j)
	}
	maps.DeleteFunc(p.failedJob, func(id string, _ bool) bool { return !seen[id] })
	maps.DeleteFunc(p.results, func(id string, _ *resultPreview) bool { return !listed[id] })
}

// resultPreview is a succeeded job's result, cut to MaxResultPreview
// bytes; nil text while it is being fetched.
type resultPreview struct {
	text string
	cut  bool
}

// fetchResult asks the jobs protocol for a succeeded job's result (the
// list leaves results out); the next status carries it.
func (p *telemetry) fetchResult(ctx *actors.Context, id string) {
	r := &resultPreview{}
	p.results[id] = r
	err := actors.Request(ctx, jobs.Name, jobs.StatusRequest{ID: id}, p.cfg.StatusInterval,
		func(ctx *actors.Context, st jobs.Status, err error) error {
			if err != nil {
				delete(p.results, id) // asked again with the next list
				return nil
			}
			r.text, r.cut = cutResult(st.Result)
			return nil
		})
	if err != nil {
		delete(p.results, id)
	}
}

// cutResult cuts a result to MaxResultPreview bytes, at a rune boundary.
func cutResult(res []byte) (string, bool) {
	if len(res) <= MaxResultPreview {
		return string(res), false
	}
	cut := res[:MaxResultPreview]
	for i := 0; i < utf8.UTFMax-1 && !utf8.Valid(cut); i++ {
		cut = cut[:len(cut)-1]
	}
	return string(cut), true
}

// broadcast makes this node's status, keeps it, sends it to the
// aggregator, and, on the aggregator, adds a point to the rate charts.
func (p *telemetry) broadcast(ctx *actors.Context) {
	st := p.status(ctx)
	p.statuses[p.self] = &received{msg: st, at: ctx.Now(), size: proto.Size(st)}
	p.record(p.self, st, ctx.Now())
	p.last = st
	p.sentTo = p.aggregator()
	if p.sentTo != p.self {
		p.send(ctx, p.sentTo, st)
		return
	}
	p.chartRates(ctx.Now())
}

func (p *telemetry) status(ctx *actors.Context) *pb.TelemetryStatus {
	now := ctx.Now()
	host := p.cfg.Probe.Sample()
	dt := now.Sub(p.prevAt).Seconds()
	p.seq++
	st := &pb.TelemetryStatus{
		Node: string(p.self), Seq: p.seq, TimeUnixNano: now.UnixNano(), StartedUnixNano: p.started.UnixNano(),
		IntervalMs: uint32(p.cfg.StatusInterval / time.Millisecond), NumCpu: uint32(host.NumCPU),
		HeapBytes: host.HeapBytes, MemoryBytes: host.MemoryBytes, RssBytes: host.RSSBytes, Goroutines: uint32(host.Goroutines),
		DiskFreeBytes: host.DiskFree, DiskTotalBytes: host.DiskTotal, Leader: string(p.leader), Term: p.term, Jobs: p.jobs,
		Raft: p.raft,
	}
	if dt > 0 && host.CPUTime > 0 {
		st.CpuPercent = 100 * (host.CPUTime - p.prevCPU).Seconds() / dt
	}
	stats := ctx.NodeStats()
	for _, name := range slices.Sorted(maps.Keys(stats.Protocols)) {
		ps := stats.Protocols[name]
		t := ps.Total()
		s := &pb.TelemetryProtocolStatus{Name: string(name), MailboxDepth: uint32(ps.MailboxDepth), Restarts: ps.Restarts,
			Stopped: ps.Stopped, MsgsIn: t.MsgsIn, MsgsOut: t.MsgsOut, BytesIn: t.BytesIn, BytesOut: t.BytesOut, Unhandled: ps.Unhandled,
			Timers: ps.Timers}
		for _, ch := range slices.Sorted(maps.Keys(ps.Channels)) {
			cs := ps.Channels[ch]
			s.Channels = append(s.Channels, &pb.TelemetryChannelStatus{Channel: ch.String(), MsgsIn: cs.Received, MsgsOut: cs.Sent,
				BytesIn: cs.BytesIn, BytesOut: cs.BytesOut, Dropped: cs.Dropped})
		}
		now := [5]int64{t.MsgsIn, t.MsgsOut, ps.Timers, t.BytesIn, t.BytesOut}
		if prev, ok := p.prevMsgs[name]; ok && dt > 0 {
			rate := func(i int) float64 { return float64(max(now[i]-prev[i], 0)) / dt }
			// A timer's firing is not a message: the rate of messages
			// leaves them out, and shows them apart.
			s.MsgsInPerSec = max(rate(0)-rate(2), 0)
			s.MsgsOutPerSec = rate(1)
			s.TimersPerSec = rate(2)
			s.BytesInPerSec, s.BytesOutPerSec = rate(3), rate(4)
		}
		p.prevMsgs[name] = now
		st.Protocols = append(st.Protocols, s)
	}
	p.prevAt, p.prevCPU = now, host.CPUTime
	p.checkDisk(ctx, host)
	return st
}

// checkDisk raises an alert when the disk fills past Config.DiskFull, once
// until it drops 2 points below.
func (p *telemetry) checkDisk(ctx *actors.Context, h HostSample) {
	if h.DiskTotal == 0 {
		return
	}
	used := 1 - float64(h.DiskFree)/float64(h.DiskTotal)
	p.diskSeen = true
	switch {
	case used >= p.cfg.DiskFull && !p.diskFull:
		p.diskFull = true
		p.raise(ctx, Warning, DiskAlmostFull, string(p.self), string(p.self),
			fmt.Sprintf("disk of %s is %.0f%% full (%s free of %s)", p.self, 100*used, bytesString(h.DiskFree), bytesString(h.DiskTotal)))
	case used < p.cfg.DiskFull-0.02:
		p.diskFull = false
	}
}

func (p *telemetry) onStatus(ctx *actors.Context, from actors.NodeName, m *pb.TelemetryStatus) error {
	if actors.NodeName(m.Node) != from {
		ctx.Log().Warn().Str("from", string(from)).Str("node", m.Node).Msg("dropping a status sent for another node")
		return nil
	}
	old := p.statuses[from]
	// A status of an older incarnation, or one overtaken on the way, is
	// dropped.
	if old != nil && (m.StartedUnixNano < old.msg.StartedUnixNano ||
		m.StartedUnixNano == old.msg.StartedUnixNano && m.Seq <= old.msg.Seq) {
		return nil
	}
	if old != nil && m.StartedUnixNano != old.msg.StartedUnixNano ||
		old == nil && time.Duration(m.TimeUnixNano-m.StartedUnixNano) <= p.cfg.StaleAfter {
		// A new incarnation of the member's telemetry: it may have
		// missed alerts, or their ends, while it was starting. (A member
		// that runs for a while and sends its first status here because
		// this node became the aggregator asked for them long ago.)
		p.sendHistory(ctx, from)
	}
	p.statuses[from] = &received{msg: m, at: ctx.Now(), size: proto.Size(m)}
	p.record(from, m, ctx.Now())
	return nil
}

// chartRates adds one point per protocol: messages handled per second,
// summed over the live members whose status is fresh.
func (p *telemetry) chartRates(now time.Time) {
	sum := map[actors.ProtocolName]float64{}
	for name, r := range p.statuses {
		if !p.isLive(name) || now.Sub(r.at) > p.cfg.StaleAfter {
			continue
		}
		for _, ps := range r.msg.Protocols {
			sum[actors.ProtocolName(ps.Name)] += ps.MsgsInPerSec
		}
	}
	for name := range p.rates {
		if _, ok := sum[name]; !ok {
			sum[name] = 0
		}
	}
	for name, v := range sum {
		pts := append(p.rates[name], v)
		if len(pts) > p.cfg.RatePoints {
			pts = slices.Delete(pts, 0, len(pts)-p.cfg.RatePoints)
		}
		p.rates[name] = pts
	}
}

func (p *telemetry) isLive(name actors.NodeName) bool {
	if name == p.self {
		return true
	}
	st, ok := p.members[name]
	return ok && (st == membership.Alive || st == membership.Suspect)
}

func (p *telemetry) onLogsQuery(ctx *actors.Context, q LogsQuery, reply actors.Reply[Logs]) error {
	level, err := q.check()
	switch {
	case err != nil:
		return err
	case q.Node == p.self:
		logs, err := p.localLogs(level, q)
		if err != nil {
			return err
		}
		return reply.Send(logs)
	case !p.known(q.Node):
		return fmt.Errorf("%w: %q is not a member in %s's view (members: %v)", ErrUnknownNode, q.Node, p.self,
			slices.SortedFunc(maps.Keys(p.members), naturalCompare))
	}
	// A member this node holds failed may be alive (a false detection, a
	// partition): ask anyway; a dead one times out.
	if err := ctx.Send(q.Node, &pb.TelemetryLogsRequest{Id: p.nextLogs + 1, Limit: uint32(q.Limit), MinLevel: q.MinLevel,
		Search: q.Search, Since: q.Since}); err != nil {
		return fmt.Errorf("%w: %s cannot reach %s (%s in its view): %v", ErrUnknownNode, p.self, q.Node, p.members[q.Node], err)
	}
	p.nextLogs++
	p.pending[p.nextLogs] = &logsWait{q: q, reply: reply, timer: ctx.After(p.cfg.LogsTimeout, logsTimeout{id: p.nextLogs})}
	return nil
}

func (p *telemetry) known(name actors.NodeName) bool {
	_, ok := p.members[name]
	return ok
}

func (p *telemetry) localLogs(level zerolog.Level, q LogsQuery) (Logs, error) {
	if p.cfg.Logs == nil {
		return Logs{}, fmt.Errorf("%w: %s", ErrNoLogs, p.self)
	}
	lines, truncated, last := p.cfg.Logs.Query(string(p.self), LogFilter{Limit: q.Limit, MinLevel: level, MaxBytes: p.cfg.MaxLogBytes,
		Search: q.Search, Since: q.Since})
	return newLogs(p.self, lines, truncated, last), nil
}

func (p *telemetry) onLogsRequest(ctx *actors.Context, from actors.NodeName, m *pb.TelemetryLogsRequest) error {
	rep := &pb.TelemetryLogs{Id: m.Id}
	q := &LogsQuery{Limit: int(m.Limit), MinLevel: m.MinLevel, Search: m.Search, Since: m.Since}
	level, err := q.check()
	var logs Logs
	if err == nil {
		logs, err = p.localLogs(level, *q)
	}
	if err != nil {
		rep.Error = err.Error()
	} else {
		rep.Truncated, rep.Last = logs.Truncated, logs.Last
		for _, l := range logs.Lines {
			rep.Lines = append(rep.Lines, l)
		}
	}
	p.send(ctx, from, rep)
	return nil
}

func (p *telemetry) onLogs(ctx *actors.Context, from actors.NodeName, m *pb.TelemetryLogs) error {
	w, ok := p.pending[m.Id]
	if !ok || w.q.Node != from {
		return nil // late, after the timeout
	}
	delete(p.pending, m.Id)
	ctx.Cancel(w.timer)
	if m.Error != "" {
		_ = w.reply.Fail(fmt.Errorf("logs of %s: %w", from, remoteError(m.Error)))
		return nil
	}
	lines := make([][]byte, len(m.Lines))
	copy(lines, m.Lines)
	_ = w.reply.Send(newLogs(from, lines, m.Truncated, m.Last))
	return nil
}

func (p *telemetry) onLogsTimeout(ctx *actors.Context, t logsTimeout) error {
	w, ok := p.pending[t.id]
	if !ok {
		return nil
	}
	delete(p.pending, t.id)
	_ = w.reply.Fail(fmt.Errorf("%w: %s did not send its logs within %v", ErrTimeout, w.q.Node, p.cfg.LogsTimeout))
	return nil
}

// remoteError turns another node's error text back into this package's
// sentinel errors where it names one.
func remoteError(msg string) error {
	for _, e := range []error{ErrNoLogs, ErrBadRequest, ErrUnknownNode} {
		if strings.HasPrefix(msg, e.Error()) {
			return fmt.Errorf("%w%s", e, strings.TrimPrefix(msg, e.Error()))
		}
	}
	return errors.New(msg)
}
