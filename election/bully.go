package election

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/membership"
	pb "github.com/troupe-dev/troupe/messages"
)

// BullyConfig sets up the Bully elector (see New).
type BullyConfig struct {
	// Priority ranks nodes: the live node with the highest priority leads;
	// among equal priorities, the greatest name in natural order
	// ("node-10" after "node-9"). nil ranks by name only.
	Priority func(node actors.NodeName) int
	// OKTimeout is how long a node that sent Election waits for an OK
	// before it declares itself leader. It must cover a round trip with
	// retransmissions. It is also how long a node whose leader failed,
	// and that is not the highest survivor, waits for the highest
	// survivor's Coordinator before it runs an election. Default 400ms.
	OKTimeout time.Duration
	// CoordinatorTimeout is how long a node that got an OK waits for the
	// Coordinator before it starts another election; and how long a node
	// that is not the highest of its view, once its start-up grace is
	// over, waits for the highest's Coordinator before it runs an
	// election. Default 1s.
	CoordinatorTimeout time.Duration
	// Settle is the start-up grace: a node that starts elects once its
	// live view has not changed for Settle (at most 10 × Settle after it
	// started), and only the highest node of the view claims the lead at
	// once. A leader that sees a higher node join hands over after
	// Settle (the joining node usually claims first). Default 500ms.
	Settle time.Duration
}

// The range of the Bully timeouts: below minTimeout a round trip with a
// retransmission does not fit; above maxTimeout a failover takes minutes.
const (
	minTimeout = 10 * time.Millisecond
	maxTimeout = time.Minute
)

// maxGrace bounds the start-up grace, in Settles: a view that keeps
// changing (a large cluster joining) does not hold the election forever.
const maxGrace = 10

// Validate reports a timeout out of range (zero means the default).
func (c BullyConfig) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"OKTimeout", c.OKTimeout}, {"CoordinatorTimeout", c.CoordinatorTimeout}, {"Settle", c.Settle}} {
		if d.v != 0 && (d.v < minTimeout || d.v > maxTimeout) {
			return fmt.Errorf("%w: %s is %v; it must be %v..%v (0: the default)", ErrInvalidConfig, d.name, d.v, minTimeout, maxTimeout)
		}
	}
	return nil
}

func (c BullyConfig) withDefaults() BullyConfig {
	d := DefaultConfig().Bully
	if c.OKTimeout <= 0 {
		c.OKTimeout = d.OKTimeout
	}
	if c.CoordinatorTimeout <= 0 {
		c.CoordinatorTimeout = d.CoordinatorTimeout
	}
	if c.Settle <= 0 {
		c.Settle = d.Settle
	}
	return c
}

type bully struct {
	cfg     BullyConfig
	self    actors.NodeName
	live    map[actors.NodeName]bool // other live members
	started time.Time

	term   uint64
	leader actors.NodeName
	// The highest leader this node followed in term termLeaderOf: a
	// failure of the leader resets leader, not this.
	termLeader   actors.NodeName
	termLeaderOf uint64

	// An election in progress: electing while waiting for OKs, waiting
	// after an OK until the Coordinator. round numbers the elections so
	// that a timer of an earlier one is ignored.
	electing, waiting bool
	round             uint64
	timer             actors.TimerID

	// The start-up grace: booting until the view has been quiet for
	// Settle; settleTimer fires then.
	booting     bool
	settleTimer actors.TimerID
	settleSeq   uint64

	// A deferred decision (decide): armed after the grace, after the
	// leader failed, when a higher node joined, when claims of lower
	// nodes come in; several coalesce into one.
	later    bool
	laterAt  time.Time
	laterID  actors.TimerID
	laterSeq uint64
}

type (
	okTimeout    struct{ round uint64 }
	coordTimeout struct{ round uint64 }
	settled      struct{ seq uint64 }
	decideLater  struct{ seq uint64 }
)

var _ Elector = (*bully)(nil)

func (b *bully) Name() actors.ProtocolName { return Name }
func (b *bully) Algorithm() string         { return "bully" }

func (b *bully) Init(ctx *actors.Context) error {
	b.self = ctx.Node()
	b.started = ctx.Now()
	b.live = map[actors.NodeName]bool{}
	actors.OnMessage(ctx, b.onElection)
	actors.OnMessage(ctx, b.onOK)
	actors.OnMessage(ctx, b.onCoordinator)
	actors.OnMessage(ctx, b.onStaleTerm)
	actors.OnTimer(ctx, func(ctx *actors.Context, t okTimeout) error {
		if b.electing && t.round == b.round {
			b.win(ctx)
		}
		return nil
	})
	actors.OnTimer(ctx, func(ctx *actors.Context, t coordTimeout) error {
		if b.waiting && t.round == b.round {
			ctx.Log().Debug().Uint64("term", b.term).Msg("no Coordinator after an OK: electing again")
			b.elect(ctx)
		}
		return nil
	})
	actors.OnTimer(ctx, func(ctx *actors.Context, t settled) error {
		if b.booting && t.seq == b.settleSeq {
			b.endGrace(ctx)
		}
		return nil
	})
	actors.OnTimer(ctx, func(ctx *actors.Context, t decideLater) error {
		if b.later && t.seq == b.laterSeq {
			b.later = false
			b.decide(ctx)
		}
		return nil
	})
	actors.OnRequest(ctx, func(*actors.Context, LeaderRequest) (Leader, error) {
		return Leader{Name: b.leader, Term: b.term}, nil
	})
	// New timeouts apply from the next timer an election arms.
	actors.OnReconfigure(ctx, func(ctx *actors.Context, cfg BullyConfig) error {
		if err := cfg.Validate(); err != nil {
			return err
		}
		b.cfg = cfg.withDefaults()
		return nil
	})
	err := membership.Watch(ctx, func(ctx *actors.Context, ch membership.Change) error {
		switch ev := ch.Event.(type) {
		case nil: // the view: who is there when this elector starts
			for _, m := range ch.View.Live() {
				if m.Name != b.self {
					b.live[m.Name] = true
				}
			}
			b.booting = true
			b.armSettle(ctx)
		case *membership.MemberJoined:
			b.joined(ctx, ev.Member.Name)
		case *membership.MemberFailed, *membership.MemberLeft:
			b.gone(ctx, ev.Of().Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("election: the bully elector needs the membership protocol on node %s (membership.Attach): %w", b.self, err)
	}
	return nil
}

// armSettle (re)starts the start-up grace's quiet period: Settle from
// now, but no later than maxGrace Settles after the elector started.
func (b *bully) armSettle(ctx *actors.Context) {
	if b.settleTimer != 0 {
		ctx.Cancel(b.settleTimer)
	}
	d := b.cfg.Settle
	if left := b.started.Add(maxGrace * b.cfg.Settle).Sub(ctx.Now()); left < d {
		d = max(left, 0)
	}
	b.settleSeq++
	b.settleTimer = ctx.After(d, settled{seq: b.settleSeq})
}

// endGrace ends the start-up grace: the highest node of the view claims
// the lead; the others wait CoordinatorTimeout for its Coordinator
// (unless they follow a higher node already) before they elect.
func (b *bully) endGrace(ctx *actors.Context) {
	b.booting = false
	if b.settleTimer != 0 {
		ctx.Cancel(b.settleTimer)
		b.settleTimer = 0
	}
	if b.top() {
		b.decide(ctx)
		return
	}
	b.deferDecision(ctx, b.cfg.CoordinatorTimeout)
}

// top reports whether this node ranks above every live member it knows.
func (b *bully) top() bool { return !b.outranked(b.self) }

// deferDecision runs decide after d, or sooner if a decision is already
// due sooner: several reasons to elect within d make one election.
func (b *bully) deferDecision(ctx *actors.Context, d time.Duration) {
	at := ctx.Now().Add(d)
	if b.later && !at.Before(b.laterAt) {
		return
	}
	if b.later {
		ctx.Cancel(b.laterID)
	}
	b.later, b.laterAt = true, at
	b.laterSeq++
	b.laterID = ctx.After(d, decideLater{seq: b.laterSeq})
}

func (b *bully) cancelDecision(ctx *actors.Context) {
	if b.later {
		ctx.Cancel(b.laterID)
		b.later = false
	}
}

// decide elects unless an election runs, or this node follows a node
// ranked above it. An election of
// the highest live node is a claim: one round of Coordinator messages.
func (b *bully) decide(ctx *actors.Context) {
	if b.electing || b.waiting {
		return
	}
	// The leader is live as long as this node heard of no failure of it
	// (gone resets it), even if the view does not hold it yet.
	if b.leader != "" && b.leader != b.self && b.higher(b.leader, b.self) {
		return
	}
	b.elect(ctx)
}

// outranked reports whether a live member ranks above node n.
func (b *bully) outranked(n actors.NodeName) bool {
	for m := range b.live {
		if b.higher(m, n) {
			return true
		}
	}
	return false
}

// higher reports whether node a ranks above node b.
func (b *bully) higher(a, bn actors.NodeName) bool {
	if b.cfg.Priority != nil {
		pa, pb := b.cfg.Priority(a), b.cfg.Priority(bn)
		if pa != pb {
			return pa > pb
		}
	}
	return naturalLess(string(bn), string(a))
}

// elect starts an election with a new term.
func (b *bully) elect(ctx *actors.Context) {
	b.term++
	b.round++
	b.cancel(ctx)
	b.cancelDecision(ctx)
	var above []actors.NodeName
	for n := range b.live {
		if b.higher(n, b.self) {
			above = append(above, n)
		}
	}
	if len(above) == 0 {
		b.win(ctx)
		return
	}
	slices.Sort(above)
	b.electing, b.waiting = true, false
	for _, n := range above {
		b.send(ctx, n, &pb.Election{Term: b.term})
	}
	b.timer = ctx.After(b.cfg.OKTimeout, okTimeout{round: b.round})
}

// win makes this node the leader and tells every live node.
func (b *bully) win(ctx *actors.Context) {
	b.cancel(ctx)
	b.electing, b.waiting = false, false
	b.setLeader(ctx, b.self)
	others := make([]actors.NodeName, 0, len(b.live))
	for n := range b.live {
		others = append(others, n)
	}
	slices.Sort(others)
	for _, n := range others {
		b.send(ctx, n, &pb.Coordinator{Term: b.term, Leader: string(b.self)})
	}
}

func (b *bully) cancel(ctx *actors.Context) {
	if b.timer != 0 {
		ctx.Cancel(b.timer)
		b.timer = 0
	}
}

func (b *bully) setLeader(ctx *actors.Context, leader actors.NodeName) {
	if leader != "" && (b.termLeaderOf != b.term || b.higher(leader, b.termLeader)) {
		b.termLeader, b.termLeaderOf = leader, b.term
	}
	if leader == b.leader {
		return
	}
	b.leader = leader
	ev := ctx.Log().Info()
	if leader == "" {
		ev = ctx.Log().Debug()
	}
	ev.Str("leader", string(leader)).Uint64("term", b.term).Msg("leader changed")
	ctx.Notify(&LeaderChanged{Leader: leader, Term: b.term})
}

// send sends reliably; a failure (the peer vanished from the directory, a
// full window to a silent peer) is logged, not fatal: the peer's failure
// will show in membership and the election adapts.
func (b *bully) send(ctx *actors.Context, to actors.NodeName, m proto.Message) {
	if err := ctx.SendReliable(to, m); err != nil {
		ctx.Log().Warn().Err(err).Str("to", string(to)).Msg("election message not sent")
	}
}

func (b *bully) onElection(ctx *actors.Context, from actors.NodeName, m *pb.Election) error {
	stale := m.Term < b.term
	b.term = max(b.term, m.Term)
	if !b.higher(b.self, from) {
		return nil // only lower nodes ask
	}
	b.send(ctx, from, &pb.OK{Term: b.term})
	switch {
	case b.leader == b.self && stale:
		// A lower node that missed this leader's Coordinator (it
		// restarted, or joined late): tell it alone, in the current term.
		b.send(ctx, from, &pb.Coordinator{Term: b.term, Leader: string(b.self)})
	case !b.electing && !b.waiting:
		if b.booting {
			b.booting = false
			if b.settleTimer != 0 {
				ctx.Cancel(b.settleTimer)
				b.settleTimer = 0
			}
		}
		b.elect(ctx)
	}
	return nil
}

func (b *bully) onOK(ctx *actors.Context, from actors.NodeName, m *pb.OK) error {
	b.term = max(b.term, m.Term)
	if !b.electing {
		return nil
	}
	b.cancel(ctx)
	b.electing, b.waiting = false, true
	b.timer = ctx.After(b.cfg.CoordinatorTimeout, coordTimeout{round: b.round})
	return nil
}

func (b *bully) onCoordinator(ctx *actors.Context, from actors.NodeName, m *pb.Coordinator) error {
	leader := actors.NodeName(m.Leader)
	switch {
	case m.Term < b.term:
		b.send(ctx, from, &pb.StaleTerm{Term: b.term})
		return nil
	case leader != b.self && b.higher(b.self, leader):
		// A lower node claims the lead: bully it, unless this node
		// follows a live higher node (which bullies it) or is still in
		// its start-up grace (which ends with a claim if it ranks
		// highest). Claims that come within a short window make one
		// election.
		b.term = m.Term
		if !b.booting {
			b.deferDecision(ctx, b.coalesce())
		}
		return nil
	case m.Term == b.term && b.leader != "" && b.leader != leader && b.higher(b.leader, leader):
		// Two claims in one term: keep the higher, make the lower run again.
		b.send(ctx, from, &pb.StaleTerm{Term: b.term})
		return nil
	}
	b.term = m.Term
	b.cancel(ctx)
	b.cancelDecision(ctx)
	b.electing, b.waiting = false, false
	if m.Term == b.termLeaderOf && b.termLeader != "" && b.higher(b.termLeader, leader) && b.live[b.termLeader] {
		// A higher node claimed this term before, and this node forgot it
		// only because it saw that node's earlier run fail: that node
		// (restarted) leads; the lower claim is refused as above.
		b.send(ctx, from, &pb.StaleTerm{Term: b.term})
		leader = b.termLeader
	}
	b.setLeader(ctx, leader)
	return nil
}

// coalesce is the window in which claims of lower nodes and StaleTerm
// answers make one election.
func (b *bully) coalesce() time.Duration { return max(b.cfg.OKTimeout/4, minTimeout) }

func (b *bully) onStaleTerm(ctx *actors.Context, from actors.NodeName, m *pb.StaleTerm) error {
	if m.Term <= b.term {
		return nil
	}
	b.term = m.Term
	switch {
	case b.electing:
		b.elect(ctx)
	case b.leader == b.self:
		b.deferDecision(ctx, b.coalesce())
	}
	return nil
}

func (b *bully) joined(ctx *actors.Context, name actors.NodeName) {
	if name == b.self {
		return
	}
	b.live[name] = true
	switch {
	case b.booting:
		b.armSettle(ctx) // the view changed: the grace goes on
	case b.leader == b.self && b.higher(name, b.self):
		// A higher node joined: hand over, after Settle (a node that
		// starts claims the lead when its own grace ends).
		b.deferDecision(ctx, b.cfg.Settle)
	case b.leader == b.self:
		// A lower node joined, or came back from the other side of a
		// partition, where it may still follow another leader, or
		// restarted and announced itself before this node knew of it:
		// tell it who leads.
		b.send(ctx, name, &pb.Coordinator{Term: b.term, Leader: string(b.self)})
	}
}

func (b *bully) gone(ctx *actors.Context, name actors.NodeName) {
	delete(b.live, name)
	if b.booting {
		b.armSettle(ctx)
	}
	if name != b.leader {
		return
	}
	b.setLeader(ctx, "")
	switch {
	case b.booting:
	case b.top():
		b.decide(ctx) // the highest survivor claims at once
	default:
		// The highest survivor usually claims first: wait for its
		// Coordinator before electing.
		b.deferDecision(ctx, b.cfg.OKTimeout)
	}
}
