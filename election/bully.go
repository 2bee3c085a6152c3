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
	// retransmissions. Default 400ms.
	OKTimeout time.Duration
	// CoordinatorTimeout is how long a node that got an OK waits for the
	// Coordinator before it starts another election. Default 1s.
	CoordinatorTimeout time.Duration
}

// The range of the Bully timeouts: below minTimeout a round trip with a
// retransmission does not fit; above maxTimeout a failover takes minutes.
const (
	minTimeout = 10 * time.Millisecond
	maxTimeout = time.Minute
)

// Validate reports a timeout out of range (zero means the default).
func (c BullyConfig) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"OKTimeout", c.OKTimeout}, {"CoordinatorTimeout", c.CoordinatorTimeout}} {
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
	return c
}

type bully struct {
	cfg  BullyConfig
	self actors.NodeName
	live map[actors.NodeName]bool // other live members

	term   uint64
	leader actors.NodeName

	// An election in progress: electing while waiting for OKs, waiting
	// after an OK until the Coordinator. round numbers the elections so
	// that a timer of an earlier one is ignored.
	electing, waiting bool
	round             uint64
	timer             actors.TimerID
}

type (
	okTimeout    struct{ round uint64 }
	coordTimeout struct{ round uint64 }
)

var _ Elector = (*bully)(nil)

func (b *bully) Name() actors.ProtocolName { return Name }
func (b *bully) Algorithm() string         { return "bully" }

func (b *bully) Init(ctx *actors.Context) error {
	b.self = ctx.Node()
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
			b.elect(ctx)
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
	b.term = max(b.term, m.Term)
	if !b.higher(b.self, from) {
		return nil // only lower nodes ask
	}
	b.send(ctx, from, &pb.OK{Term: b.term})
	if !b.electing && !b.waiting {
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
		// A lower node claims the lead: bully it.
		b.term = m.Term
		b.elect(ctx)
		return nil
	case m.Term == b.term && b.leader != "" && b.leader != leader && b.higher(b.leader, leader):
		// Two claims in one term: keep the higher, make the lower run again.
		b.send(ctx, from, &pb.StaleTerm{Term: b.term})
		return nil
	}
	b.term = m.Term
	b.cancel(ctx)
	b.electing, b.waiting = false, false
	b.setLeader(ctx, leader)
	return nil
}

func (b *bully) onStaleTerm(ctx *actors.Context, from actors.NodeName, m *pb.StaleTerm) error {
	if m.Term <= b.term {
		return nil
	}
	b.term = m.Term
	if b.leader == b.self || b.electing {
		b.elect(ctx)
	}
	return nil
}

func (b *bully) joined(ctx *actors.Context, name actors.NodeName) {
	if name == b.self {
		return
	}
	b.live[name] = true
	switch {
	case b.leader == b.self && b.higher(name, b.self):
		b.elect(ctx) // a higher node joined: hand over
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
	if name == b.leader {
		b.setLeader(ctx, "")
		b.elect(ctx)
	}
}
